"""The top-N book: an index of rank keys that says who entered and who left the top N.

Only the top N is kept in order (a small sorted list: the members). Every other
held entry waits in a binary heap, so an update to a suspect far from the top
costs a dict write and at most a heap push (O(1) on average) instead of a
search through a million keys, whose cache misses dominated the hot path. The
heap is lazy: an entry's old keys stay in it, are recognised as stale when they
reach its head, and are swept out when they outnumber the live ones; a key that
only got worse (the common case as allegations age out) is not pushed at all,
as the copy of his better key already in the heap is fixed when it comes up.

With `capacity` set, the book holds at most `capacity` entries, so memory stays
flat however many suspects there are. It is then truncated: it drops the worst
ones, remembers the best key it dropped as `floor`, and holds a new key only if
it ranks above that floor. When departures leave fewer than N held while better
entries may exist outside, it refills itself from `refill()` (a scan of the
store). Invariant of a truncated book: every entry outside ranks below every
entry inside, so its first N are always the exact top N.
"""
from __future__ import annotations

import heapq
from heapq import heappush
from bisect import bisect_left, insort
from itertools import islice
from typing import Callable, Iterable, Optional


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
        self._top: list = []  # the best min(N, held) keys, sorted: the members (N is small)
        self._members: set = set()  # their idents
        self._rest: list = []  # heap of the other held keys, with stale copies
        self._keys: dict = {}  # ident -> key of every held entry
        self._floor: Optional[tuple] = None  # truncated: the best key not held; only better keys are held
        self.truncated = False
        self.refills = 0

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, ident) -> bool:
        return ident in self._keys

    def key(self, ident):
        return self._keys.get(ident)

    def rank(self, ident) -> Optional[int]:
        """1-based rank among the held entries, or None (O(log N) for a member, O(held) otherwise)."""
        key = self._keys.get(ident)
        if key is None:
            return None
        if ident in self._members:
            return bisect_left(self._top, key) + 1
        return 1 + sum(1 for k in self._keys.values() if k < key)

    def is_member(self, ident) -> bool:
        return ident in self._members

    def top(self, n: Optional[int] = None) -> list:
        """The first n (default N) keys in rank order; each key ends with its ident."""
        n = self.n if n is None else n
        if n <= self.n:
            return list(islice(self._top, n))
        rest = heapq.nsmallest(n - len(self._top), (k for i, k in self._keys.items() if i not in self._members))
        return list(self._top) + rest

    def members(self) -> list:
        return [key[-1] for key in self._top]

    def threshold(self):
        """The key at rank N, or None while fewer than N are held."""
        return self._top[self.n - 1] if len(self._top) >= self.n else None

    def update(self, ident, key) -> tuple[list, list]:
        """Set ident's key (a tuple ending in ident), or remove it (None).

        Returns (entered, exited): the idents whose top-N membership changed
        (at most ident and the one that crosses rank N the other way).
        """
        keys = self._keys
        old = keys.get(ident)
        if old == key:
            return [], []
        top = self._top
        if ident not in self._members:
            # The common case, far from the top: he was not a member and will not be one.
            # (The order of _keys is never relied on, so a key is replaced in place.)
            floor = self._floor
            if key is None or (floor is not None and key >= floor):  # not held from now on
                if old is not None:
                    del keys[ident]  # its copies in the heap are stale from now on
                    if len(self._rest) > 2 * (len(keys) - len(top)) + 64:
                        self._compact()
                return [], []
            if (len(top) >= self.n and key > top[-1]
                    and (old is not None or self.capacity is None or len(keys) < self.capacity)):
                keys[ident] = key
                if old is None or key < old:
                    # A key that only got worse needs no push: the heap's copy of a better
                    # one stands for it (see _head).
                    rest = self._rest
                    heappush(rest, key)
                    if len(rest) > 2 * (len(keys) - len(top)) + 64:
                        self._compact()
                return [], []
        before = {ident: ident in self._members}  # membership before, of every ident touched
        held = key is not None and (self._floor is None or key < self._floor)
        if old is not None:
            del self._keys[ident]
            if before[ident]:
                del self._top[bisect_left(self._top, old)]
                self._members.discard(ident)
                if not (held and self._beats_waiting(key)):  # else he simply keeps his seat
                    promoted = self._promote()
                    if promoted is not None:
                        before.setdefault(promoted, False)
            # otherwise its copy in the heap is stale from now on
        if held:
            self._keys[ident] = key
            top = self._top
            if len(top) < self.n or key < top[-1]:
                insort(top, key)
                self._members.add(ident)
                if len(top) > self.n:
                    demoted = top.pop()
                    self._members.discard(demoted[-1])
                    heapq.heappush(self._rest, demoted)
                    before.setdefault(demoted[-1], True)
            else:
                heapq.heappush(self._rest, key)
            if self.capacity is not None and len(self._keys) > self.capacity:
                self._trim()
        if len(self._rest) > 2 * (len(self._keys) - len(self._top)) + 64:
            self._compact()
        if self.truncated and len(self._top) < self.n:
            old_members = {i for i in self._members if before.get(i, True)} | {i for i, was in before.items() if was}
            refill = self._refill
            assert refill is not None  # a truncated book has one (checked in __init__)
            self.rebuild(refill())
            before = {i: i in old_members for i in old_members | set(self._members)}
        members = self._members
        return ([i for i, was in before.items() if not was and i in members],
                [i for i, was in before.items() if was and i not in members])

    def _head(self):
        """The best waiting key, or None if none waits; stale heap entries at the head are fixed on the way.

        The heap holds, for every waiting entry, at least one copy of its key or
        of a better one (a key that only got worse is not pushed again). A copy
        of a member or of an entry no longer held is dropped; a copy better than
        the entry's key now is replaced by that key, which sinks to its place.
        """
        rest = self._rest
        members, keys = self._members, self._keys
        while rest:
            head = rest[0]
            ident = head[-1]
            if ident in members:
                heapq.heappop(rest)
                continue
            key = keys.get(ident)
            if key is None:
                heapq.heappop(rest)
            elif key == head:
                return head
            else:
                heapq.heapreplace(rest, key)
        return None

    def _beats_waiting(self, key) -> bool:
        """Whether `key` ranks above every waiting entry."""
        head = self._head()
        return head is None or key < head

    def _promote(self):
        """Move the best waiting entry into the top; returns its ident, or None if none waits."""
        key = self._head()
        if key is None:
            return None
        heapq.heappop(self._rest)
        insort(self._top, key)
        self._members.add(key[-1])
        return key[-1]

    def _waiting(self) -> list:
        """The keys of the held entries outside the top, unordered."""
        return [k for i, k in self._keys.items() if i not in self._members]

    def _compact(self) -> None:
        """Drop the stale heap entries (amortised O(1): runs when they outnumber the live ones)."""
        self._rest = self._waiting()
        heapq.heapify(self._rest)

    def _trim(self) -> None:
        """Over capacity: drop the worst waiting entries, halfway down to N so trims stay rare."""
        capacity = self.capacity
        assert capacity is not None  # only a bounded book is trimmed
        waiting = sorted(self._waiting())
        keep = max(0, len(waiting) - (len(self._keys) - capacity) - (capacity - self.n) // 2)
        for key in waiting[keep:]:
            del self._keys[key[-1]]
        dropped = waiting[keep]
        if self._floor is None or dropped < self._floor:
            self._floor = dropped
        self._rest = waiting[:keep]  # a sorted list is a heap
        self.truncated = True

    def rebuild(self, entries: Iterable[tuple]) -> None:
        """Replace the content by `entries` (keys ending in their ident), keeping the best `capacity`.

        A bounded book holds only the best capacity + 1 keys while the entries go by (the one past
        capacity becomes the floor), so a rebuild over a store of a million suspects takes memory for
        the capacity, not for the million.
        """
        keys = sorted(entries) if self.capacity is None else heapq.nsmallest(self.capacity + 1, entries)
        self.truncated = False
        self._floor = None
        if self.capacity is not None and len(keys) > self.capacity:
            self._floor = keys[self.capacity]
            del keys[self.capacity:]
            self.truncated = True
        self._top = keys[:self.n]
        self._members = {key[-1] for key in self._top}
        self._rest = keys[self.n:]
        self._keys = {key[-1]: key for key in keys}
        self.refills += 1
