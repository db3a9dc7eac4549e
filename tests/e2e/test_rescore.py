"""End to end: a worker restarted with another harm table scores its state again (SPEC §9)."""
from __future__ import annotations

import csv
import json
from collections import Counter

import pytest

from agents.settings import Settings
from agents.topology import scoring_fingerprint
from schemas.harm_table import DEFAULT_HARM_TABLE, load_harm_table
from streams.simulate import generate

from .conftest import OUTPUT_TOPIC, batch_rank, publish_file, read_topic, wait_membership, write_feed

pytestmark = pytest.mark.e2e


def changed_table(events: list, path) -> tuple:
    """The shipped table with two VAWG values changed and one code dropped; returns (path, dropped, changed).

    The dropped code is one no report is reclassified from or to in the feed: such a report counts for
    nothing in the worker, while `rank` with the new table never records it, so a later reclassification
    would make them differ (README: contract decisions).
    """
    recorded = {e["crime_ref"]: e["offence_code"] for e in events if e.get("type") == "report.recorded"}
    reclassified = [e for e in events if e.get("type") == "report.reclassified"]
    touched = {recorded.get(e.get("crime_ref")) for e in reclassified} | {e.get("offence_code") for e in reclassified}
    harm = load_harm_table()
    uses = Counter(code for code in recorded.values() if code in harm)
    dropped = next(code for code, _ in uses.most_common() if code not in touched)
    changed = [code for code, _ in uses.most_common() if code != dropped and harm.get(code).vawg][:2]
    with open(DEFAULT_HARM_TABLE, newline="") as src, open(path, "w", newline="") as out:
        rows = list(csv.DictReader(src))
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            if row["offence_code"] == dropped:
                continue
            if row["offence_code"] in changed:
                row["days"] = str(int(float(row["days"]) * 3 + 7))
            writer.writerow(row)
    return path, dropped, changed


def test_a_restart_with_another_table_rescores_and_agrees_with_rank(own_broker, workers, tmp_path):
    events = list(generate(seed=77, events=4000, invalid_rate=0.0))
    feed = write_feed(tmp_path / "feed.jsonl", events)
    table, dropped, changed = changed_table(events, tmp_path / "harm.csv")
    before, after = batch_rank(feed), batch_rank(feed, harm_table=table)
    assert before != after, "the new table should move the ranking"

    worker = workers(own_broker, partitions=4).start()
    worker.wait_ready()
    publish_file(own_broker, feed)
    worker.wait_ranking_equals(before, timeout=120)
    worker.stop()
    worker.settings["harm_table"] = table
    worker.start()
    worker.wait_ready(timeout=120)
    worker.wait_ranking_equals(after, timeout=120)

    cause = "rescore:" + scoring_fingerprint(Settings(harm_table=str(table)))[:12]
    outputs = [json.loads(r.value) for r in read_topic(own_broker, OUTPUT_TOPIC)]
    moved = [o for o in outputs if o["cause"] == cause]
    assert moved and all(o["type"] in ("ranking.entered", "ranking.exited", "ranking.updated") for o in moved), (
        outputs[-5:])
    wait_membership(own_broker, {r["suspect_id"] for r in after}, top_n=100, dedup=True)
    assert "Traceback" not in worker.log_tail(200_000), worker.log_tail()
