"""Tests of the synthetic feed (streams/simulate.py): shape, validity, determinism, CLI."""
from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from streams import simulate
from streams.simulate import DAYS, OFFENCES, VAWG_CODES, describe, generate, main, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
SOURCE_CSV = ROOT.parent / "shared" / "data" / "cchi-2020-values.csv"
HARM_TABLE = ROOT / "schemas" / "data" / "harm-table.csv"

RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")
CODE = re.compile(r"^\d{3}/\d{2}$")
CORRECTIONS = {"report.reclassified", "report.cancelled", "suspect.linked", "suspect.unlinked"}


def _codes_from(path: Path, column: str) -> set[str]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return {row[column].strip() for row in csv.DictReader(fh) if row.get(column)}


@pytest.fixture(scope="module")
def source_codes() -> set[str]:
    if not SOURCE_CSV.exists():
        pytest.skip(f"source CSV not found at {SOURCE_CSV}")
    return _codes_from(SOURCE_CSV, "HOME_OFFICE_CLASSIFICATION")


@pytest.fixture(scope="module")
def feed20k() -> list[dict]:
    return list(generate(seed=7, events=20_000))


@pytest.fixture(scope="module")
def clean12k() -> list[dict]:
    return list(generate(seed=11, events=12_000, invalid_rate=0))


def _parse_at(value: str) -> dt.datetime:
    assert isinstance(value, str) and RFC3339.match(value), value
    parsed = dt.datetime.fromisoformat(value)
    assert parsed.tzinfo is not None
    return parsed


def _well_formed(ev: dict, codes: set[str]) -> None:
    """SPEC §2 shape, checked field by field."""
    assert isinstance(ev, dict)
    eid = ev["event_id"]
    assert isinstance(eid, str) and 1 <= len(eid) <= 128
    _parse_at(ev["at"])
    typ = ev["type"]
    allowed = {"event_id", "type", "at"}
    if typ == "report.recorded":
        allowed |= {"crime_ref", "offence_code", "suspects", "victims", "vawg"}
        assert isinstance(ev["crime_ref"], str) and re.match(r"^CR-\d{4}-\d{7}$", ev["crime_ref"])
        assert ev["offence_code"] in codes
        assert isinstance(ev["suspects"], list)
        for s in ev["suspects"]:
            assert isinstance(s, str) and re.match(r"^S\d{6,}$", s)
        assert len(set(ev["suspects"])) == len(ev["suspects"])
        assert isinstance(ev["victims"], list)
        for v in ev["victims"]:
            assert set(v) == {"id", "sex"}
            assert isinstance(v["id"], str) and re.match(r"^V\d{6,}$", v["id"])
            assert v["sex"] in ("F", "M", "U")
    elif typ == "report.reclassified":
        allowed |= {"crime_ref", "offence_code", "vawg"}
        assert isinstance(ev["crime_ref"], str)
        assert ev["offence_code"] in codes
    elif typ == "report.cancelled":
        allowed |= {"crime_ref"}
        assert isinstance(ev["crime_ref"], str)
    elif typ in ("suspect.linked", "suspect.unlinked"):
        allowed |= {"crime_ref", "suspect_id"}
        assert isinstance(ev["crime_ref"], str)
        assert isinstance(ev["suspect_id"], str) and re.match(r"^S\d{6,}$", ev["suspect_id"])
    elif typ == "suspects.merged":
        allowed |= {"suspect_id", "into"}
        assert isinstance(ev["suspect_id"], str) and isinstance(ev["into"], str)
    else:
        raise AssertionError(f"unknown type {typ!r}")
    if "vawg" in ev:
        assert isinstance(ev["vawg"], bool)
    assert set(ev) <= allowed, set(ev) - allowed
    for key in ("event_id", "type", "at"):
        assert key in ev


