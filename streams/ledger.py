"""The suspect ledger: each suspect's allegations in the rolling window (one partition by suspect).

It holds, per suspect, every allegation of his still inside the window (VAWG
and linked non-VAWG offences alike), ages them out as the clock moves through
an index of hourly expiry buckets, and keeps the partition's local top N in a
`TopBook`. Only changes to that local top N go on to the global ranker: a
suspect outside his partition's top N cannot be in the global top N, so the
ranker's input does not grow with every score change.

Scores are exact integers (hundredths of a day). A suspect's summary is summed
afresh from his own allegations, except for the few prolific suspects whose
record holds thousands of them: for those an in-memory `_Tally` (like the
book, an index derived from the store and rebuilt from it when the ledger is
recreated) keeps the sums up to date in O(1) per change, still in integers.
"""
from __future__ import annotations

import bisect
from typing import Optional

from schemas.events import US_PER_DAY, us_to_iso

from .book import TopBook
from .messages import (WHY_DISPLACED, WHY_EXPIRED, Allegation, AllegationUpdate, CandidateUpdate, Summary,
                       rank_key)
from .store import Store

US_PER_HOUR = US_PER_DAY // 24

_tuple_new = tuple.__new__  # Summary(...) without the NamedTuple's Python-level __new__: _tuple_new(Summary, (...))

# Allegation record in the store: [code, cents, vawg, recorded_at, [victim ids]]
_CENTS, _VAWG, _RECORDED, _VICTIMS = 1, 2, 3, 4


def _sums(allegations: dict) -> tuple[int, int, int, set]:
    """Score, VAWG count, newest recorded_at and victim ids of his allegations: exact integers."""
    score = count = newest = 0
    victims: set = set()
    for a in allegations.values():
        if a[_VAWG]:
            score += a[_CENTS]
            count += 1
            if a[_RECORDED] > newest:
                newest = a[_RECORDED]
            victims.update(a[_VICTIMS])
    return score, count, newest, victims


def summarise(allegations: dict) -> Summary:
    """A suspect's standing from his allegations in the window."""
    score, count, newest, victims = _sums(allegations)
    return _tuple_new(Summary, (score, count, newest, len(victims)))


_UNSET = object()

# Records at least this big keep a _Tally; below half of it they go back to summarise().
TALLY_MIN = 32


class _Tally:
    """The running sums of summarise() for one big record, so a change costs O(1), not O(allegations)."""

    __slots__ = ("score", "count", "newest", "victims")

    def __init__(self, rec: dict):
        self.score = self.count = self.newest = 0
        self.victims: dict = {}  # victim id -> how many of the VAWG allegations name him
        for a in rec.values():
            self.add(a)

    def add(self, a: list) -> None:
        if a[_VAWG]:
            self.score += a[_CENTS]
            self.count += 1
            if a[_RECORDED] > self.newest:
                self.newest = a[_RECORDED]
            victims = self.victims
            for v in a[_VICTIMS]:
                victims[v] = victims.get(v, 0) + 1

    def remove(self, a: list, rec: dict) -> None:
        """Take out `a`, already gone from `rec` (which is rescanned only if `a` was the newest)."""
        if a[_VAWG]:
            self.score -= a[_CENTS]
            self.count -= 1
            victims = self.victims
            for v in a[_VICTIMS]:
                if victims[v] == 1:
                    del victims[v]
                else:
                    victims[v] -= 1
            if a[_RECORDED] == self.newest:  # expiries take the oldest, so this is rare
                self.newest = max((x[_RECORDED] for x in rec.values() if x[_VAWG]), default=0)

    def summary(self) -> Summary:
        return _tuple_new(Summary, (self.score, self.count, self.newest, len(self.victims)))


