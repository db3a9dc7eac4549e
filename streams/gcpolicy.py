"""Keeping CPython's cyclic garbage collector off the batch's state.

`harmrank rank` holds its whole state in DictStores: millions of small lists
and dicts (a suspect's allegations, a report, an expiry bucket) that live until
the end of the run. None of them is ever part of a reference cycle (store
values are plain JSON-able data), yet every full collection of the cyclic
collector traverses all of them, and CPython starts one each time the number of
long-lived objects has grown by a quarter: with a million suspects a full
collection took seconds, a quarter to a third of the run.

`gc.freeze()` (O(1)) moves every object alive at that moment to a permanent
generation that collections skip. Objects that die later are still freed at
once by reference counting, as always; what a freeze gives up is only the
collection of reference cycles that were already garbage when it ran. Freezing
every `every` events keeps that to the cycles of the last few events (the core
makes none; the validation of a rejected line may), while the young
generations are collected as usual in between. The permanent generation is
handed back to the collector when the run ends.

Only the batch uses this: the streaming worker's state lives in RocksDB and
its in-memory part is bounded, so it has no large heap for the collector to
walk.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Callable, Iterator

FREEZE_EVERY = 1000


@contextmanager
def long_lived_state(every: int = FREEZE_EVERY) -> Iterator[Callable[[], None]]:
    """Yields a `tick()` to call once per event: every `every` ticks it freezes what is alive."""
    count = 0

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
