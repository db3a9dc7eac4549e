"""End-to-end: a stage whose batches fail a few times, then succeed (SPEC §9 "Failures").

The failures are injected by tests/faults (the worker's production code knows
nothing of them): the stage's first FAILS batches are worked and then raise, so
the retry must start again from the stores, not from what the failed try left
in memory. While it fails, /healthz answers 503 and the failures are counted;
afterwards nothing is lost and nothing counts twice.
"""
from __future__ import annotations

import json
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.simulate import generate

from .conftest import batch_rank, publish_file, wait_membership, write_feed

pytestmark = pytest.mark.e2e

FAILS = 3
FIRST_BACKOFF_S = 1.0  # then 2 and 4: a failing spell of about 7 s, long enough to be seen on /healthz


def stage_failures(worker) -> dict:
    """harmrank_stage_failures_total by stage, from /metrics."""
    status, body = worker.get("/metrics")
    assert status == 200, status
    counts = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "harmrank_stage_failures_total":
                counts[sample.labels["stage"]] = int(sample.value)
    return counts


def wait_failing(worker, stage: str, timeout: float = 60.0) -> dict:
    """Poll /healthz until it answers 503 naming `stage`; returns its body."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert worker.alive(), f"worker died:\n{worker.log_tail()}"
        status, body = worker.get("/healthz")
        if status == 503:
            doc = json.loads(body)
            if stage in doc.get("stages", []):
                return doc
        time.sleep(0.1)
    pytest.fail(f"/healthz never answered 503 for {stage} within {timeout:g} s:\n{worker.log_tail()}")


def wait_healthy(worker, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _ = worker.get("/healthz")
        if status == 200:
            return
        time.sleep(0.2)
    pytest.fail(f"/healthz not 200 again within {timeout:g} s:\n{worker.log_tail()}")


@pytest.mark.parametrize("stage", ["register", "ledger", "ranker"])
def test_a_stage_failing_three_times_then_succeeding_loses_nothing(stage, own_broker, workers, tmp_path):
    feed = write_feed(tmp_path / "feed.jsonl", generate(seed=808, events=3000, invalid_rate=0.005))
    expected = batch_rank(feed)
    assert len(expected) == 100
    worker = workers(own_broker, partitions=4, faults={
        "TEST_FAULT_STAGE": stage, "TEST_FAULT_FAILS": FAILS, "TEST_FAULT_RETRY_FIRST_S": FIRST_BACKOFF_S}).start()
    worker.wait_ready()
    assert worker.get("/healthz")[0] == 200
    publish_file(own_broker, feed)

    wait_failing(worker, stage)
    assert stage_failures(worker)[stage] >= 1
    worker.wait_ranking_equals(expected, timeout=120)
    wait_healthy(worker)
    assert stage_failures(worker) == {"intake": 0, "register": 0, "ledger": 0, "ranker": 0, stage: FAILS}
    assert f"{stage}: injected failure {FAILS} of {FAILS}" in worker.log_tail(1_000_000)

    events = wait_membership(own_broker, {r["suspect_id"] for r in expected}, top_n=100, dedup=True)
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)), "a failed batch's output was sent"
