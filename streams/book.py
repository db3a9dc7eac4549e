"""The top-N book: a sorted index of rank keys that says who entered and who left.

Updates are O(log n) (a SortedList). With `capacity` set, the book keeps only
the best `capacity` entries in memory, so memory stays flat however many
suspects there are; when departures shrink it below N while better-ranked
entries may exist outside it, it refills itself from `refill()` (a scan of the
store). Invariant of a truncated book: every entry outside ranks below every
entry inside, so its first N are always the exact top N.
"""
from __future__ import annotations

from itertools import islice
from typing import Callable, Iterable, Optional

from sortedcontainers import SortedList


class TopBook:
    def __init__(self, n: int, capacity: Optional[int] = None,
                 refill: Optional[Callable[[], Iterable[tuple]]] = None):
        if n < 1:
            raise ValueError("n must be at least 1")
        if capacity is not None and capacity < n:
            raise ValueError("capacity must be at least n")
        if capacity is not None and refill is None:
            raise ValueError("a bounded book needs a refill source")
        self.n = n
        self.capacity = capacity
        self._refill = refill
        self._sorted: SortedList = SortedList()
        self._keys: dict = {}
        self.truncated = False
        self.refills = 0

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, ident) -> bool:
        return ident in self._keys

    def key(self, ident):
        return self._keys.get(ident)

    def rank(self, ident) -> Optional[int]:
        """1-based rank among the held entries, or None."""
        key = self._keys.get(ident)
        return None if key is None else self._sorted.index(key) + 1

    def is_member(self, ident) -> bool:
        key = self._keys.get(ident)
        return key is not None and self._sorted.bisect_left(key) < self.n

    def top(self, n: Optional[int] = None) -> list:
        """The first n (default N) keys in rank order; each key ends with its ident."""
        return list(islice(self._sorted, self.n if n is None else n))

    def members(self) -> list:
        return [key[-1] for key in islice(self._sorted, self.n)]

    def threshold(self):
        """The key at rank N, or None while fewer than N are held."""
        return self._sorted[self.n - 1] if len(self._sorted) >= self.n else None

    def update(self, ident, key) -> tuple[list, list]:
        """Set ident's key (a tuple ending in ident), or remove it (None).

        Returns (entered, exited): the idents whose top-N membership changed.
        """
        n = self.n
        old = self._keys.get(ident)
        if old == key:
            return [], []
        sl = self._sorted
        touches_top = (self.truncated and len(sl) <= n) or (old is not None and sl.bisect_left(old) < n) or (
            key is not None and (len(sl) < n or key < sl[n - 1]))
        before = self.members() if touches_top else None
        if old is not None:
            sl.remove(old)
            del self._keys[ident]
        if key is not None:
            if self.capacity is None or not self.truncated or not sl or key < sl[-1]:
                sl.add(key)
                self._keys[ident] = key
            if self.capacity is not None and len(sl) > self.capacity:
                dropped = sl.pop()
                del self._keys[dropped[-1]]
                self.truncated = True
        if self.truncated and len(sl) < n:
            self.rebuild(self._refill())
        if before is None:
            return [], []
        after = self.members()
        before_set, after_set = set(before), set(after)
        return [i for i in after if i not in before_set], [i for i in before if i not in after_set]

    def rebuild(self, entries: Iterable[tuple]) -> None:
        """Replace the content by `entries` (keys ending in their ident), keeping the best `capacity`."""
        sl = SortedList(entries)
        self.truncated = False
        if self.capacity is not None and len(sl) > self.capacity:
            del sl[self.capacity:]
            self.truncated = True
        self._sorted = sl
        self._keys = {key[-1]: key for key in sl}
        self.refills += 1
