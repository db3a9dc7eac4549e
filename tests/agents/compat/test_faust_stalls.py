"""agents.compat.faust_stalls: a stage partition whose state stands behind its topic's end is read again."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

from faust.types import TP

from agents.compat import faust_stalls as stalls

TOPIC = "harmrank-register"


class Stage:
    def __init__(self, applied: dict):
        self.applied = applied

    def applied_offset(self, partition: int):
        return self.applied.get(partition)


def watched(stage: Stage, high: dict, seeks: list, ready=lambda: True):
    timers = []
    app = SimpleNamespace(
        timer=lambda interval: (lambda fn: timers.append(fn) or fn),
        assignor=SimpleNamespace(assigned_actives=lambda: {TP(TOPIC, 0), TP(TOPIC, 1), TP("other", 0)}),
        consumer=SimpleNamespace(highwater=lambda tp: high.get(tp.partition)))

    async def reread(name, topic, gaps, how):
        assert name == "register" and f"{topic}[0] has stood at offset" in how
        seeks.append((topic, gaps))
        return True

    stalls.watch_stalls(app, ready, {TOPIC: ("register", stage)}, reread)
    return timers[0]


def tick(timer, monkeypatch, at: float) -> None:
    monkeypatch.setattr(stalls.time, "monotonic", lambda: at)
    asyncio.run(timer())


def test_a_partition_standing_behind_its_end_is_read_again_from_where_its_state_ends(monkeypatch):
    stage, seeks = Stage({0: 434, 1: 99}), []
    timer = watched(stage, {0: 436, 1: 100}, seeks)  # partition 0 holds 435 unapplied; 1 is at its end
    tick(timer, monkeypatch, 100.0)
    tick(timer, monkeypatch, 100.0 + stalls.STALL_S - 1)
    assert seeks == []
    tick(timer, monkeypatch, 100.0 + stalls.STALL_S)
    assert seeks == [(TOPIC, {0: 435})]


def test_a_partition_making_progress_or_a_worker_not_ready_is_left_alone(monkeypatch):
    stage, seeks = Stage({0: 10, 1: 99}), []
    timer = watched(stage, {0: 50, 1: 100}, seeks)
    for k in range(5):
        stage.applied[0] = 10 + k  # moving on, behind the end
        tick(timer, monkeypatch, 100.0 + k * stalls.STALL_S)
    assert seeks == []
    idle = watched(Stage({0: 10}), {0: 50}, seeks, ready=lambda: False)
    for k in range(3):
        tick(idle, monkeypatch, 100.0 + k * stalls.STALL_S)
    assert seeks == []
