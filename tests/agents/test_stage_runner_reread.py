"""agents.stage_runner.StageRunner.reread: lost input is read again, counted and logged, or said to be gone."""
from __future__ import annotations

import asyncio
import logging

from agents import metrics
from agents.stage_runner import Health, StageRunner


def runner(answer: bool, seeks: list) -> StageRunner:
    async def read_again(topic, gaps):
        seeks.append((topic, gaps))
        return answer

    async def send(work):
        raise AssertionError("nothing is sent")

    return StageRunner(send, Health(), read_again)


def skipped_reads(stage: str) -> float:
    return metrics.SKIPPED_READS.labels(stage=stage)._value.get()


def test_lost_messages_are_sought_again_counted_and_logged(caplog):
    seeks: list = []
    before = skipped_reads("ledger")
    with caplog.at_level(logging.WARNING, logger="harmrank"):
        assert asyncio.run(runner(True, seeks).reread("ledger", "harmrank-ledger", {2: 17}, "how it showed"))
    assert seeks == [("harmrank-ledger", {2: 17})]
    assert skipped_reads("ledger") == before + 1
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "ledger: how it showed ({2: 17}, partition: offset to read from); reading them again")]


def test_messages_gone_from_the_topic_are_said_to_be_gone(caplog):
    seeks: list = []
    with caplog.at_level(logging.WARNING, logger="harmrank"):
        assert not asyncio.run(runner(False, seeks).reread("ranker", "harmrank-candidates", {0: 5}, "stood still"))
    assert [r.levelname for r in caplog.records] == ["CRITICAL"]
    assert "gone from harmrank-candidates" in caplog.records[0].getMessage()
