"""Hand a stage its batches: work, send, write, acknowledge; and try a failed batch again, never skip it.

Two orders keep a crash from losing anything (streams/stages say which a stage takes):
- send first (intake, register): the batch's output is sent and acknowledged,
  then its state is written (`ChangelogPipe`); a crash between replays the batch,
  whose facts are absolute state, so nothing counts twice.
- write first (ledger, ranker): the state, holding the batch's output, is
  written and its changelog acknowledged, then the output is sent; a crash
  between re-sends exactly that output (`recover`).
A batch that fails before its state is written is tried again, with backoff,
until it succeeds: meanwhile `/healthz` answers 503 and `harmrank_stage_failures_total`
counts. A failure after the local write ends the process (exit 75), so that a
restart sends the write to the changelog and its output again.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from streams.stages import Message, Work
from streams.stages.base import skipped

from . import metrics
from .faust_store import ChangelogPipe

log = logging.getLogger("harmrank")

#: Backoff between tries of a failed batch: doubles from the first to the last.
RETRY_FIRST_S = 0.2
RETRY_LAST_S = 30.0


class Health:
    """Which stages cannot make progress now (a failing batch): /healthz is 503 while any is."""

    def __init__(self) -> None:
        self.failing: dict = {}  # stage -> (since monotonic, last error)

    def ok(self) -> bool:
        return not self.failing


class StageRunner:
    """Moves batches between Faust and the stages; `send(work)` sends a Work's records and waits for them.

    `read_again(topic, {partition: offset})` seeks those partitions of a stage's input back and returns
    True, or returns False when those messages are gone from the topic (its retention deleted them).
    """

    def __init__(self, send: Callable, health: Health, read_again: Callable):
        self.send = send
        self.health = health
        self.read_again = read_again

    async def run(self, name: str, stream, stage, work: Callable[[list], Work], after: Callable[[Work], None],
                  batch: int, within: float) -> None:
        """Each batch of `stream`: `work(messages)` until it is sent and written, then `after(work)`."""
        pipe = ChangelogPipe(stream)
        async for events in stream.noack_take(batch, within=within):
            messages = [Message(e.message.topic, e.message.partition, e.message.offset, e.message.timestamp,
                                e.message.value) for e in events]
            gaps = skipped(messages, stage.applied_offset)
            if gaps and await self.reread(name, messages[0].topic, gaps,
                                          "a batch skips messages its state has not applied: the consumer lost them"):
                continue  # not worked, not acknowledged: its messages come again, after the missing ones
            done = await self._until_done(name, stage, lambda: work(messages), pipe, events)
            after(done)
            _observe(name, done.t0)

    async def reread(self, name: str, topic: str, gaps: dict, how: str) -> bool:
        """Read again the messages of a stage's input that its state has not applied ({partition: offset}),
        found missing as `how` says: counted and logged; False when the topic no longer holds them."""
        metrics.SKIPPED_READS.labels(stage=name).inc()
        if await self.read_again(topic, gaps):
            log.warning("%s: %s (%s, partition: offset to read from); reading them again", name, how, gaps)
            return True
        log.critical("%s: the messages from %s are gone from %s (the topic's retention): working on without them",
                     name, gaps, topic)
        return False

    async def _until_done(self, name: str, stage, work: Callable[[], Work], pipe: ChangelogPipe, events: list):
        tries = 0
        while True:
            try:
                done = await self._once(stage, work, pipe, events)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                tries += 1
                delay = min(RETRY_LAST_S, RETRY_FIRST_S * 2 ** (tries - 1))
                metrics.STAGE_FAILURES.labels(stage=name).inc()
                self.health.failing[name] = (time.monotonic(), repr(exc))
                log.error("%s: a batch of %d failed (%r); trying it again in %.1f s (try %d)", name, len(events),
                          exc, delay, tries + 1, exc_info=tries == 1)
                await asyncio.sleep(delay)
                continue
            self.health.failing.pop(name, None)
            return done

    async def _once(self, stage, work: Callable[[], Work], pipe: ChangelogPipe, events: list) -> Work:
        """One try: work the batch, then send and write in the stage's order."""
        done = None
        try:
            done = work()
            if getattr(stage, "writes_first", False):
                await pipe.write_first(done.stores, events, lambda: self.send(done))
            else:
                await self.send(done)
                await pipe.write(done.stores, events)
            return done
        except BaseException:
            if done is not None:
                for store in done.stores:
                    store.discard_changes()
                stage.failed(done)
            else:
                stage.reset()
            raise


def _observe(stage: str, t0: float) -> None:
    """Publish-to-stage latency of the newest fact a stage has just finished (its envelope's `t0`)."""
    if t0:
        metrics.PROCESSING_LATENCY.labels(stage=stage).observe(max(0.0, time.time() - t0))
