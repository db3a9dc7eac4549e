"""Entries kept under the hour of their time, in chunks of a bounded size: the register's and ledger's time indexes.

An entry is a tuple (time, field...) of a fixed width. An hour's entries live
in chunks, "<prefix><hour>" and then "<prefix><hour>.<k>" for k = 1, 2, ...,
each at most CHUNK entries as parallel lists ([time...], [field...]...) sorted
within the chunk. A new entry goes to the hour's last chunk, and a full one
opens the next: a batch writes back the few chunks it touched, never the whole
hour, so an hour that takes thousands of entries costs each batch no more than
a quiet one. An hour's chunks have no gaps: a chunk emptied while a later one
holds entries stays, empty. The cursor key holds the first hour that may hold
entries. Every reader gets its entries sorted by (time, field...).
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Optional

from schemas.events import US_PER_DAY

from .store import Store

US_PER_HOUR = US_PER_DAY // 24
#: Entries a chunk holds at most: what one write of an hour's index costs at most.
CHUNK = 256


class HourIndex:
    def __init__(self, store: Store, prefix: str, cursor_key: str, width: int):
        self.store = store
        self.prefix = prefix
        self.cursor_key = cursor_key
        self.width = width
        self._open: tuple = (None, None)  # (hour, key) of the chunk the last entry went to: the hour's last

    def key(self, hour: int, k: int = 0) -> str:
        return f"{self.prefix}{hour}" if k == 0 else f"{self.prefix}{hour}.{k}"

    def chunks(self, hour: int) -> list:
        """[(key, chunk)] of an hour, in order."""
        out = []
        while True:
            key = self.key(hour, len(out))
            chunk = self.store.get(key)
            if chunk is None:
                return out
            out.append((key, chunk))

    def add(self, entry: tuple) -> None:
        """Index an entry under the hour of its time (entry[0])."""
        store = self.store
        hour = entry[0] // US_PER_HOUR
        open_hour, key = self._open
        chunk = store.get(key) if open_hour == hour else None
        if chunk is None or len(chunk[0]) >= CHUNK:  # another hour, a chunk emptied and removed since, or full
            chunks = self.chunks(hour)
            if not chunks:
                key = self.key(hour)
                store[key] = [[value] for value in entry]
                self._open = (hour, key)
                cursor = store.get(self.cursor_key)  # only an hour's first chunk can move the cursor
                if cursor is None or hour < cursor:
                    store[self.cursor_key] = hour
                return
            key, chunk = chunks[-1]
            if len(chunk[0]) >= CHUNK:
                key, chunk = self.key(hour, len(chunks)), [[] for _ in range(self.width)]
        _insert(chunk, entry)
        store[key] = chunk
        self._open = (hour, key)

    def remove(self, entry: tuple) -> bool:
        """Take one copy of an entry out of its hour; False if the index does not hold it."""
        hour = entry[0] // US_PER_HOUR
        chunks = self.chunks(hour)
        for i, (_, chunk) in enumerate(chunks):
            at = _find(chunk, entry)
            if at is not None:
                for column in chunk:
                    del column[at]
                self._write_back(chunks, {i})
                return True
        return False

    def take_due(self, cutoff: int, inclusive: bool) -> list:
        """Take out and return every entry whose time is at most `cutoff` (`inclusive`) or before it."""
        store = self.store
        cursor = store.get(self.cursor_key)
        last_hour = (cutoff if inclusive else cutoff - 1) // US_PER_HOUR  # the newest hour holding a due entry
        if cursor is None or last_hour < cursor:
            return []
        split_at = bisect_right if inclusive else bisect_left
        out: list = []
        for hour in range(cursor, last_hour + 1):
            chunks = self.chunks(hour)
            changed = set()
            for i, (_, chunk) in enumerate(chunks):
                split = split_at(chunk[0], cutoff)
                if split:
                    out.extend(zip(*(column[:split] for column in chunk)))
                    for column in chunk:
                        del column[:split]
                    changed.add(i)
            if changed:
                self._write_back(chunks, changed)
        store[self.cursor_key] = last_hour
        out.sort()
        return out

    def crossing(self, low: int, high: int) -> list:
        """The entries with low < time <= high, left in place."""
        cursor = self.store.get(self.cursor_key)
        if cursor is None or high <= low:
            return []
        out: list = []
        for hour in range(max(cursor, low // US_PER_HOUR), high // US_PER_HOUR + 1):
            for _, chunk in self.chunks(hour):
                i, j = bisect_right(chunk[0], low), bisect_right(chunk[0], high)
                out.extend(zip(*(column[i:j] for column in chunk)))
        out.sort()
        return out

    def _write_back(self, chunks: list, changed: set) -> None:
        """Store an hour's changed chunks: the empty ones after its last holding entries go, the others stay."""
        last = max((i for i, (_, chunk) in enumerate(chunks) if chunk[0]), default=-1)
        for i, (key, _) in enumerate(chunks):
            if i > last:
                del self.store[key]
            elif i in changed:
                self.store[key] = chunks[i][1]


def _insert(chunk: list, entry: tuple) -> None:
    """Put `entry` after every entry of `chunk` that is not greater (bisect.insort of the whole entry)."""
    times = chunk[0]
    t = entry[0]
    if not times or t > times[-1] or (t == times[-1] and _rest(chunk, len(times) - 1) <= entry[1:]):
        for column, value in zip(chunk, entry):
            column.append(value)  # in order of arrival: the common case
        return
    i = bisect_left(times, t)
    end = bisect_right(times, t, i)
    while i < end and _rest(chunk, i) <= entry[1:]:
        i += 1
    for column, value in zip(chunk, entry):
        column.insert(i, value)


def _find(chunk: list, entry: tuple) -> Optional[int]:
    times = chunk[0]
    i = bisect_left(times, entry[0])
    end = bisect_right(times, entry[0], i)
    while i < end:
        if _rest(chunk, i) == entry[1:]:
            return i
        i += 1
    return None


def _rest(chunk: list, i: int) -> tuple:
    return tuple(column[i] for column in chunk[1:])
