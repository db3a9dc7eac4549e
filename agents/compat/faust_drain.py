"""Faust's message drain without a race of futures per message (a performance fix, tested).

Faust's consumer hands each fetched message to its conductor with
`await self.wait_first(callback(message), self.suspend_flow.wait())`
(faust-streaming 0.15.3, `Consumer._drain_messages`). `wait_first` wraps both
in tasks, adds two more for the service's stopped/crashed events and waits on
all four: several event-loop turns for every message. In a worker whose loop
is also busy with its stages, each turn waits for the others, and envelopes
between stages wait hundreds of milliseconds to reach their agent
(docs/PERFORMANCE.md).

`install()` replaces the drain with the same loop that delivers a message
directly (`await callback(message)`) when the flow is not suspended, and
skips it when it is: a rebalance sets `suspend_flow`, the message is not
delivered, and unlike Faust's race it is not marked read either, so Faust's
seek to the committed offsets after the rebalance reads it again rather than
dropping it as read (the stages also refuse a batch that skips offsets:
`streams.stages.base.skipped`). The one behaviour given up: a delivery that is already blocked
(its stream's buffer full) is no longer abandoned when a rebalance starts; it
completes once the agent takes from the buffer, which our agents always do.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

log = logging.getLogger(__name__)

_original: Any = None


async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover - exercised end to end
    """`faust.transport.consumer.Consumer._drain_messages` of 0.15.3, delivering without `wait_first`."""
    from faust.transport.consumer import CONSUMER_FETCHING
    from mode import Service

    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = cast(Service, self)._stopped.is_set
    fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
    suspended = self.suspend_flow.is_set

    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for

    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(CONSUMER_FETCHING)
            ait = getmany(timeout=1.0)
            await self.sleep(0)
            if not self.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0
                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        if gap > 1 and r_offset:
                            if acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None:
                            if self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                        if suspended():
                            # Not delivered: the read offset stays, so the seek to the committed offsets
                            # after the rebalance does not find it marked read and drop it.
                            continue
                        await callback(message)
                        set_read_offset(tp, offset)
                unset_flag(CONSUMER_FETCHING)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(CONSUMER_FETCHING)


def install() -> bool:
    """Use the direct drain in every Faust consumer of this process; False if already installed."""
    global _original
    from faust.transport.consumer import Consumer

    if _original is not None:
        return False
    _original = Consumer._drain_messages
    Consumer._drain_messages = _drain_messages  # type: ignore[method-assign]
    log.info("Faust's message drain delivers directly (no wait_first per message)")
    return True


def uninstall() -> None:
    """Undo :func:`install` (for tests)."""
    global _original
    from faust.transport.consumer import Consumer

    if _original is not None:
        Consumer._drain_messages = _original  # type: ignore[method-assign]
        _original = None


def is_installed() -> bool:
    return _original is not None
