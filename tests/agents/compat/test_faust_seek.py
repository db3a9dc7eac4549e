"""agents.compat.faust_seek: after Faust's seek to committed offsets, uncommitted stage partitions go back to their start.

The end-to-end kill tests (tests/e2e/test_worker.py) show the loss it prevents on a real
worker; this checks the rule on Faust's consumer class with its broker calls replaced.
"""
from __future__ import annotations

import asyncio

import pytest
from faust.transport.consumer import Consumer
from faust.types import TP

from agents.compat import faust_seek


class _Consumer:
    """Just what perform_seek touches, recording the seeks."""

    def __init__(self, assigned, committed):
        self._read_offset: dict = {}
        self._assigned = set(assigned)
        self._committed_offset = dict(committed)
        self.sought: list = []

    async def seek_to_committed(self):  # Faust's own perform_seek reads this: aiokafka seeks those above 0
        self.sought.extend((tp, offset) for tp, offset in self._committed_offset.items() if offset)
        return dict(self._committed_offset)

    def assignment(self):
        return set(self._assigned)

    async def earliest_offsets(self, *tps):
        return {tp: 5 for tp in tps}  # a log whose first records are gone

    async def seek(self, tp, offset):
        self.sought.append((tp, offset))


@pytest.fixture
def installed():
    assert faust_seek.install(["stage"])
    try:
        yield
    finally:
        faust_seek.uninstall()


def test_uncommitted_stage_partitions_are_read_again_from_their_start(installed):
    a, b, c, other, changelog = TP("stage", 0), TP("stage", 1), TP("stage", 2), TP("other", 0), TP("x-changelog", 0)
    consumer = _Consumer([a, b, c, other, changelog], {a: 40, b: 0})
    asyncio.run(Consumer.perform_seek(consumer))
    assert consumer.sought == [(a, 40), (b, 5), (c, 5)]  # b committed 0 and c none: both from the start


def test_uninstall_restores_faust(installed):
    patched = Consumer.perform_seek
    faust_seek.uninstall()
    assert Consumer.perform_seek is not patched and not faust_seek.is_installed()
    assert faust_seek.install(["stage"]) and not faust_seek.install(["stage"])
