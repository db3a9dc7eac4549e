"""The small mapping interface through which the core keeps its state.

The batch command backs it with plain dicts; the worker with RocksDB-backed
Faust tables (one partition's slice of them at a time). Values are JSON-able
(lists, dicts, str, int, bool, None) so that any table serializer can hold them.
`scan(prefix)` is the only iteration the core needs: it rebuilds in-memory
indexes after a restart and refills a bounded top-N cache.
"""
from __future__ import annotations

from typing import Any, Iterator, Protocol


class Store(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...

    def __getitem__(self, key: str) -> Any: ...

    def __setitem__(self, key: str, value: Any) -> None: ...

    def __delitem__(self, key: str) -> None: ...

    def scan(self, prefix: str) -> Iterator[tuple[str, Any]]: ...


class DictStore(dict):
    """An in-memory Store for the batch command and the tests."""

    def scan(self, prefix: str) -> Iterator[tuple[str, Any]]:
        for key, value in list(self.items()):
            if key.startswith(prefix):
                yield key, value

