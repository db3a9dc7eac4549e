"""The suspect ledger: each suspect's allegations in the rolling window (one partition by suspect).

It holds, per suspect, every allegation of his still inside the window (VAWG
and linked non-VAWG offences alike), ages them out as the clock moves through
an index of hourly expiry buckets, and keeps the partition's local top N in a
`TopBook`. Only changes to that local top N go on to the global ranker: a
suspect outside his partition's top N cannot be in the global top N, so the
ranker's input does not grow with every score change.

Scores are exact integers (hundredths of a day). A suspect's record in the
store carries his running sums next to his allegations (score, VAWG count,
newest recorded_at, and how many of his VAWG allegations name each victim), so
a change costs O(1) in the size of his record, not a pass over it; only taking
out his newest VAWG allegation looks for the next newest (once per run of
changes). `summarise()` sums a record afresh from its allegations, for checks
and recomputations.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any, NamedTuple, Optional

from schemas.defaults import MIN_ALLEGATIONS, TOP_N, WINDOW_DAYS
from schemas.events import US_PER_DAY, us_to_iso

from .book import TopBook
from .messages import (WHY_DISPLACED, WHY_EXPIRED, Allegation, AllegationUpdate, CandidateUpdate, Summary,
                       rank_key)
from .store import Store

US_PER_HOUR = US_PER_DAY // 24

_tuple_new = tuple.__new__  # Summary(...) without the NamedTuple's Python-level __new__: _tuple_new(Summary, (...))

# Allegation record in the store: [code, cents, vawg, recorded_at, [victim ids]]
_CENTS, _VAWG, _RECORDED, _VICTIMS = 1, 2, 3, 4

# Suspect record in the store ("p:<suspect>"), a list:
#   [score, VAWG allegations, newest recorded_at among them, {victim id: VAWG allegations naming him},
#    {crime_ref: allegation record}]
# The first four are the running sums of the last one; every change keeps them exact.
_SCORE, _COUNT, _NEWEST, _VICTIM_COUNTS, _ALLEGATIONS = range(5)


def record_allegations(rec: Optional[list]) -> dict:
    """crime_ref -> allegation record ([code, cents, vawg, recorded_at, [victim ids]]) of a suspect record."""
    return {} if rec is None else rec[_ALLEGATIONS]


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


def summarise(rec: Optional[list]) -> Summary:
    """A suspect's standing summed afresh from the allegations of his record (None: no record)."""
    score, count, newest, victims = _sums(record_allegations(rec))
    return _tuple_new(Summary, (score, count, newest, len(victims)))


def _standing(rec: list) -> Summary:
    """A suspect's standing from the running sums of his record: O(1)."""
    return _tuple_new(Summary, (rec[_SCORE], rec[_COUNT], rec[_NEWEST], len(rec[_VICTIM_COUNTS])))


_UNSET = object()


class Explanation(NamedTuple):
    """Why a suspect stands where he does: his standing and every allegation of his in the window."""

    summary: Summary
    allegations: list  # [(crime_ref, Allegation)], oldest first (the next to leave the window first)