class _Checker:
    """A minimal model of SPEC §2's acceptance rules: which events would be dead-lettered."""

    def __init__(self, codes: set[str]):
        self.codes = codes
        self.seen: dict[str, str] = {}
        self.recorded: set[str] = set()
        self.cancelled: set[str] = set()
        self.alias: dict[str, str] = {}
        self.dead: list[tuple[int, str]] = []
        self.duplicates = 0

    def resolve(self, s: str) -> str:
        while s in self.alias:
            s = self.alias[s]
        return s

    def feed(self, i: int, ev: dict) -> None:
        text = json.dumps(ev, sort_keys=True)
        eid = ev.get("event_id")
        if isinstance(eid, str) and eid in self.seen:
            assert self.seen[eid] == text, "a repeated event_id must be an exact duplicate"
            self.duplicates += 1
            return
        try:
            _well_formed(ev, self.codes)
        except (AssertionError, KeyError, ValueError, TypeError):
            self.dead.append((i, "malformed"))
            return
        finally:
            if isinstance(eid, str):
                self.seen.setdefault(eid, text)
        typ = ev["type"]
        if typ == "report.recorded":
            if ev["crime_ref"] in self.recorded:
                self.dead.append((i, "duplicate crime_ref"))
            else:
                self.recorded.add(ev["crime_ref"])
        elif typ in CORRECTIONS:
            ref = ev["crime_ref"]
            if ref not in self.recorded or ref in self.cancelled:
                self.dead.append((i, "unknown or cancelled crime_ref"))
            elif typ == "report.cancelled":
                self.cancelled.add(ref)
        elif typ == "suspects.merged":
            a, b = self.resolve(ev["suspect_id"]), self.resolve(ev["into"])
            if a == b:
                self.dead.append((i, "self-merge"))
            else:
                self.alias[a] = b


def _jsonl(**kwargs) -> str:
    buf = io.StringIO()
    write_jsonl(generate(**kwargs), buf)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------


def test_deterministic_byte_for_byte():
    a = _jsonl(seed=3, events=3000)
    b = _jsonl(seed=3, events=3000)
    assert a == b
    assert a.count("\n") == 3000
    assert _jsonl(seed=4, events=3000) != a
    # a datetime start is the same as its RFC 3339 text
    c = _jsonl(seed=3, events=3000, start=dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc))
    assert c == a


def test_offence_table_codes_exist_in_source_csv(source_codes):
    for code, weight, days, vawg, title, kind in OFFENCES:
        assert CODE.match(code)
        assert code in source_codes, code
        assert weight > 0 and days > 0
    must = {"105/01", "008/06", "008/66", "008/67", "019/08", "005/01", "003/01", "020/05"}
    assert must <= {o[0] for o in OFFENCES}
    vawg_weight = sum(o[1] for o in OFFENCES if o[3])
    assert 0.8 < vawg_weight / sum(o[1] for o in OFFENCES) < 0.9


