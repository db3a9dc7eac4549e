"""agents.faust_store.ChangelogPipe: a batch's input is acknowledged only once its changelog is.

The pipe lets a stage take its next batch while the last batch's changelog is
in flight; these tests hold the changelog acknowledgement in our hands to show
the order that keeps a crash from losing state.
"""
from __future__ import annotations

import asyncio

import pytest

from agents import faust_store
from agents.faust_store import ChangelogPipe


class _Stream:
    def __init__(self):
        self.acked: list = []

    async def ack(self, event) -> bool:
        self.acked.append(event)
        return True


@pytest.fixture
def changelog(monkeypatch):
    """Replace the real flush with one whose acknowledgement the test releases batch by batch."""
    state = {"written": [], "acks": []}

    async def start_flush(stores):
        state["written"].append(list(stores))
        ack = asyncio.get_running_loop().create_future()
        state["acks"].append(ack)
        return ack

    async def finish_flush(ack):
        await ack

    monkeypatch.setattr(faust_store, "start_flush", start_flush)
    monkeypatch.setattr(faust_store, "finish_flush", finish_flush)
    return state


def test_input_is_acknowledged_only_after_its_changelog(changelog):
    async def main():
        stream = _Stream()
        pipe = ChangelogPipe(stream)
        await pipe.write(["store-a"], ["e1", "e2"])
        await asyncio.sleep(0)
        assert changelog["written"] == [["store-a"]]  # state written at once...
        assert stream.acked == []  # ...but the input waits for the changelog
        changelog["acks"][0].set_result(None)
        await pipe.settle()
        assert stream.acked == ["e1", "e2"]

    asyncio.run(main())


def test_the_next_write_waits_for_the_last_changelog(changelog):
    async def main():
        stream = _Stream()
        pipe = ChangelogPipe(stream)
        await pipe.write(["s"], ["e1"])
        second = asyncio.ensure_future(pipe.write(["s"], ["e2"]))
        await asyncio.sleep(0.01)
        assert not second.done() and len(changelog["written"]) == 1  # batch 2's state waits for batch 1's changelog
        changelog["acks"][0].set_result(None)
        await second
        assert len(changelog["written"]) == 2 and stream.acked == ["e1"]
        changelog["acks"][1].set_result(None)
        await pipe.settle()
        assert stream.acked == ["e1", "e2"]

    asyncio.run(main())


def test_an_idle_stage_acknowledges_on_its_own(changelog):
    async def main():
        stream = _Stream()
        pipe = ChangelogPipe(stream)
        await pipe.write(["s"], ["e1"])
        changelog["acks"][0].set_result(None)
        for _ in range(5):
            await asyncio.sleep(0)
        assert stream.acked == ["e1"]  # no further write() was needed

    asyncio.run(main())


def test_a_failed_changelog_stops_the_worker_as_a_crash_with_the_input_unacknowledged(changelog, monkeypatch):
    """The batch is in local RocksDB only: the process exits (75) rather than let Faust restart the
    agent in-process, so that the restart's resend_pending puts the batch in the changelog."""
    exits = []

    class Exited(Exception):
        pass

    def fake_exit(code):
        exits.append(code)
        raise Exited(code)

    monkeypatch.setattr(faust_store.os, "_exit", fake_exit)

    async def main():
        stream = _Stream()
        pipe = ChangelogPipe(stream)
        await pipe.write(["s"], ["e1"])
        changelog["acks"][0].set_exception(RuntimeError("not written"))
        with pytest.raises(Exited):
            await pipe.write(["s"], ["e2"])
        assert exits == [75] == [faust_store.CHANGELOG_FAILED_EXIT]
        assert stream.acked == []  # read again after the restart (and skipped there as applied)
        assert len(changelog["written"]) == 1  # batch 2's state was not written on top

    asyncio.run(main())
