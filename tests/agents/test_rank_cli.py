"""`harmrank rank` against the independent recomputation, on simulated feeds, and its errors."""
from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal

import pytest

from schemas.harm_table import load_harm_table
from schemas.validate import Rejected, parse_timestamp, validate
from streams import simulate
from tests.streams.oracle import Oracle

HARM = load_harm_table()


def oracle_for(lines, top_n, as_of=None):
    oracle = Oracle({e.code: (Decimal(e.days_cents) / 100, e.vawg) for e in HARM}, top_n=top_n)
    for line in lines:
        ev = validate(line.encode(), HARM, now_us=None)
        if isinstance(ev, Rejected) or (as_of is not None and ev.at > as_of):
            continue
        oracle.apply(ev)
    return oracle.ranking(as_of=as_of)


def run_rank(path, *args, env=None):
    return subprocess.run([sys.executable, "-m", "agents.cli", "rank", str(path), *args], capture_output=True,
                          text=True, env=env)


@pytest.fixture(scope="module")
def feed(tmp_path_factory):
    path = tmp_path_factory.mktemp("feed") / "feed.jsonl"
    with open(path, "w") as fh:
        simulate.write_jsonl(simulate.generate(seed=11, events=30_000), fh)
    return path


@pytest.mark.parametrize("top", ["100", "7"])
def test_rank_json_equals_recomputation(feed, top):
    proc = run_rank(feed, "--json", "--top", top)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    want = oracle_for(feed.read_text().splitlines(), int(top))
    assert len(want) == int(top)
    assert got == [{"rank": r, "suspect_id": s, "score": float(sc), "allegations": n, "victims": v}
                   for r, s, sc, n, _newest, v in want]


def test_rank_as_of_in_the_past(feed):
    as_of_text = "2025-09-01T00:00:00+00:00"
    proc = run_rank(feed, "--json", "--as-of", as_of_text)
    assert proc.returncode == 0, proc.stderr
    want = oracle_for(feed.read_text().splitlines(), 100, as_of=parse_timestamp(as_of_text))
    assert [row["suspect_id"] for row in json.loads(proc.stdout)] == [w[1] for w in want]
    assert "after --as-of not applied" in proc.stderr


def test_bad_lines_are_reported_with_line_numbers(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"event_id": "e1", "type": "report.cancelled", "at": "2025-01-01T00:00:00Z", "crime_ref": "X"}\n'
                    "not json\n\n"
                    '{"event_id": "e2", "type": "report.recorded", "at": "2025-01-01T00:00:00Z", "crime_ref": "X",'
                    ' "offence_code": "999/99", "suspects": [], "victims": []}\n')
    proc = run_rank(path)
    assert proc.returncode == 0
    assert "line 1: unknown_crime_ref" in proc.stderr
    assert "line 2: bad_json" in proc.stderr
    assert "line 4: unknown_offence_code" in proc.stderr


def test_unreadable_file_and_bad_table_exit_non_zero(tmp_path):
    proc = run_rank(tmp_path / "missing.jsonl")
    assert proc.returncode == 2 and "cannot read" in proc.stderr and "Traceback" not in proc.stderr
    table = tmp_path / "t.csv"
    table.write_text("offence_code,days\n105/01,-3\n")
    (tmp_path / "f.jsonl").write_text("")
    proc = run_rank(tmp_path / "f.jsonl", "--harm-table", str(table))
    assert proc.returncode == 2 and "negative" in proc.stderr and "Traceback" not in proc.stderr


def test_settings_from_environment(feed):
    import os
    env = dict(os.environ, HARMRANK_TOP_N="3", HARMRANK_MIN_ALLEGATIONS="4")
    proc = run_rank(feed, "--json", env=env)
    rows = json.loads(proc.stdout)
    assert len(rows) == 3 and all(r["allegations"] >= 4 for r in rows)
    bad = run_rank(feed, env=dict(os.environ, HARMRANK_TOP_N="many"))
    assert bad.returncode == 2 and "HARMRANK_TOP_N" in bad.stderr


def test_retention_forgets_old_reports_and_a_short_one_is_refused(tmp_path):
    def ev(i, type_, at, **fields):
        return json.dumps({"event_id": f"e{i}", "type": type_, "at": at, **fields})

    rec = dict(offence_code="019/08", suspects=["S1"], victims=[{"id": "V1", "sex": "F"}])
    path = tmp_path / "old.jsonl"
    path.write_text("\n".join([
        ev(1, "report.recorded", "2025-01-01T00:00:00Z", crime_ref="C1", **rec),
        ev(2, "report.recorded", "2025-01-20T00:00:00Z", crime_ref="C2", **rec),
        ev(3, "report.reclassified", "2025-01-20T00:00:01Z", crime_ref="C1", offence_code="008/06"),
    ]) + "\n")
    proc = run_rank(path, "--window-days", "10", "--retention-days", "15")
    assert proc.returncode == 0 and "line 3: unknown_crime_ref" in proc.stderr
    proc = run_rank(path, "--window-days", "10", "--retention-days", "30")
    assert proc.returncode == 0 and "line 3" not in proc.stderr
    bad = run_rank(path, "--window-days", "10", "--retention-days", "9")
    assert bad.returncode == 2 and "HARMRANK_RETENTION_DAYS" in bad.stderr and "Traceback" not in bad.stderr
