"""The small mapping interface through which the core keeps its state.

The batch command backs it with plain dicts; the worker with RocksDB-backed
Faust tables (one partition's slice of them at a time). Values are JSON-able
(lists, dicts, str, int, bool, None) so that any table serializer can hold them.
`scan(prefix)` is the only iteration the core needs: it rebuilds in-memory
indexes after a restart and refills a bounded top-N cache.
"""
from __future__ import annotations

from typing import Any, Iterator, Optional, Protocol

import orjson


class Store(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...

    def __getitem__(self, key: str) -> Any: ...

    def __setitem__(self, key: str, value: Any) -> None: ...

    def __delitem__(self, key: str) -> None: ...

    def scan(self, prefix: str) -> Iterator[tuple[str, Any]]: ...


class DictStore(dict):
    """An in-memory Store for the batch command and the tests: every write is at once final."""

    def commit(self) -> None:
        pass

    def discard_changes(self) -> None:
        raise RuntimeError("a DictStore cannot take back a write: use a WriteBackStore")

    def scan(self, prefix: str) -> Iterator[tuple[str, Any]]:
        for key, value in list(self.items()):
            if key.startswith(prefix):
                yield key, value


def encode_value(value: Any) -> bytes:
    """A store value's JSON bytes, copied to their own size.

    orjson hands its result over in a buffer of at least 4 KiB, and a batch keeps
    every value it writes until the write is sent: tens of thousands of values,
    more as more suspects are touched a batch.
    """
    return b"".join((orjson.dumps(value), b""))


_MISSING = object()
_GONE = object()  # the cache's mark of a key that is not stored (or deleted in this batch)
MISSING, GONE = _MISSING, _GONE  # for the stores built on CachedReads elsewhere


class CachedReads:
    """Reads through a cache of decoded values (`_GONE` caches a missing key); `_load(key)` gives the
    stored JSON bytes or None. Shared by the driver's WriteBackStore and the worker's PartitionStore."""

    _cache: dict

    def _load(self, key: str) -> Optional[bytes]:
        raise NotImplementedError

    def get(self, key: str, default: Any = None) -> Any:
        value = self._cache.get(key, _MISSING)
        if value is _MISSING:
            raw = self._load(key)
            value = _GONE if raw is None else orjson.loads(raw)
            self._cache[key] = value
        return default if value is _GONE else value

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value


class WriteBackStore(CachedReads):
    """A Store over a dict of encoded values, with the worker's write-back: a batch's changes are held
    until `commit()` and dropped by `discard_changes()`, as a crash before the write would drop them.

    Values are kept as JSON bytes, as RocksDB keeps them, so a value the core
    changes in place is the cache's copy, never the committed one.
    """

    def __init__(self, db: Optional[dict] = None):
        self.db: dict = {} if db is None else db
        self._cache: dict = {}

    def _load(self, key: str) -> Optional[bytes]:
        return self.db.get(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self._cache[key] = value

    def __delitem__(self, key: str) -> None:
        self._cache[key] = _GONE

    def scan(self, prefix: str) -> Iterator[tuple[str, Any]]:
        keys = sorted({k for k in self.db if k.startswith(prefix)} | {k for k in self._cache if k.startswith(prefix)})
        for key in keys:
            value = self.get(key)
            if value is not None:
                yield key, value

    def commit(self) -> None:
        for key, value in self._cache.items():
            if value is _GONE:
                self.db.pop(key, None)
            else:
                self.db[key] = encode_value(value)
        self._cache.clear()

    def discard_changes(self) -> None:
        self._cache.clear()


class PrefixedStore:
    """A view of a Store whose keys all begin with `prefix`: one list's part of a stage partition's store."""

    def __init__(self, store: Any, prefix: str):
        self.base = store
        self.prefix = prefix

    def get(self, key: str, default: Any = None) -> Any:
        return self.base.get(self.prefix + key, default)

    def __getitem__(self, key: str) -> Any:
        return self.base[self.prefix + key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.base[self.prefix + key] = value

    def __delitem__(self, key: str) -> None:
        del self.base[self.prefix + key]

    def scan(self, prefix: str) -> Iterator[tuple[str, Any]]:
        cut = len(self.prefix)
        for key, value in self.base.scan(self.prefix + prefix):
            yield key[cut:], value