class Ledger:
    def __init__(self, store: Store, top_n: int = 100, window_days: int = 365, min_allegations: int = 2,
                 book_capacity: Optional[int] = None):
        self.store = store
        self.window_us = window_days * US_PER_DAY
        self.min_allegations = min_allegations
        self.top_n = top_n
        self._book_capacity = book_capacity
        self._book: Optional[TopBook] = None
        # suspect -> (why, cause) since the last flush; a cause that is an int is the clock
        # ("clock:<as_of>", formatted by flush() only if it is sent on)
        self._dirty: dict = {}
        self._tallies: dict = {}  # suspect -> _Tally, for records of TALLY_MIN allegations or more
        # The suspects with an "ann:" key (at most N): derived from the store with the book, so that
        # flush() reads the store only for those it may have to announce or withdraw.
        self._announced: set = set()
        self._xkey = (None, None)  # (hour, "x:<hour>") of the last expiry bucket written
        self._clock_iso = (None, None)  # (as_of, "clock:<as_of>") last formatted

    # -- reading -----------------------------------------------------------------

    @property
    def as_of(self) -> int:
        return self.store.get("clock", 0)

    @property
    def book(self) -> TopBook:
        if self._book is None:  # first use, or after a restart: rebuild from the store
            self._book = TopBook(self.top_n, self._book_capacity, self._eligible_keys)
            self._book.rebuild(self._eligible_keys())
            self._reconcile()
        return self._book

    def _reconcile(self) -> None:
        """After a restart, have the next flush compare every announced and every current member.

        A crash between a change and its flush leaves the store ahead of what
        was announced; replaying the input finds nothing to change, so the
        difference is found here instead (O(N), once per restart).
        """
        cause = "clock:" + us_to_iso(self.as_of)
        self._announced = set()
        for key, _ in self.store.scan("ann:"):
            self._announced.add(key[4:])
            self._dirty.setdefault(key[4:], (WHY_DISPLACED, cause))
        for suspect in self._book.members():
            self._dirty.setdefault(suspect, (WHY_DISPLACED, cause))

    def allegations(self, suspect: str) -> dict:
        """crime_ref -> Allegation of every allegation of his in the window."""
        rec = self.store.get("p:" + suspect) or {}
        return {ref: Allegation(a[0], a[1], a[2], a[3], tuple(a[4])) for ref, a in rec.items()}

    def summary(self, suspect: str) -> Optional[Summary]:
        tally = self._tallies.get(suspect)
        if tally is not None:
            return tally.summary()
        rec = self.store.get("p:" + suspect)
        return None if rec is None else summarise(rec)

    def eligible(self, summary: Summary) -> bool:
        return summary.allegations >= self.min_allegations

    def stats(self) -> tuple[int, int]:
        """(suspects tracked, suspects eligible) in this partition."""
        tracked, eligible = self.store.get("stats", [0, 0])
        return tracked, eligible

    def _eligible_keys(self):
        for key, rec in self.store.scan("p:"):
            summary = summarise(rec)
            if self.eligible(summary):
                yield rank_key(key[2:], summary)

    # -- writing -----------------------------------------------------------------

    def apply(self, update: AllegationUpdate) -> None:
        """Set one allegation to its new absolute state; idempotent."""
        self.apply_many((update,))

    def apply_many(self, updates) -> None:
        """apply() each update in turn; a run of updates of one suspect (a merge moves many) is summed once."""
        store = self.store
        window_us = self.window_us
        i, n = 0, len(updates)
        while i < n:
            suspect, crime_ref, alleg, why, cause, at = updates[i]
            clock = store.get("clock", 0)
            if at > clock:
                self.advance(at)
                clock = store.get("clock", 0)
            cutoff = clock - window_us
            changes = []
            while True:
                if alleg is None or alleg[3] <= cutoff:  # None, or already outside the window
                    changes.append((crime_ref, None))
                else:
                    code, cents, vawg, recorded_at, victims = alleg
                    changes.append((crime_ref, [code, cents, vawg, recorded_at, list(victims)]))
                i += 1
                if i == n:
                    break
                u = updates[i]
                if u[0] != suspect or u[3] != why or u[4] != cause or u[5] != at:
                    break
                crime_ref, alleg = u[1], u[2]
            self._set(suspect, changes, why, cause)

    def _set(self, suspect: str, changes: list, why: str, cause) -> None:
        """Set each (crime_ref, allegation record or None) of one suspect; his standing is compared once."""
        if len(changes) == 1 and suspect not in self._tallies:
            crime_ref, new = changes[0]
            self._set_one(suspect, crime_ref, new, why, cause)
            return
        store = self.store
        key = "p:" + suspect
        rec = store.get(key)
        tally = self._tallies.get(suspect)
        before = _UNSET
        exact = True  # while only additions: score..victims below are his standing after the changes
        for crime_ref, new in changes:
            old = None if rec is None else rec.get(crime_ref)
            if old == new:
                # Nothing to change, but flush() still checks him against what was announced:
                # after a crash before a flush, the replayed input lands here.
                self._dirty.setdefault(suspect, (why, cause))
                continue
            if before is _UNSET:
                if tally is not None:
                    before = tally.summary()
                    if len(changes) > 1:
                        # A run (a merge moves a whole record): one sum at the end costs less than a
                        # tally step per change, each removal of the newest rescanning the record.
                        del self._tallies[suspect]
                        tally = None
                        exact = False
                else:
                    # One pass gives his standing before; additions then update it, so the common
                    # case (a new report) sums the record once, not twice.
                    if rec is None:
                        rec, before = {}, None
                        score = count = newest = 0
                        victims: set = set()
                    else:
                        score, count, newest, victims = _sums(rec)
                        before = _tuple_new(Summary, (score, count, newest, len(victims)))
            # Changed in place and written back: the store's value is ours until written.
            if old is not None:
                del rec[crime_ref]
                exact = False
            if new is not None:
                rec[crime_ref] = new
                if old is None or old[_RECORDED] != new[_RECORDED]:
                    self._index_expiry(suspect, crime_ref, new[_RECORDED])
                if exact and tally is None and new[_VAWG]:
                    score += new[_CENTS]
                    count += 1
                    if new[_RECORDED] > newest:
                        newest = new[_RECORDED]
                    victims.update(new[_VICTIMS])
            if tally is not None:
                if old is not None:
                    tally.remove(old, rec)
                if new is not None:
                    tally.add(new)
        if before is _UNSET:
            return
        if rec:
            store[key] = rec
        else:
            del store[key]
        size = len(rec)
        if tally is None:
            if not rec:
                after = None
            elif size >= TALLY_MIN:
                tally = self._tallies[suspect] = _Tally(rec)
                after = tally.summary()
            elif exact:
                after = _tuple_new(Summary, (score, count, newest, len(victims)))
            else:
                after = summarise(rec)
        else:
            after = tally.summary() if rec else None
            if size < TALLY_MIN // 2:
                del self._tallies[suspect]
        self._changed(suspect, before, after, why, cause)

    def _set_one(self, suspect: str, crime_ref: str, new: Optional[list], why: str, cause) -> None:
        """_set() of one change to a suspect without a tally (the common case: a new report, an expiry),
        summing his record once: additions update the sums of before, a removal's before is the
        sums of after plus the removed allegation."""
        store = self.store
        key = "p:" + suspect
        rec = store.get(key)
        old = None if rec is None else rec.get(crime_ref)
        if old == new:
            # Nothing to change, but flush() still checks him against what was announced:
            # after a crash before a flush, the replayed input lands here.
            self._dirty.setdefault(suspect, (why, cause))
            return
        if old is None:  # an addition
            if rec is None:
                rec, before = {}, None
                score = count = newest = 0
                victims: set = set()
            else:
                score, count, newest, victims = _sums(rec)
                before = _tuple_new(Summary, (score, count, newest, len(victims)))
            rec[crime_ref] = new
            self._index_expiry(suspect, crime_ref, new[_RECORDED])
            store[key] = rec
            if len(rec) >= TALLY_MIN:
                after = (self._tallies.setdefault(suspect, _Tally(rec))).summary()
            else:
                if new[_VAWG]:
                    score += new[_CENTS]
                    count += 1
                    if new[_RECORDED] > newest:
                        newest = new[_RECORDED]
                    victims.update(new[_VICTIMS])
                after = _tuple_new(Summary, (score, count, newest, len(victims)))
            self._changed(suspect, before, after, why, cause)
            return
        del rec[crime_ref]
        if new is not None:
            rec[crime_ref] = new
            if old[_RECORDED] != new[_RECORDED]:
                self._index_expiry(suspect, crime_ref, new[_RECORDED])
        if rec:
            store[key] = rec
        else:
            del store[key]
        # his sums without `old` (and with `new`), then before = those without `new`, with `old`
        score = count = newest = 0
        victims = set()
        for a in rec.values():
            if a[_VAWG] and a is not new:
                score += a[_CENTS]
                count += 1
                if a[_RECORDED] > newest:
                    newest = a[_RECORDED]
                victims.update(a[_VICTIMS])
        if old[_VAWG]:
            before_victims = victims.union(old[_VICTIMS])
            before = _tuple_new(Summary, (score + old[_CENTS], count + 1, max(newest, old[_RECORDED]),
                                          len(before_victims)))
        else:
            before = _tuple_new(Summary, (score, count, newest, len(victims)))
        if not rec:
            after = None
        elif len(rec) >= TALLY_MIN:  # a big record without a tally yet (after a restart)
            after = (self._tallies.setdefault(suspect, _Tally(rec))).summary()
        elif new is None or not new[_VAWG]:
            after = _tuple_new(Summary, (score, count, newest, len(victims)))
        else:
            victims.update(new[_VICTIMS])
            after = _tuple_new(Summary, (score + new[_CENTS], count + 1, max(newest, new[_RECORDED]), len(victims)))
        self._changed(suspect, before, after, why, cause)

    def _changed(self, suspect: str, before: Optional[Summary], after: Optional[Summary], why: str,
                 cause) -> None:
        least = self.min_allegations  # eligible(), inline
        was_eligible = before is not None and before[1] >= least
        is_eligible = after is not None and after[1] >= least
        if (before is None) != (after is None) or was_eligible != is_eligible:
            tracked, eligible = self.stats()
            tracked += (after is not None) - (before is not None)
            eligible += is_eligible - was_eligible
            self.store["stats"] = [tracked, eligible]
        if before == after:
            return
        dirty = self._dirty
        dirty[suspect] = (why, cause)
        # rank_key(suspect, after), inline
        entered, exited = self.book.update(suspect, (-after[0], -after[1], -after[2], suspect) if is_eligible
                                           else None)
        if entered or exited:
            for other in entered + exited:
                if other != suspect and other not in dirty:
                    dirty[other] = (WHY_DISPLACED, cause)

    def _index_expiry(self, suspect: str, crime_ref: str, recorded_at: int) -> None:
        hour = recorded_at // US_PER_HOUR
        last_hour, key = self._xkey
        if hour != last_hour:
            key = f"x:{hour}"
            self._xkey = (hour, key)
        bucket = self.store.get(key)
        entry = [recorded_at, suspect, crime_ref]
        if bucket is None:
            self.store[key] = [entry]
            # Every bucket at or after the cursor survives advance(), so only a new one can move it.
            cursor = self.store.get("x-cursor")
            if cursor is None or hour < cursor:
                self.store["x-cursor"] = hour
        else:
            if entry >= bucket[-1]:
                bucket.append(entry)  # in order of arrival
            else:
                bisect.insort(bucket, entry)
            self.store[key] = bucket

    def advance(self, as_of: int) -> None:
        """Move the clock forward to `as_of` and age out what leaves the window."""
        store = self.store
        if as_of <= store.get("clock", 0):
            return
        store["clock"] = as_of
        cursor = store.get("x-cursor")
        if cursor is None:
            return
        cutoff = as_of - self.window_us
        last_hour = cutoff // US_PER_HOUR
        if last_hour < cursor:
            return
        cause = as_of  # the clock: formatted by flush() if it is sent on
        for hour in range(cursor, last_hour + 1):
            key = f"x:{hour}"
            bucket = store.get(key)
            if bucket is None or bucket[0][0] > cutoff:
                continue
            split = 0
            while split < len(bucket) and bucket[split][0] <= cutoff:
                recorded_at, suspect, crime_ref = bucket[split]
                split += 1
                rec = store.get("p:" + suspect)
                current = None if rec is None else rec.get(crime_ref)
                if current is not None and current[_RECORDED] == recorded_at:
                    self._set(suspect, [(crime_ref, None)], WHY_EXPIRED, cause)
            if split < len(bucket):
                del bucket[:split]
                store[key] = bucket
            else:
                del store[key]
        store["x-cursor"] = last_hour

    def flush(self) -> list:
        """The local top-N changes since the last flush, as absolute CandidateUpdates.

        Compared against what was last announced (kept in the store), not against
        the previous state, so an update lost in a crash is announced on replay.
        """
        out = []
        dirty = self._dirty
        if not dirty:
            return out
        members = self.book._members  # is_member(), inline
        store = self.store
        was_announced = self._announced
        for suspect, (why, cause) in dirty.items():
            member = suspect in members
            if not member and suspect not in was_announced:
                continue  # was not a candidate and still is not: the common case
            ann_key = "ann:" + suspect
            announced = store.get(ann_key)
            summary = self.summary(suspect)
            now = list(summary) if member else None
            if now == announced:
                continue
            if now is None:
                del store[ann_key]
                was_announced.discard(suspect)
            else:
                store[ann_key] = now
                was_announced.add(suspect)
            if cause.__class__ is int:
                cause = self._clock_cause(cause)
            out.append(CandidateUpdate(suspect, member, summary, why, cause))
        dirty.clear()
        return out

    def _clock_cause(self, as_of: int) -> str:
        last, cause = self._clock_iso
        if as_of != last:
            cause = "clock:" + us_to_iso(as_of)
            self._clock_iso = (as_of, cause)
        return cause