def test_emitted_codes_exist(feed20k, clean12k, source_codes):
    emitted = {ev["offence_code"] for ev in feed20k
               if ev.get("type") in ("report.recorded", "report.reclassified")
               and isinstance(ev.get("offence_code"), str)}
    invalid = emitted - source_codes
    # only the deliberately invalid ones are unknown, and they are few
    assert invalid <= {"999/99", "000/00", "105/99"}
    clean = {ev["offence_code"] for ev in clean12k if "offence_code" in ev}
    assert clean <= source_codes
    assert clean <= set(DAYS)
    if HARM_TABLE.exists():
        table = _codes_from(HARM_TABLE, "offence_code")
        if table:
            assert clean <= table, sorted(clean - table)
        with open(HARM_TABLE, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
        if rows and "vawg" in rows[0]:
            flagged = {r["offence_code"].strip() for r in rows
                       if str(r.get("vawg", "")).strip().lower() == "true"}
            assert {c for c in clean if c in flagged} == {c for c in clean if c in VAWG_CODES}


def test_clean_feed_is_well_formed_and_nothing_would_be_dead_lettered(clean12k, source_codes):
    checker = _Checker(source_codes)
    for i, ev in enumerate(clean12k):
        checker.feed(i, ev)  # checks _well_formed first
    assert checker.dead == []
    assert 60 <= checker.duplicates <= 200  # ~1 %


def test_corrections_only_reference_crimes_recorded_earlier(clean12k):
    recorded: set[str] = set()
    cancelled: set[str] = set()
    seen: set[str] = set()
    for ev in clean12k:
        if ev["event_id"] in seen:
            continue
        seen.add(ev["event_id"])
        if ev["type"] == "report.recorded":
            recorded.add(ev["crime_ref"])
        elif ev["type"] in CORRECTIONS:
            assert ev["crime_ref"] in recorded
            assert ev["crime_ref"] not in cancelled
            if ev["type"] == "report.cancelled":
                cancelled.add(ev["crime_ref"])


def test_invalid_events_are_about_the_requested_share(feed20k, source_codes):
    checker = _Checker(source_codes)
    for i, ev in enumerate(feed20k):
        checker.feed(i, ev)
    reasons = Counter(r for _, r in checker.dead)
    assert 40 <= len(checker.dead) <= 180, reasons  # 0.5 % of 20k = 100
    assert {"malformed", "unknown or cancelled crime_ref", "duplicate crime_ref",
            "self-merge"} <= set(reasons)
    # the invalid events never stop the feed from being mostly valid
    checker = _Checker(source_codes)
    for i, ev in enumerate(generate(seed=7, events=6_000, invalid_rate=0.05)):
        checker.feed(i, ev)
    assert 180 <= len(checker.dead) <= 450  # 5 % of 6k = 300


def test_timestamps_rfc3339_and_mostly_in_order(clean12k):
    late = 0
    newest = None
    seen: set[str] = set()
    start = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    for ev in clean12k:
        at = _parse_at(ev["at"])
        assert ev["at"].endswith("+00:00")
        if ev["event_id"] in seen:
            continue
        seen.add(ev["event_id"])
        assert at >= start
        if newest is not None and at < newest:
            late += 1
            assert newest - at <= dt.timedelta(days=4, seconds=1)
            assert ev["type"] == "report.recorded"
        newest = at if newest is None else max(newest, at)
    assert 60 <= late <= 200  # ~1 %
    assert dt.timedelta(days=360) < newest - start < dt.timedelta(days=440)


def test_shares_roughly_as_specified(feed20k):
    d = describe(feed20k)
    assert d["events"] == 20_000
    bt = d["by_type"]
    n = d["events"] - d["duplicates"]
    assert 0.84 < bt["report.recorded"] / n < 0.92
    assert 0.012 < bt["report.cancelled"] / n < 0.03
    assert 0.02 < bt["report.reclassified"] / n < 0.04
    assert 0.02 < bt["suspect.linked"] / n < 0.04
    assert 0.012 < bt["suspect.unlinked"] / n < 0.03
    assert 0.002 < bt["suspects.merged"] / n < 0.01
    assert 0.005 < d["duplicates"] / d["events"] < 0.016
    assert 0.03 < d["share_no_suspect"] < 0.07
    assert 0.06 < d["share_two_suspects"] < 0.10
    assert 0.07 < d["share_explicit_vawg"] < 0.13
    assert d["victim_sex"]["F"] > 0.8
    assert d["victim_sex"].get("M", 0) > 0.03 and d["victim_sex"].get("U", 0) > 0.005
    reports = sum(d["by_offence"].values())
    non_vawg = sum(c for code, c in d["by_offence"].items() if code in DAYS and code not in VAWG_CODES)
    assert 0.10 < non_vawg / reports < 0.20
    common = d["by_offence"]["105/01"] / reports
    assert common == max(c / reports for c in d["by_offence"].values())
    for code in ("008/06", "195/94", "008/66", "008/67", "019/08", "005/01", "003/01", "020/05",
                 "092/34", "034/01", "028/03"):
        assert d["by_offence"].get(code, 0) > 0, code


def test_heavy_tail(feed20k):
    d = describe(feed20k)
    assert d["top_harm_share"] > 0.40
    # prolific suspects: named on many reports, against several victims
    per_suspect: Counter = Counter()
    victims: dict[str, set] = {}
    for ev in feed20k:
        if ev.get("type") == "report.recorded" and isinstance(ev.get("suspects"), list):
            for s in ev["suspects"]:
                per_suspect[s] += 1
                victims.setdefault(s, set()).update(
                    v["id"] for v in ev.get("victims", []) if isinstance(v, dict) and "id" in v)
    top = per_suspect.most_common(20)
    assert top[0][1] >= 10
    assert all(len(victims[s]) >= 2 for s, _ in top[:10])
    # most suspects appear once or twice
    assert sum(1 for c in per_suspect.values() if c <= 2) / len(per_suspect) > 0.6


def test_scale_follows_events_per_year():
    d = describe(generate(seed=5, events=9_000, days=365, invalid_rate=0))
    # London: ~90k events and ~35k distinct suspects a year; here 9k events a year
    expected = 9_000 * 35_000 / 90_000
    assert 0.7 * expected < d["distinct_suspects"] < 1.3 * expected
    d = describe(generate(seed=5, events=3_000, days=365, suspects=300, invalid_rate=0))
    assert 200 <= d["distinct_suspects"] <= 300
    assert simulate.suspect_population(90_000, 365) > 35_000


def test_merges_chain_and_ids(clean12k):
    merges = [(ev["suspect_id"], ev["into"]) for ev in clean12k if ev["type"] == "suspects.merged"]
    assert merges
    targets = {b for _, b in merges}
    assert any(a in targets for a, _ in merges), "expected at least one chain A->B, B->C"
    assert all(a != b for a, b in merges)
    ids = [ev["event_id"] for ev in clean12k]
    refs = [ev["crime_ref"] for ev in clean12k if ev["type"] == "report.recorded"]
    first = {}
    for ev in clean12k:
        first.setdefault(ev["event_id"], ev)
    assert len(set(refs)) == len(first) - sum(1 for e in first.values() if e["type"] != "report.recorded")
    assert len(set(ids)) < len(ids)  # the deliberate duplicates


@pytest.mark.parametrize("n", [0, 1, 2, 50])
def test_tiny_feeds(n, source_codes):
    events = list(generate(seed=1, events=n, invalid_rate=0))
    assert len(events) == n
    checker = _Checker(source_codes)
    for i, ev in enumerate(events):
        checker.feed(i, ev)
    assert checker.dead == []
    describe(events)


def test_large_feed_streams_lazily():
    gen = generate(seed=2, events=300_000)
    head = list(itertools.islice(gen, 600))
    assert len(head) == 600
    # spread over 400 days: 600 of 300k events cover about a day
    first = dt.datetime.fromisoformat(head[0]["at"])
    assert max(dt.datetime.fromisoformat(e["at"]) for e in head if RFC3339.match(str(e.get("at")))) - first \
        < dt.timedelta(days=3)


def test_bad_arguments():
    with pytest.raises(ValueError):
        generate(events=-1)
    with pytest.raises(ValueError):
        generate(days=0)
    with pytest.raises(ValueError):
        generate(invalid_rate=0.9)
    for days in (float("inf"), float("nan")):
        with pytest.raises(ValueError, match="days must be a number > 0"):
            generate(days=days)
    with pytest.raises(ValueError, match="must end by 9997-12-31"):
        generate(start="9997-06-01T00:00:00+00:00", days=300)


def test_the_latest_timeline_writes_every_at():
    events = list(generate(seed=4, events=3000, start="9997-01-01T00:00:00+00:00", days=364))
    assert len(events) == 3000 and max(e["at"] for e in events if RFC3339.match(str(e.get("at")))) >= "9997-12"


def test_main_writes_file(tmp_path):
    out = tmp_path / "feed.jsonl"
    assert main(["--seed", "9", "--events", "500", "--out", str(out), "--invalid-rate", "0",
                 "--start", "2024-06-01T00:00:00Z", "--days", "30"]) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 500
    events = [json.loads(line) for line in lines]
    assert events == list(generate(seed=9, events=500, start="2024-06-01T00:00:00+00:00",
                                   days=30, invalid_rate=0))
    assert events[0]["at"].startswith("2024-06-01T")


def test_main_stdout(capsys):
    assert main(["--events", "20", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out == _jsonl(seed=1, events=20)


def test_main_live_rate_rewrites_at(tmp_path):
    out = tmp_path / "live.jsonl"
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    assert main(["--events", "30", "--rate", "2000", "--invalid-rate", "0", "--out", str(out)]) == 0
    after = dt.datetime.now(dt.timezone.utc)
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(events) == 30
    for ev in events:
        at = _parse_at(ev["at"])
        assert before - dt.timedelta(days=5) <= at <= after
    assert max(_parse_at(ev["at"]) for ev in events) >= before


def test_main_rejects_bad_flags():
    with pytest.raises(SystemExit):
        main(["--rate", "0"])
    with pytest.raises(SystemExit):
        main(["--start", "not a time"])


@pytest.mark.parametrize("flags,message", [
    (["--out", "/nonexistent/dir/feed.jsonl"], "cannot write /nonexistent/dir/feed.jsonl"),
    (["--days", "inf"], "days must be a number > 0"),
    (["--start", "9999-12-31T00:00:00+00:00"], "must end by 9997-12-31"),
])
def test_main_refuses_what_it_cannot_write_with_a_message(flags, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--events", "10", *flags])
    assert exc.value.code == 2 and message in capsys.readouterr().err