class Ledger:
    def __init__(self, store: Store, top_n: int = TOP_N, window_days: int = WINDOW_DAYS, min_allegations: int = MIN_ALLEGATIONS,
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
        # The suspects with an "ann:" key (at most N): derived from the store with the book, so that
        # flush() reads the store only for those it may have to announce or withdraw.
        self._announced: set = set()
        # The suspects in _dirty only to be compared after a restart: whatever moves them names the cause.
        self._rechecks: set = set()
        self._xkey: tuple = (None, None)  # (hour, "x:<hour>") of the last expiry bucket written
        self._clock_iso: tuple = (None, None)  # (as_of, "clock:<as_of>") last formatted

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
        cause = self.as_of  # the clock, unless a change names a better cause before the flush (_rechecks)
        self._announced = set()
        for key, _ in self.store.scan("ann:"):
            self._announced.add(key[4:])
            self._recheck(key[4:], cause)
        for suspect in self.book.members():
            self._recheck(suspect, cause)

    def _recheck(self, suspect: str, cause: int) -> None:
        if suspect not in self._dirty:
            self._dirty[suspect] = (WHY_DISPLACED, cause)
            self._rechecks.add(suspect)

    def allegations(self, suspect: str) -> dict:
        """crime_ref -> Allegation of every allegation of his in the window."""
        rec = self.store.get("p:" + suspect)
        return {ref: Allegation(a[0], a[1], a[2], a[3], tuple(a[4])) for ref, a in record_allegations(rec).items()}

    def explain(self, suspect: str) -> Optional[Explanation]:
        """His standing summed afresh and his allegations in the window (VAWG and linked), or None."""
        rec = self.store.get("p:" + suspect)
        if rec is None:
            return None
        allegations = sorted(self.allegations(suspect).items(), key=lambda item: (item[1].recorded_at, item[0]))
        return Explanation(summarise(rec), allegations)

    def summary(self, suspect: str) -> Optional[Summary]:
        rec = self.store.get("p:" + suspect)
        return None if rec is None else _standing(rec)

    def eligible(self, summary: Summary) -> bool:
        return summary.allegations >= self.min_allegations

    def stats(self) -> tuple[int, int]:
        """(suspects tracked, suspects eligible) in this partition."""
        tracked, eligible = self.store.get("stats", [0, 0])
        return tracked, eligible

    def _eligible_keys(self):
        for key, rec in self.store.scan("p:"):
            summary = _standing(rec)
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
            changes: list = []
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
        if self._book is None:
            self.book  # built (after a restart) before the store changes: each change is then a move in it
        store = self.store
        key = "p:" + suspect
        rec = store.get(key)
        allegations: Any = None if rec is None else rec[_ALLEGATIONS]
        before: Any = _UNSET  # his standing before the first change, once there is one
        newest_gone = False  # his newest VAWG allegation was taken out: found again at the end
        for crime_ref, new in changes:
            old = None if allegations is None else allegations.get(crime_ref)
            if old == new:
                # Nothing to change, but flush() still checks him against what was announced:
                # after a crash before a flush, the replayed input lands here.
                if suspect not in self._dirty or suspect in self._rechecks:
                    self._dirty[suspect] = (why, cause)
                    self._rechecks.discard(suspect)
                continue
            if before is _UNSET:
                if rec is None:
                    before = None
                    rec = [0, 0, 0, {}, {}]
                    allegations = rec[_ALLEGATIONS]
                else:
                    before = _standing(rec)
            # Changed in place and written back: the store's value is ours until written.
            if old is not None:
                del allegations[crime_ref]
                if old[_VAWG]:
                    rec[_SCORE] -= old[_CENTS]
                    rec[_COUNT] -= 1
                    counts = rec[_VICTIM_COUNTS]
                    for v in old[_VICTIMS]:
                        if counts[v] == 1:
                            del counts[v]
                        else:
                            counts[v] -= 1
                    if old[_RECORDED] == rec[_NEWEST]:
                        newest_gone = True
            if old is not None and why != WHY_EXPIRED and (new is None or old[_RECORDED] != new[_RECORDED]):
                # No stale entry names him (advance() takes the expired ones out itself).
                self._unindex_expiry(suspect, crime_ref, old[_RECORDED])
            if new is not None:
                allegations[crime_ref] = new
                if old is None or old[_RECORDED] != new[_RECORDED]:
                    self._index_expiry(suspect, crime_ref, new[_RECORDED])
                if new[_VAWG]:
                    rec[_SCORE] += new[_CENTS]
                    rec[_COUNT] += 1
                    if new[_RECORDED] > rec[_NEWEST]:
                        rec[_NEWEST] = new[_RECORDED]
                    counts = rec[_VICTIM_COUNTS]
                    for v in new[_VICTIMS]:
                        counts[v] = counts.get(v, 0) + 1
        if before is _UNSET:
            return
        if allegations:
            if newest_gone:  # expiries take the oldest, so this is rare
                newest = 0
                for a in allegations.values():
                    if a[_VAWG] and a[_RECORDED] > newest:
                        newest = a[_RECORDED]
                rec[_NEWEST] = newest
            store[key] = rec
            after = _standing(rec)
        else:
            del store[key]
            after = None
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
        self._rechecks.discard(suspect)
        # rank_key(suspect, after), inline
        entered, exited = self.book.update(suspect, (-after[0], -after[1], -after[2], suspect)
                                           if is_eligible and after is not None
                                           else None)
        if entered or exited:
            for other in entered + exited:
                if other != suspect and (other not in dirty or other in self._rechecks):
                    dirty[other] = (WHY_DISPLACED, cause)
                    self._rechecks.discard(other)

    def _index_expiry(self, suspect: str, crime_ref: str, recorded_at: int) -> None:
        """Index an allegation under the hour it was recorded in.

        A bucket ("x:<hour>") is three parallel lists, [recorded_at...], [suspect...], [crime_ref...],
        in the order of (recorded_at, suspect, crime_ref): a search compares plain ints, not lists.
        """
        hour = recorded_at // US_PER_HOUR
        last_hour, key = self._xkey
        if hour != last_hour:
            key = f"x:{hour}"
            self._xkey = (hour, key)
        store = self.store
        bucket = store.get(key)
        if bucket is None:
            store[key] = [[recorded_at], [suspect], [crime_ref]]
            # Every bucket at or after the cursor survives advance(), so only a new one can move it.
            cursor = store.get("x-cursor")
            if cursor is None or hour < cursor:
                store["x-cursor"] = hour
            return
        times, suspects, refs = bucket
        last = times[-1]
        if recorded_at > last or (recorded_at == last and (suspect, crime_ref) >= (suspects[-1], refs[-1])):
            times.append(recorded_at)  # in order of arrival
            suspects.append(suspect)
            refs.append(crime_ref)
        else:  # after every entry that is not greater (bisect.insort of the whole entry)
            i = bisect_left(times, recorded_at)
            end = bisect_right(times, recorded_at, i)
            while i < end and (suspects[i], refs[i]) <= (suspect, crime_ref):
                i += 1
            times.insert(i, recorded_at)
            suspects.insert(i, suspect)
            refs.insert(i, crime_ref)
        store[key] = bucket

    def _unindex_expiry(self, suspect: str, crime_ref: str, recorded_at: int) -> None:
        """Take an allegation that leaves before its time (cancel, unlink, merge) out of its expiry bucket."""
        key = f"x:{recorded_at // US_PER_HOUR}"
        bucket = self.store.get(key)
        if bucket is None:
            return
        times, suspects, refs = bucket
        i = bisect_left(times, recorded_at)
        end = bisect_right(times, recorded_at, i)
        while i < end and (suspects[i] != suspect or refs[i] != crime_ref):
            i += 1
        if i == end:
            return
        if len(times) == 1:
            del self.store[key]
            return
        del times[i], suspects[i], refs[i]
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
            times, suspects, refs = bucket
            split = bisect_right(times, cutoff)
            for j in range(split):
                suspect, crime_ref = suspects[j], refs[j]
                rec = store.get("p:" + suspect)
                current = None if rec is None else rec[_ALLEGATIONS].get(crime_ref)
                if current is not None and current[_RECORDED] == times[j]:
                    self._set(suspect, [(crime_ref, None)], WHY_EXPIRED, cause)
            if split < len(times):
                del times[:split]
                del suspects[:split]
                del refs[:split]
                store[key] = bucket
            else:
                del store[key]
        store["x-cursor"] = last_hour

    def flush(self) -> list:
        """The local top-N changes since the last flush, as absolute CandidateUpdates.

        Compared against what was last announced (kept in the store), not against
        the previous state, so an update lost in a crash is announced on replay.
        """
        out: list = []
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
            now = list(summary) if member and summary is not None else None  # a member has a record
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
        self._rechecks.clear()
        return out

    def _clock_cause(self, as_of: int) -> str:
        last, cause = self._clock_iso
        if as_of != last:
            cause = "clock:" + us_to_iso(as_of)
            self._clock_iso = (as_of, cause)
        return cause
