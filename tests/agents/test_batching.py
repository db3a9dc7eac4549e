"""agents.batching.take_batches: batches that keep filling while the agent works the last one.

Driven through Faust's own agent test context (no broker: nothing here talks to Kafka).
"""
from __future__ import annotations

import asyncio

import faust
import pytest

from agents.batching import take_batches


def run_agent(tmp_path, max_: int, within: float, script):
    """Run `script(put, seen)` against an agent that records each batch; returns what it saw."""
    app = faust.App(f"batching-{tmp_path.name}", broker="kafka://127.0.0.1:1", store="memory://",
                    datadir=str(tmp_path))
    topic = app.topic("numbers", value_type=int)
    seen = {"batches": [], "acked_during": [], "acked_after": [], "queued_while_blocked": None,
            "gate": asyncio.Event(), "stream": None}

    @app.agent(topic)
    async def agent(stream):
        seen["stream"] = stream
        async for events in take_batches(stream, max_, within):
            seen["batches"].append([e.value for e in events])
            seen["acked_during"].append([e.message.acked for e in events])
            seen.setdefault("last_events", []).append(events)
            if len(seen["batches"]) == 1:
                await seen["gate"].wait()

    async def main():
        async with agent.test_context() as agent_:
            async def put(value):  # do not wait for the agent: it may be busy on purpose
                await agent_.put(value, wait=False)

            await script(put, seen)
            await asyncio.sleep(0.2)
            seen["acked_after"] = [[e.message.acked for e in events] for events in seen.get("last_events", [])]

    asyncio.run(main())
    return seen


def test_every_event_once_in_order_and_batches_bounded(tmp_path):
    async def script(put, seen):
        seen["gate"].set()
        for i in range(23):
            await put(i)
        await asyncio.sleep(0.2)

    seen = run_agent(tmp_path, 5, 0.02, script)
    assert [v for batch in seen["batches"] for v in batch] == list(range(23))
    assert all(1 <= len(batch) <= 5 for batch in seen["batches"])


def test_reading_goes_on_while_a_batch_is_worked_and_acks_follow_the_batch(tmp_path):
    async def script(put, seen):
        await put(0)
        await asyncio.sleep(0.1)  # the first batch, [0], is now being worked (blocked on the gate)
        for i in range(1, 6):
            await put(i)
        await asyncio.sleep(0.1)
        # Faust's take_events would leave these in the stream's queue until the gate opens;
        # take_batches has already read them into its buffer.
        seen["queued_while_blocked"] = seen["stream"].channel.queue.qsize()
        seen["batches_while_blocked"] = list(seen["batches"])
        seen["gate"].set()
        await asyncio.sleep(0.2)

    seen = run_agent(tmp_path, 3, 0.02, script)
    assert seen["batches_while_blocked"] == [[0]]
    assert seen["queued_while_blocked"] == 0
    assert seen["batches"] == [[0], [1, 2, 3], [4, 5]]
    assert seen["acked_during"] == [[False], [False] * 3, [False] * 2]  # not while the agent works them
    assert seen["acked_after"] == [[True], [True] * 3, [True] * 2]


def test_the_buffer_is_bounded_while_the_agent_is_busy(tmp_path):
    async def script(put, seen):
        await put(0)
        await asyncio.sleep(0.1)
        for i in range(1, 20):
            await put(i)
        await asyncio.sleep(0.1)
        seen["queued_while_blocked"] = seen["stream"].channel.queue.qsize()
        seen["gate"].set()
        await asyncio.sleep(0.3)

    seen = run_agent(tmp_path, 3, 0.0, script)
    # 19 sent while blocked: at most 2 x 3 in the buffer, one waiting in the reader, the rest queued in Faust.
    assert seen["queued_while_blocked"] >= 19 - 2 * 3 - 1
    assert [v for batch in seen["batches"] for v in batch] == list(range(20))


@pytest.mark.parametrize("max_,within", [(0, 0.01), (3, -1)])
def test_bad_arguments_are_refused(max_, within):
    async def main():
        gen = take_batches(object(), max_, within)
        with pytest.raises(ValueError):
            await gen.__anext__()

    asyncio.run(main())
