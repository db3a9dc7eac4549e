"""Faust's seek after a rebalance, also for partitions with no committed offset (a data-loss fix, tested).

Faust (faust-streaming 0.15.3) can drop fetched records without delivering them:
`Consumer.getmany` skips the records of a partition that is not active yet and
breaks off a batch when the flow stops, but aiokafka has already moved the
partition's position past them. Faust counts on `perform_seek` (seek to the
committed offsets) to read them again, and aiokafka's `seek_to_committed`
seeks only to a committed offset above 0. A partition with no committed
offset yet keeps the position the dropped fetch left it at, and what it held
is never read: a worker killed before its first commit and restarted can
lose a stage's input (its ledger read from the end of the partition; the
end-to-end kill tests found it, docs/PERFORMANCE.md).

`install(topics)` makes `perform_seek` also seek every assigned partition of
`topics` with no committed offset above 0 to its earliest offset. Each stage
skips what its state already holds (the input offset it keeps with its
state), so reading a partition again from its start costs time, never a
double count.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable

log = logging.getLogger(__name__)

_original: Any = None
_topics: frozenset = frozenset()


async def _perform_seek(self: Any) -> None:
    await _original(self)
    committed = self._committed_offset
    rewind = sorted(tp for tp in self.assignment() if tp.topic in _topics and not committed.get(tp))
    if not rewind:
        return
    earliest = await self.earliest_offsets(*rewind)
    for tp in rewind:
        await self.seek(tp, earliest.get(tp) or 0)


def install(topics: Iterable[str]) -> bool:
    """Seek uncommitted partitions of `topics` to their start after every Faust seek; False if installed."""
    global _original, _topics
    from faust.transport.consumer import Consumer

    if _original is not None:
        return False
    _topics = frozenset(topics)
    _original = Consumer.perform_seek
    Consumer.perform_seek = _perform_seek  # type: ignore[method-assign]
    log.info("Faust's seek also rewinds uncommitted partitions of %s to their start", sorted(_topics))
    return True


def uninstall() -> None:
    """Undo :func:`install` (for tests)."""
    global _original, _topics
    from faust.transport.consumer import Consumer

    if _original is not None:
        Consumer.perform_seek = _original  # type: ignore[method-assign]
        _original = None
        _topics = frozenset()


def is_installed() -> bool:
    return _original is not None
