"""Batches of a Faust stream that keep filling while the previous batch is being worked.

Faust's `stream.take_events(max, within)` stops reading the stream while the
agent works a batch: its buffer is locked until the batch is acknowledged.
Every stage of the worker ends a batch by waiting for the broker to
acknowledge what it sent, so with `take_events` the stream was read only
during the `within` window between batches: at 500 events/s the intake stage
took about 15 events per 40 ms cycle, fell behind, and the ranking trailed its
reports by seconds, with half a core idle.

`take_batches` reads the stream in the background the whole time, into a
buffer bounded at `2 x max_` (beyond it the reader waits, and Faust's own
queue and fetcher pause in turn). A batch is handed over as soon as `max_`
events are there, or `within` after its oldest event started waiting (for the
events left over from the last batch: after that batch was taken), so under
load batches grow instead of shrinking to whatever came in during the last one.
Events are acknowledged (so their offsets may be committed) only after the
agent has finished the batch, as with `take_events`.
"""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

from mode.utils.aiter import aiter


async def take_batches(stream: Any, max_: int, within: float) -> AsyncIterator[list]:
    """Yield lists of at most `max_` events of `stream` (a Faust Stream), acking each list after it."""
    if max_ < 1 or within < 0:
        raise ValueError("max_ must be at least 1 and within not negative")
    buffer: list = []
    arrived = asyncio.Event()  # an event was added
    drained = asyncio.Event()  # the buffer fell below its bound
    drained.set()
    bound = 2 * max_
    loop = asyncio.get_running_loop()
    oldest_at = [0.0]  # loop time from which the oldest buffered event has been waiting

    async def add_to_buffer(value: Any) -> Any:
        try:
            while len(buffer) >= bound:
                drained.clear()
                await drained.wait()
            event = stream.current_event
            if event is None:
                raise RuntimeError("batch reader found no current event")
            if not buffer:
                oldest_at[0] = loop.time()
            buffer.append(event)
            arrived.set()
        except asyncio.CancelledError:  # pragma: no cover
            raise
        except Exception as exc:  # pragma: no cover - mirrors Faust's take_events
            stream.log.exception("Error adding to batch buffer: %r", exc)
            await stream.crash(exc)
        return value

    acks_were_enabled = stream.enable_acks
    stream.enable_acks = False  # acked below, once the agent is done with the batch
    stream.add_processor(add_to_buffer)
    stream._enable_passive(aiter(stream.channel))  # Faust's background reader, as take_events starts it
    try:
        while not stream.should_stop:
            if not buffer:
                arrived.clear()
                await arrived.wait()
            # Hand over once max_ are there, or `within` after the oldest waiting event came.
            deadline = oldest_at[0] + within
            while len(buffer) < max_:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                arrived.clear()
                try:
                    await asyncio.wait_for(arrived.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            batch = buffer[:max_]
            del buffer[:max_]
            if buffer:  # the rest waits for the next batch: count its wait from now
                oldest_at[0] = loop.time()
            if len(buffer) < bound:
                drained.set()
            try:
                yield batch
            finally:
                for event in batch:
                    await stream.ack(event)
    finally:
        stream.enable_acks = acks_were_enabled
        stream._processors.remove(add_to_buffer)
