"""End to end: once the clock passes RETENTION_DAYS, no RocksDB table of the worker names an old report.

A real worker (event clock, window 10 days, retention 12) is fed reports with
names of their own; then events 100 days later reach every register partition
(twice, so the write-first stages' last output is about the late events too).
After a clean stop, every key and value of every table partition's RocksDB is
scanned: none names an old crime_ref, victim, event id or suspect (SPEC §9; the
membership history of §8 is the one place a suspect id may stay).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from rocksdict import AccessType, Options, Rdict

from streams.partitioning import partition_for

from .conftest import publish_file, write_feed

pytestmark = pytest.mark.e2e

OLD = "2025-01-0{}T10:00:00+00:00"
LATE = "2025-04-15T10:00:00+00:00"


def old_reports() -> list:
    events = []
    for k in range(1, 8):
        events.append({"event_id": f"EV-OLD-{k}", "type": "report.recorded", "at": OLD.format(k),
                       "crime_ref": f"CR-OLD-{k}", "offence_code": "008/06",
                       "suspects": [f"SU-OLD-{k % 3}", f"SU-OLD-{k % 2 + 5}"],
                       "victims": [{"id": f"VI-OLD-{k}", "sex": "F"}]})
    events.append({"event_id": "EV-OLD-LINK", "type": "suspect.linked", "at": OLD.format(8),
                   "crime_ref": "CR-OLD-2", "suspect_id": "SU-OLD-9"})
    events.append({"event_id": "EV-OLD-CANCEL", "type": "report.cancelled", "at": OLD.format(9),
                   "crime_ref": "CR-OLD-3"})
    return events


def late_reports(partitions: int, round_: int) -> list:
    """One late report for each register partition (crime_refs chosen by the worker's partitioner)."""
    refs: dict = {}
    k = 0
    while len(refs) < partitions:
        ref = f"CR-LATE-{round_}-{k}"
        refs.setdefault(partition_for(ref, partitions), ref)
        k += 1
    return [{"event_id": f"EV-{ref}", "type": "report.recorded", "at": LATE.replace("10:00", f"1{round_}:00"),
             "crime_ref": ref, "offence_code": "105/01", "suspects": [f"SU-{ref}"],
             "victims": [{"id": f"VI-{ref}", "sex": "F"}]} for ref in refs.values()]


def scan(data_dir: Path) -> list:
    """(database, key, value) of every RocksDB under the worker's data directory."""
    found = []
    for path in sorted(p for p in data_dir.rglob("*") if p.is_dir() and (p / "CURRENT").exists()):
        db = Rdict(str(path), options=Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            found.extend((path.name, bytes(k), bytes(v)) for k, v in db.items())
        finally:
            db.close()
    return found


def test_no_table_names_a_report_past_retention(own_broker, workers, tmp_path):
    worker = workers(own_broker, partitions=4, window_days=10, retention_days=12, top_n=5).start()
    worker.wait_ready()
    publish_file(own_broker, write_feed(tmp_path / "old.jsonl", old_reports()))
    worker.wait_until(lambda: worker.ranking()["entries"], "the old reports are ranked")
    for round_ in (1, 2):
        publish_file(own_broker, write_feed(tmp_path / f"late{round_}.jsonl", late_reports(4, round_)))
    worker.wait_until(lambda: worker.ranking()["as_of"] == LATE.replace("10:00", "12:00"), "the late clock")
    worker.wait_until(lambda: {e["suspect_id"] for e in worker.ranking()["entries"]} == set(), "the late rank")
    worker.stop()
    rows = scan(worker.data_dir)
    assert len({db for db, _, _ in rows}) >= 9, "every table partition's database"
    names = [b"CR-OLD", b"VI-OLD", b"EV-OLD"]
    leaks = [(db, k[:80], v[:120]) for db, k, v in rows if any(n in k or n in v for n in names)]
    assert not leaks, leaks[:10]
    suspects = [(db, k[:80], v[:120]) for db, k, v in rows if b"SU-OLD" in k or b"SU-OLD" in v]
    assert all(db.startswith("ranker") for db, _, _ in suspects), suspects[:10]
    assert any(b"CR-LATE" in k for _, k, _ in rows), "the late reports are kept"
