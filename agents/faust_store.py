"""The core's Store over one partition of a RocksDB-backed Faust table, with a write-back cache.

Faust writes a changelog record for every table assignment, and per-event
writes are where Faust loses most of its speed. Each stage therefore works a
batch of messages against this cache and writes every touched key once, at the
end of the batch, after its downstream messages were acknowledged (so a crash
in between replays the batch instead of losing its output).

Reads go straight to the partition's RocksDB; writes go through the table (so
they reach the changelog) under a current event of the same partition: Faust
routes both the local write and the changelog record by that event's
partition. `take_events()` runs the stream in another task, so Faust's own
current event is not set in the agent body; `partition_context` sets it.
"""
from __future__ import annotations

import json
import weakref
from contextlib import contextmanager
from typing import Any, Iterator

from faust.streams import _current_event  # private, stable since Faust 1.x; see module docstring

_MISSING = object()
_GONE = object()


@contextmanager
def partition_context(event) -> Iterator[None]:
    """Make `event` Faust's current event, so table writes go to its partition."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class PartitionStore:
    """One partition of a table, as the core's Store (get / set / del / scan)."""

    def __init__(self, table, partition: int):
        self.table = table
        self.partition = partition
        self._db = table.data._db_for_partition(partition)
        self._cache: dict = {}
        self._dirty: set = set()

    def get(self, key: str, default: Any = None) -> Any:
        value = self._cache.get(key, _MISSING)
        if value is _MISSING:
            raw = self._db.get(key.encode())
            value = _GONE if raw is None else json.loads(raw)
            self._cache[key] = value
        return default if value is _GONE else value

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self._cache[key] = value
        self._dirty.add(key)

    def __delitem__(self, key: str) -> None:
        self._cache[key] = _GONE
        self._dirty.add(key)

    def scan(self, prefix: str) -> Iterator[tuple[str, Any]]:
        """Keys with `prefix` in key order, the cache's view winning over the database."""
        start = prefix.encode()
        seen = set()
        for raw_key, raw_value in self._db.items(from_key=start):
            if not raw_key.startswith(start):
                break
            key = raw_key.decode()
            seen.add(key)
            value = self._cache.get(key, _MISSING)
            if value is _MISSING:
                yield key, json.loads(raw_value)
            elif value is not _GONE:
                yield key, value
        for key in [k for k in self._dirty if k.startswith(prefix) and k not in seen]:
            value = self._cache[key]
            if value is not _GONE:
                yield key, value

    @property
    def dirty(self) -> int:
        return len(self._dirty)

    def flush(self, event) -> int:
        """Write every key changed since the last flush, to this partition's database and changelog.

        `event` is one of this partition's: Faust sends the changelog record to
        its partition. The database write is ours, not `table[key] = ...`:
        Faust's store deletes a key from whichever partition last wrote it (or
        from all of them), and our partitions share key names ("clock", "x:<hour>").
        """
        table, db = self.table, self._db
        written = len(self._dirty)
        with partition_context(event):
            for key in self._dirty:
                value = self._cache[key]
                raw_key = key.encode()
                if value is _GONE:
                    table.on_key_del(raw_key)
                    db.delete(raw_key)
                else:
                    raw_value = _dumps(value)
                    table.on_key_set(raw_key, raw_value)
                    db.put(raw_key, raw_value)
        self._dirty.clear()
        self._cache.clear()
        return written

    def discard_changes(self) -> None:
        self._dirty.clear()
        self._cache.clear()
