"""Keeping CPython's cyclic garbage collector off the batch's state.

`harmrank rank` holds its whole state in DictStores: millions of small lists
and dicts (a suspect's allegations, a report, an expiry bucket) that live until
the end of the run. None of them is ever part of a reference cycle (store
values are plain JSON-able data), yet every full collection of the cyclic
collector traverses all of them, and CPython starts one each time the number of
long-lived objects has grown by a quarter: with millions of objects that is a
large share of the run.

`gc.freeze()` (O(1)) moves every object alive at that moment to a permanent
generation that collections skip. Objects that die later are still freed at
once by reference counting, as always; what a freeze gives up is only the
collection of reference cycles that were already garbage when it ran. Freezing
every `every` events keeps that to the cycles of the last few events (the core
makes none; the validation of a rejected line may), while the young
generations are collected in between, under the worker's thresholds below
(fewer young collections). The permanent generation is handed back to the
collector, and CPython's thresholds restored, when the run ends.

The streaming worker's state lives in RocksDB, but its heap is not small
either: a stage decodes a batch of up to 2000 envelopes of up to 1000 facts
each, and those objects live long enough (through the batch) to be promoted
out of the young generations, so with CPython's default thresholds the
worker runs frequent full collections over its whole heap, each of which stops
every stage. `tune_for_streaming()` sets thresholds under which a batch's objects die (by
reference counting) before a young collection sees them, and freezes what the
worker built at start-up (Faust, its tables, the modules). The collector stays
on, so reference cycles (asyncio and Faust make some) are still collected.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Callable, Iterator

FREEZE_EVERY = 1000

#: The worker's collector thresholds: a young collection every 50,000 net allocations
#: (CPython's default is 700), the middle generation every 50 of those, the full
#: collection as by default. Chosen by comparing thresholds on one replay (docs/PERFORMANCE.md):
#: near the collector-off speed, with short pauses.
STREAMING_THRESHOLDS = (50_000, 50, 10)


@contextmanager
def long_lived_state(every: int = FREEZE_EVERY,
                     thresholds: tuple = STREAMING_THRESHOLDS) -> Iterator[Callable[[], None]]:
    """Yields a `tick()` to call once per event: every `every` ticks it freezes what is alive.

    Inside, the collector runs with `thresholds` (CPython's are restored at the end).
    """
    count = 0
    saved = gc.get_threshold()
    gc.set_threshold(*thresholds)

    def tick() -> None:
        nonlocal count
        count += 1
        if count >= every:
            count = 0
            gc.freeze()

    try:
        yield tick
    finally:
        gc.unfreeze()
        gc.set_threshold(*saved)


def tune_for_streaming(thresholds: tuple = STREAMING_THRESHOLDS) -> None:
    """For a long-running worker: collect young objects less often, and skip what start-up built.

    Call once, when the app is built and before its loop starts. It collects
    first, so the freeze keeps nothing that is already garbage: only the objects
    start-up made, out of every later collection.
    """
    gc.collect()
    gc.set_threshold(*thresholds)
    gc.freeze()
