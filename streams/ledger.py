"""The suspect ledger: each suspect's allegations in the rolling window (one partition by suspect).

It holds, per suspect, every allegation of his inside the longest list window
(counted and linked offences alike), moves them between the parts of each list
as the clock goes (streams/listsums.py: the scored part, an escalation list's
earlier part, out) through the expiry index (streams/expiry.py), and keeps each
list's local top N of the partition in a `TopBook`. Only changes to a local top
N go on to the ranker: a suspect outside his partition's top N of a list cannot
be in that list's global top N, so the ranker's input does not grow with every
score change.

A suspect's record ("p:<suspect>") is `[[sums of each list], {crime_ref:
allegation record}]`; the sums are running sums of the allegations (exact
integers, hundredths of a day), so a change costs O(lists), not a pass over
his record. `summarise()` sums a record afresh, to check the running sums against.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence

from schemas.defaults import MIN_ALLEGATIONS, TOP_N, WINDOW_DAYS
from schemas.events import us_to_iso
from schemas.lists import ListSpec, default_lists

from . import listsums as ls
from .book import TopBook
from .expiry import ExpiryIndex
from .messages import (LOWERING_WHYS, WHY_ADDED, WHY_DISPLACED, WHY_EXPIRED, Allegation, AllegationUpdate,
                       CandidateUpdate, Summary)
from .store import Store

_SUMS, _ALLEGATIONS = 0, 1  # a suspect record: [[sums of each list], {crime_ref: allegation record}]
_RECORDED = 3  # in an allegation record [code, cents, vawg, recorded_at, [victim ids]]
_UNSET = object()


def _order(standing: Optional[tuple]) -> tuple:
    """Where a list standing ((Summary, eligible) or None) ranks: eligible ones first, then by the rank key."""
    if standing is None:
        return (2,)
    summary, eligible = standing
    return (0 if eligible else 1, -summary.score, -summary.allegations, -summary.newest)


def record_standings(rec: Optional[list]) -> list:
    """Each list's standing (a Summary) from the running sums of a suspect record, in the lists' order."""
    return [] if rec is None else [ls.standing(sums) for sums in rec[_SUMS]]


def record_allegations(rec: Optional[list]) -> dict:
    """crime_ref -> allegation record ([code, cents, vawg, recorded_at, [victim ids]]) of a suspect record."""
    return {} if rec is None else rec[_ALLEGATIONS]


def summarise(rec: Optional[list]) -> Summary:
    """A suspect's standing summed afresh over every VAWG allegation of his record: what the one default
    list counts (the record holds only the window), to check the running sums against."""
    sums = ls.new_sums()
    for a in record_allegations(rec).values():
        if a[2]:
            ls.add(sums, a, ls.SCORED)
    return ls.standing(sums)


class Explanation(NamedTuple):
    """Why a suspect stands where he does in a list: his standing and every allegation of his in the window."""

    summary: Summary
    allegations: list  # [(crime_ref, Allegation)], oldest first (the next to leave the window first)
    eligible: bool
    earlier_score: int  # an escalation list: the harm of his counted allegations before the recent part


class Ledger:
    def __init__(self, store: Store, top_n: int = TOP_N, window_days: int = WINDOW_DAYS,
                 min_allegations: int = MIN_ALLEGATIONS, book_capacity: Optional[int] = None,
                 lists: Optional[Sequence[ListSpec]] = None):
        self.store = store
        self.rules = ls.rules_of(lists or default_lists(top_n, window_days, min_allegations))
        self.window_us = max(rule.window_us for rule in self.rules)
        # The spans whose crossing moves an allegation between parts without leaving the ledger.
        self._spans = sorted({s for r in self.rules for s in (r.span_us, r.window_us)} - {self.window_us})
        self._book_capacity = book_capacity
        self._books: Optional[list] = None
        # per list: suspect -> (why, cause) since the last flush; a cause that is an int is the clock
        # ("clock:<as_of>", formatted by flush() only if it is sent on)
        self._dirty: list = [{} for _ in self.rules]
        # per list: the suspects in _dirty only to be compared after a restart; whatever moves them names the cause
        self._rechecks: list = [set() for _ in self.rules]
        # per list: the suspects with an "ann:<list>:" key (at most N), derived from the store with the book
        self._announced: list = [set() for _ in self.rules]
        self.expiry = ExpiryIndex(store)
        self._clock_iso: tuple = (None, None)  # (as_of, "clock:<as_of>") last formatted
        self._lists_checked = False

    # -- reading -----------------------------------------------------------------

    @property
    def as_of(self) -> int:
        return self.store.get("clock", 0)

    def index_of(self, name: Optional[str]) -> int:
        """The position of a list by name (None: the first list)."""
        if name is None:
            return 0
        for i, rule in enumerate(self.rules):
            if rule.name == name:
                return i
        raise KeyError(name)

    def _check_lists(self) -> None:
        """On first use: if the store's sums were kept for other lists (a changed lists file), sum every
        record afresh for these, recount, and drop what was announced for lists no longer kept."""
        self._lists_checked = True
        settings = [rule.spec.settings_text() for rule in self.rules]
        store = self.store
        if store.get("lists") == settings:
            return
        tracked, eligible = ls.sum_records_afresh(store, self.rules, self.as_of)
        names = {rule.name for rule in self.rules}
        for key, _ in list(store.scan("ann:")):
            if key.split(":", 2)[1] not in names:
                del store[key]
        store["stats"] = [tracked, eligible]
        store["lists"] = settings

    @property
    def books(self) -> list:
        if self._books is None:  # first use, or after a restart: rebuild from the store
            if not self._lists_checked:
                self._check_lists()
            books = []
            for i, rule in enumerate(self.rules):
                capacity = self._book_capacity if self._book_capacity is None else max(
                    self._book_capacity, rule.top_n)
                book = TopBook(rule.top_n, capacity, lambda i=i: self._eligible_keys(i))
                book.rebuild(self._eligible_keys(i))
                books.append(book)
            self._books = books
            self._reconcile()
        return self._books

    @property
    def book(self) -> TopBook:
        """The first list's book."""
        return self.books[0]

    def _reconcile(self) -> None:
        """After a restart, have the next flush compare every announced and every current member.

        A crash between a change and its flush leaves the store ahead of what
        was announced; replaying the input finds nothing to change, so the
        difference is found here instead (O(N) a list, once per restart).
        """
        cause = self.as_of  # the clock, unless a change names a better cause before the flush (_rechecks)
        for i, rule in enumerate(self.rules):
            prefix = f"ann:{rule.name}:"
            self._announced[i] = set()
            for key, _ in self.store.scan(prefix):
                self._announced[i].add(key[len(prefix):])
                self._recheck(i, key[len(prefix):], cause)
            for suspect in self._books[i].members():
                self._recheck(i, suspect, cause)

    def _recheck(self, i: int, suspect: str, cause: int) -> None:
        if suspect not in self._dirty[i]:
            self._dirty[i][suspect] = (WHY_DISPLACED, cause)
            self._rechecks[i].add(suspect)

    def _touch(self, i: int, suspect: str, why: str, cause) -> None:
        """Mark him changed in list i with (why, cause), unless a change of his own already named one."""
        if suspect not in self._dirty[i] or suspect in self._rechecks[i]:
            self._dirty[i][suspect] = (why, cause)
            self._rechecks[i].discard(suspect)

    def allegations(self, suspect: str) -> dict:
        """crime_ref -> Allegation of every allegation of his in the ledger's window."""
        rec = self.store.get("p:" + suspect)
        return {ref: Allegation(a[0], a[1], a[2], a[3], tuple(a[4])) for ref, a in record_allegations(rec).items()}

    def explain(self, suspect: str, name: Optional[str] = None) -> Optional[Explanation]:
        """His standing in a list (default the first) summed afresh, and all his allegations, or None."""
        rec = self.store.get("p:" + suspect)
        if rec is None:
            return None
        rule = self.rules[self.index_of(name)]
        sums = ls.sums_afresh(rule, rec[_ALLEGATIONS], self.as_of)
        allegations = sorted(self.allegations(suspect).items(), key=lambda item: (item[1].recorded_at, item[0]))
        return Explanation(ls.standing(sums), allegations, ls.eligible(rule, sums), ls.earlier_score(sums))

    def counts(self, suspect: str, name: Optional[str] = None) -> dict:
        """crime_ref -> whether the list counts it, for each of his allegations (the lists that count it)."""
        rule = self.rules[self.index_of(name)]
        return {ref: ls.counts_allegation(rule.offences, a[0], a[2])
                for ref, a in record_allegations(self.store.get("p:" + suspect)).items()}

    def linked_offences(self, suspect: str, name: Optional[str] = None) -> int:
        """How many of his allegations in the list's window the list does not count."""
        rule = self.rules[self.index_of(name)]
        return ls.linked_count(rule, record_allegations(self.store.get("p:" + suspect)), self.as_of)

    def summary(self, suspect: str, name: Optional[str] = None) -> Optional[Summary]:
        """His standing in a list (default the first) from the running sums, or None without a record."""
        rec = self.store.get("p:" + suspect)
        return None if rec is None else ls.standing(rec[_SUMS][self.index_of(name)])

    def stats(self, name: Optional[str] = None) -> tuple[int, int]:
        """(suspects tracked, suspects eligible in a list (default the first)) in this partition."""
        tracked, eligible = self.store.get("stats", [0, {}])
        return tracked, eligible.get(self.rules[self.index_of(name)].name, 0)

    def _eligible_keys(self, i: int):
        rule = self.rules[i]
        for key, rec in self.store.scan("p:"):
            sums = rec[_SUMS][i]
            if ls.eligible(rule, sums):
                yield ls.key_of(key[2:], sums)

    # -- writing -----------------------------------------------------------------

    def apply(self, update: AllegationUpdate) -> None:
        """Set one allegation to its new absolute state; idempotent."""
        self.apply_many((update,))

    def apply_many(self, updates) -> None:
        """apply() each update in turn; a run of updates of one suspect (a merge moves many) is summed once."""
        if not self._lists_checked:  # the records' sums are for these lists from here on
            self._check_lists()
        store = self.store
        i, n = 0, len(updates)
        while i < n:
            suspect, crime_ref, alleg, why, cause, at = updates[i]
            if at > store.get("clock", 0):
                self.advance(at)
            cutoff = store.get("clock", 0) - self.window_us
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

    def _standings(self, rec: Optional[list]) -> Optional[list]:
        """[(Summary, eligible)] of each list, or None without a record."""
        if rec is None:
            return None
        return [(ls.standing(sums), ls.eligible(rule, sums)) for rule, sums in zip(self.rules, rec[_SUMS])]

    def _set(self, suspect: str, changes: list, why: str, cause) -> None:
        """Set each (crime_ref, allegation record or None) of one suspect; his standings are compared once."""
        if self._books is None:
            self.books  # built (after a restart) before the store changes: each change is then a move in them
        key = "p:" + suspect
        rec = self.store.get(key)
        clock = self.as_of
        before: Any = _UNSET
        gone: set = set()  # lists whose newest scored allegation was taken out: found again at the end
        for crime_ref, new in changes:
            old = None if rec is None else rec[_ALLEGATIONS].get(crime_ref)
            if old == new:
                # Nothing to change, but flush() still checks him against what was announced:
                # after a crash before a flush, the replayed input lands here.
                for i in range(len(self.rules)):
                    self._touch(i, suspect, why, cause)
                continue
            if before is _UNSET:
                before = self._standings(rec)
                if rec is None:
                    rec = [[ls.new_sums() for _ in self.rules], {}]
            # Changed in place and written back: the store's value is ours until written.
            for i, rule in enumerate(self.rules):
                sums = rec[_SUMS][i]
                if old is not None and ls.remove(sums, old, ls.part(rule, old, clock)):
                    gone.add(i)
                if new is not None:
                    ls.add(sums, new, ls.part(rule, new, clock))
            if old is not None:
                del rec[_ALLEGATIONS][crime_ref]
                if new is None or old[_RECORDED] != new[_RECORDED]:
                    self.expiry.unindex(suspect, crime_ref, old[_RECORDED])
            if new is not None:
                rec[_ALLEGATIONS][crime_ref] = new
                if old is None or old[_RECORDED] != new[_RECORDED]:
                    self.expiry.index(suspect, crime_ref, new[_RECORDED])
        if before is not _UNSET:
            self._write(suspect, rec, before, gone, clock, why, cause)

    def _write(self, suspect: str, rec: list, before: Optional[list], gone: set, clock: int, why: str,
               cause) -> None:
        """Store his changed record (or delete an empty one) and let each list's book know."""
        if rec[_ALLEGATIONS]:
            for i in gone:
                ls.find_newest(self.rules[i], rec[_SUMS][i], rec[_ALLEGATIONS], clock)
            self.store["p:" + suspect] = rec
            after = self._standings(rec)
        else:
            del self.store["p:" + suspect]
            after = None
        self._count(before, after)
        books = self.books
        for i in range(len(self.rules)):
            was = None if before is None else before[i]
            now = None if after is None else after[i]
            if was == now:
                continue
            self._note(i, suspect, why, cause, _order(now) > _order(was))
            new_key = (-now[0][0], -now[0][1], -now[0][2], suspect) if now is not None and now[1] else None
            entered, exited = books[i].update(suspect, new_key)
            for other in entered + exited:
                if other != suspect:
                    self._touch(i, other, WHY_DISPLACED, cause)

    def _note(self, i: int, suspect: str, why: str, cause, lowered: bool) -> None:
        """Mark his own change in list i. Only a change that lowered him names an exit's reason (SPEC §3:
        a correction, merge or the clock that lowered him; else others displaced him); within a flush a
        lowering reason stays, an event's over the clock's, and the cause is always the latest change's."""
        old = self._dirty[i].get(suspect)
        if not lowered:
            why = WHY_ADDED  # changed, not lowered: if he leaves, others displaced him
        if old is not None and old[0] in LOWERING_WHYS and suspect not in self._rechecks[i]:
            if why not in LOWERING_WHYS or (why == WHY_EXPIRED and old[0] != WHY_EXPIRED):
                why = old[0]
        self._dirty[i][suspect] = (why, cause)
        self._rechecks[i].discard(suspect)

    def _count(self, before: Optional[list], after: Optional[list]) -> None:
        """Keep "stats" ([suspects tracked, {list: suspects eligible}]) up to date."""
        if (before is None) != (after is None) or any(
                (before is not None and before[i][1]) != (after is not None and after[i][1])
                for i in range(len(self.rules))):
            tracked, eligible = self.store.get("stats", [0, {}])
            tracked += (after is not None) - (before is not None)
            eligible = dict(eligible)
            for i, rule in enumerate(self.rules):
                change = bool(after is not None and after[i][1]) - bool(before is not None and before[i][1])
                if change:
                    eligible[rule.name] = eligible.get(rule.name, 0) + change
            self.store["stats"] = [tracked, eligible]

    def advance(self, as_of: int) -> None:
        """Move the clock forward to `as_of`: allegations move between the parts of each list, or age out.

        Every allegation whose recorded_at + span (of any list: an escalation list's
        recent days, a list window shorter than the ledger's) or + window was passed
        is classed again, so each record's sums always stand at the ledger's clock.
        """
        store = self.store
        old = store.get("clock", 0)
        if as_of <= old:
            return
        if not self._lists_checked:
            self._check_lists()
        store["clock"] = as_of
        due: dict = {}  # suspect -> {crime_ref: (recorded_at, leaves the ledger)}
        for span in self._spans:
            for t, suspect, ref in self.expiry.crossing(old - span, as_of - span):
                due.setdefault(suspect, {})[ref] = (t, False)
        for t, suspect, ref in self.expiry.due(as_of - self.window_us):
            due.setdefault(suspect, {})[ref] = (t, True)
        for suspect, refs in due.items():
            self._reclass(suspect, refs, old, as_of)

    def _reclass(self, suspect: str, refs: dict, old: int, clock: int) -> None:
        """Move his allegations in `refs` from their parts at the `old` clock to those at `clock`."""
        rec = self.store.get("p:" + suspect)
        if rec is None:
            return
        allegations = rec[_ALLEGATIONS]
        before = self._standings(rec)
        gone: set = set()
        for ref, (t, leaves) in refs.items():
            a = allegations.get(ref)
            if a is None or a[_RECORDED] != t:
                continue  # a stale entry: that allegation left or moved (it has its own entry)
            for i, rule in enumerate(self.rules):
                was, now = ls.part(rule, a, old), ls.part(rule, a, clock)
                if was != now:
                    if ls.remove(rec[_SUMS][i], a, was):
                        gone.add(i)
                    ls.add(rec[_SUMS][i], a, now)
            if leaves:
                del allegations[ref]
        self._write(suspect, rec, before, gone, clock, WHY_EXPIRED, clock)

    def flush(self) -> list:
        """Each list's local top-N changes since the last flush, as absolute CandidateUpdates.

        Compared against what was last announced (kept in the store), not against
        the previous state, so an update lost in a crash is announced on replay.
        """
        out: list = []
        for i, rule in enumerate(self.rules):
            if self._dirty[i]:
                self._flush_list(i, rule.name, out)
        return out

    def _flush_list(self, i: int, name: str, out: list) -> None:
        members = self.books[i]._members  # is_member(), inline
        store = self.store
        was_announced = self._announced[i]
        dirty = self._dirty[i]
        for suspect, (why, cause) in dirty.items():
            member = suspect in members
            if not member and suspect not in was_announced:
                continue  # was not a candidate and still is not: the common case
            ann_key = f"ann:{name}:{suspect}"
            announced = store.get(ann_key)
            summary = self.summary(suspect, name)
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
            out.append(CandidateUpdate(suspect, member, summary, why, cause, name))
        dirty.clear()
        self._rechecks[i].clear()

    def _clock_cause(self, as_of: int) -> str:
        last, cause = self._clock_iso
        if as_of != last:
            cause = "clock:" + us_to_iso(as_of)
            self._clock_iso = (as_of, cause)
        return cause
