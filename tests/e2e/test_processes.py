"""End-to-end: `harmrank worker` with HARMRANK_PROCESSES=2, its supervisor and two children.

A real tansu broker, the real command; a child is killed with -9 in the middle of the
work, and the ranking must still equal `harmrank rank` with nothing lost.
"""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from streams.simulate import generate

from .conftest import batch_rank, publish_file, wait_membership, write_feed

pytestmark = pytest.mark.e2e

FEED_EVENTS = 6000


def _wait(condition, what: str, worker, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = condition()
        if got:
            return got
        if not worker.alive():
            pytest.fail(f"the worker exited (code {worker.proc.returncode}) waiting for {what}:\n{worker.log_tail()}")
        time.sleep(0.2)
    pytest.fail(f"not within {timeout:g} s: {what}\n{worker.log_tail()}")


def _metric(worker, name: str) -> dict:
    """{labels as a sorted tuple: value} of one metric on the public /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    status, body = worker.get("/metrics")
    assert status == 200, status
    return {tuple(sorted(s.labels.items())): s.value
            for fam in text_string_to_metric_families(body.decode()) for s in fam.samples if s.name == name}


def _kill_a_child(worker, pid: int, feed, broker) -> list:
    """kill -9 one child, in the middle of the work; publish `feed` while it is down; wait for it back.

    Returns the children's pids after the restart."""
    before = worker.child_pids()
    restarts = _metric(worker, "harmrank_child_restarts_total")[()]
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: worker.get("/readyz")[0] == 503, "/readyz 503 while a child is down", worker, timeout=10)
    assert worker.get("/healthz")[0] == 503
    publish_file(broker, feed)
    _wait(lambda: _metric(worker, "harmrank_child_restarts_total") == {(): restarts + 1}, "the restart counted",
          worker)
    after = _wait(lambda: len(worker.child_pids()) == 2 and worker.child_pids(), "the child back", worker)
    assert pid not in after and set(before) - {pid} <= set(after)
    worker.wait_ready(timeout=120)
    return after


def test_two_processes_rank_as_the_batch_and_survive_a_kill_minus_9_of_each(own_broker, workers, tmp_path):
    events = list(generate(seed=909, events=FEED_EVENTS, invalid_rate=0.005))
    third = len(events) // 3
    parts = [write_feed(tmp_path / f"part{i}.jsonl", events[i * third:(i + 1) * third if i < 2 else None])
             for i in range(3)]
    expected = batch_rank(write_feed(tmp_path / "whole.jsonl", events))

    worker = workers(own_broker, partitions=4, processes=2).start()
    worker.wait_ready()
    children = _wait(lambda: len(worker.child_pids()) == 2 and worker.child_pids(), "two children", worker)
    assert _metric(worker, "harmrank_processes") == {(): 2.0}
    assert _metric(worker, "harmrank_worker_ready") == {(("process", "0"),): 1.0, (("process", "1"),): 1.0}
    assert sorted(p.name for p in worker.data_dir.iterdir() if p.is_dir()) == ["p0", "p1"]
    assert worker.get("/ranking")[0] == 401  # the children's token gate answers through the public port

    # Each child in turn (one of them holds the ranker) is killed in the middle of the work.
    publish_file(own_broker, parts[0])
    _wait(lambda: worker.get_json("/ranking")["entries"], "a ranking under way", worker)
    children = _kill_a_child(worker, children[-1], parts[1], own_broker)
    _wait(lambda: worker.get_json("/ranking")["entries"], "a ranking after the restart", worker)
    children = _kill_a_child(worker, children[0], parts[2], own_broker)

    worker.wait_ranking_equals(expected, timeout=120)
    out = wait_membership(own_broker, {r["suspect_id"] for r in expected}, top_n=100, dedup=True)
    assert out
    top = expected[0]
    body = worker.get_json(f"/suspects/{top['suspect_id']}")  # passed to a child, which routes to the owner
    assert (body["score"], body["rank"]) == (top["score"], 1)
    assert worker.get("/healthz") == (200, json.dumps({"status": "ok", "processes": 2}).encode())

    # SIGTERM stops the children and then the supervisor, cleanly.
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=60) == 0, worker.log_tail()
    for pid in children:
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower()


def _saved_deal(worker) -> list:
    """What each child holds, by its saved assignment: [{topic: partitions}] in child order, empty topics left out."""
    from agents.compat.faust_sticky import ASSIGNMENT_FILE

    paths = [worker.data_dir / f"p{i}" / "v1" / ASSIGNMENT_FILE for i in range(2)]
    return [{t: p for t, p in json.loads(path.read_text())["actives"].items() if p} for path in paths]


def _restarted(worker, deal: list) -> list:
    """kill -9 the whole group; write `deal` as the children's saved assignments; start again.

    Returns the deal the children saved once ready (every child saves each assignment it gets)."""
    from agents.compat.faust_sticky import ASSIGNMENT_FILE, save

    worker.kill9()
    for i, held in enumerate(deal):
        save(worker.data_dir / f"p{i}" / "v1" / ASSIGNMENT_FILE, held)
    written = time.time()
    worker.start()
    worker.wait_ready(timeout=120)
    paths = [worker.data_dir / f"p{i}" / "v1" for i in range(2)]
    _wait(lambda: all((p / ASSIGNMENT_FILE).stat().st_mtime > written for p in paths), "both assignments saved",
          worker)
    return _saved_deal(worker)


def test_a_kill_minus_9_of_the_whole_group_keeps_each_process_on_what_it_held(own_broker, workers, tmp_path):
    """Each child claims, at its first join, the partitions its data directory held (agents/compat/faust_sticky):
    the same deal after a restart, and the other child's after the saved deals are swapped, which moves every
    partition and still ranks as the batch does."""
    feed = write_feed(tmp_path / "feed.jsonl", generate(seed=303, events=3000, invalid_rate=0.005))
    expected = batch_rank(feed)
    worker = workers(own_broker, partitions=4, processes=2).start()
    worker.wait_ready()
    publish_file(own_broker, feed)
    worker.wait_ranking_equals(expected)
    deal = _saved_deal(worker)
    assert deal[0] and deal[1] and all(set(deal[0][t]).isdisjoint(deal[1].get(t, [])) for t in deal[0])

    assert _restarted(worker, deal) == deal
    worker.wait_ranking_equals(expected)
    swapped = [deal[1], deal[0]]
    assert _restarted(worker, swapped) == swapped
    worker.wait_ranking_equals(expected)
