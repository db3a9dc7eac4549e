"""The crime register: reports, their offence, suspects and victims (one partition by crime_ref).

It applies the events of SPEC §2 in arrival order, decides the stateful
rejections (unknown, cancelled or already recorded crime_ref, self-merge), drops
re-sent events (by event_id, per report; merges by their own id), and says for
every allegation it touches what that allegation now is.

Suspect ids on a report are kept canonical. Every partition sees every merge,
between the crime events the intake read around it, and keeps the whole alias
forest: so an event that names an old id after a merge resolves it to the merged
record whichever partition it lands in, as a one-process replay does, and each
partition rewrites its own reports and moves their allegations. All partitions
see the same merges in the same order (the intake sends them all from one input
partition), so they decide each one alike.

Retention (SPEC §9): a report recorded more than `retention_days` before the
clock is forgotten with the event ids kept on it, and a merge made that long
ago with its id. Both are indexed by the hour of their time ("f:<hour>" chunks,
streams/hourindex.py), so `advance()` costs what it forgets. A cancelled report
keeps only its mark (recorded_at, cancelled, event ids) until then. The alias a
merge made stays: later events that name the old id apply to the merged record
however late they come (SPEC §2), so a person's reports are never split between
his two ids, and no partition's clock decides which id an event names.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

from schemas.events import (US_PER_DAY, ReportCancelled, ReportReclassified, ReportRecorded, SuspectLinked,
                            SuspectsMerged, SuspectUnlinked)

from .hourindex import HourIndex
from .messages import WHY_ADDED, WHY_CORRECTED, WHY_MERGED, Allegation, AllegationUpdate
from .store import Store

#: The rejections only the core can decide (they need the register's state).
STATEFUL_REJECTION_CODES = ("unknown_crime_ref", "cancelled_crime_ref", "already_recorded", "self_merge")

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
REJECTED = "rejected"

class Outcome(NamedTuple):
    status: str  # ACCEPTED, DUPLICATE or REJECTED
    rejection: Optional[tuple[str, str]]  # (code, detail) when REJECTED
    updates: list


ACCEPTED_NOTHING = Outcome(ACCEPTED, None, [])
DUPLICATE_OUTCOME = Outcome(DUPLICATE, None, [])


def rejected(code: str, detail: str) -> Outcome:
    return Outcome(REJECTED, (code, detail), [])


# Report record layout in the store (a list, compact in RocksDB). Its last field
# holds the ids of the events applied to the report: a re-sent event lands on the
# same crime_ref (so the same partition) and is recognised there, with no global
# index of event ids to grow and purge.
_CODE, _FLAG, _RECORDED, _VICTIMS, _SUSPECTS, _CANCELLED, _EVENTS = range(7)


def resolve(store: Store, suspect: str, prefix: str = "al:") -> str:
    """Follow merge aliases to the canonical id (chains allowed, never cycles).

    An alias is a str; in the register the same key of a canonical id holds the
    list of his crime_refs instead (see Register), which ends the chain too.
    """
    seen = 0
    while True:
        into = store.get(prefix + suspect)
        if into is None or into.__class__ is list:
            return suspect
        suspect = into
        seen += 1
        if seen > 10_000:  # defensive: a merge only ever links two distinct canonical ids, never a cycle
            raise RuntimeError("alias chain too long")


_tuple_new = tuple.__new__  # a NamedTuple without its Python-level __new__: _tuple_new(Cls, (fields...))

CLOCK_KEY = "clock"  # the newest time the register was advanced to
FORGET_CURSOR_KEY = "f-cursor"  # the last hour whose retention bucket advance() has worked


class Register:
    """The register's store: "r:<crime_ref>" a report (the list above), "al:<suspect>" either the
    id he was merged into (a str) or, while he is canonical, the crime_refs of this partition's
    reports that name him (a list: the suspect -> reports index that a merge rewrites), and
    "e:<event_id>" for every merge applied (merges name no report to remember them on: its id, kept
    to drop a re-sent merge, goes with retention), holding the id it made an alias. One key per
    suspect, so a new report reads and writes it once to resolve and index him. With a retention,
    "f:<hour>" chunks list the reports and merges of that hour by time, [[time...],
    ["r:<crime_ref>" or "e:<event_id>"...]], for `advance()` to forget.
    """

    def __init__(self, store: Store, harm_table, retention_days: Optional[int] = None):
        self.store = store
        self.harm = harm_table
        self.retention_us = None if retention_days is None else retention_days * US_PER_DAY
        self._hours = HourIndex(store, "f:", FORGET_CURSOR_KEY, 2)  # the retention index

    # -- reading -----------------------------------------------------------------

    def report(self, crime_ref: str) -> Optional[list]:
        return self.store.get("r:" + crime_ref)

    def canonical(self, suspect: str) -> str:
        """The id his record lives under now (merges followed)."""
        return resolve(self.store, suspect)

    def _allegation(self, rec: list) -> Optional[Allegation]:
        """What the report makes of each of its suspects' allegations; None (it counts for nothing) when its
        offence code is not in the harm table any more (a worker restarted with another table)."""
        entry = self.harm.get(rec[_CODE])
        if entry is None:
            return None
        victims = rec[_VICTIMS]
        flag = rec[_FLAG]
        if len(victims) == 1:  # the common case
            v = victims[0]
            vawg = flag if flag is not None else (entry.vawg and v[1] == "F")
            return _tuple_new(Allegation, (rec[_CODE], entry.days_cents, vawg, rec[_RECORDED], (v[0],)))
        vawg = flag if flag is not None else (entry.vawg and "F" in [v[1] for v in victims])
        return _tuple_new(Allegation, (rec[_CODE], entry.days_cents, vawg, rec[_RECORDED],
                                       tuple([v[0] for v in victims])))

    def rescore(self, cause: str, at: int) -> list:
        """Every allegation of this partition's live reports, as the harm table now scores it (SPEC §9: a
        changed table); absolute facts, so the ledger moves only what changed, with `cause`."""
        updates = []
        for key, rec in self.store.scan("r:"):
            if rec[_CANCELLED]:
                continue
            allegation = self._allegation(rec)
            updates.extend(_tuple_new(AllegationUpdate, (s, key[2:], allegation, WHY_CORRECTED, cause, at))
                           for s in rec[_SUSPECTS])
        return updates

    # -- writing -----------------------------------------------------------------

    def apply(self, event) -> Outcome:
        if event.__class__ is SuspectsMerged:
            return self._merge(event)
        key = "r:" + event.crime_ref
        rec = self.store.get(key)
        if rec is not None and event.event_id in rec[_EVENTS]:
            return DUPLICATE_OUTCOME
        if isinstance(event, ReportRecorded):
            if rec is not None:
                return rejected("already_recorded", f"crime_ref {event.crime_ref!r} is already recorded")
            return self._record(key, event)
        if rec is None:
            return rejected("unknown_crime_ref", f"crime_ref {event.crime_ref!r} is not known")
        if rec[_CANCELLED]:
            return rejected("cancelled_crime_ref", f"crime_ref {event.crime_ref!r} is cancelled")
        rec = list(rec)
        rec[_EVENTS] = rec[_EVENTS] + [event.event_id]
        self.store[key] = rec  # every accepted event is remembered, the no-ops too
        if isinstance(event, ReportReclassified):
            return self._reclassify(key, rec, event)
        if isinstance(event, ReportCancelled):
            return self._cancel(key, rec, event)
        if isinstance(event, SuspectLinked):
            return self._link(key, rec, event)
        if isinstance(event, SuspectUnlinked):
            return self._unlink(key, rec, event)
        raise TypeError(f"not a crime event: {event!r}")  # pragma: no cover - validation lets only these through

    def _record(self, key: str, ev: ReportRecorded) -> Outcome:
        store = self.store
        crime_ref, event_id, at, code = ev.crime_ref, ev.event_id, ev.at, ev.offence_code
        victims = ev.victims
        entry = self.harm.get(code)
        flag = ev.vawg
        # _allegation(rec) of the record below, from the event's own fields
        if flag is not None:
            vawg = flag
        elif not entry.vawg:
            vawg = False
        else:
            vawg = False
            for v in victims:
                if v.sex == "F":
                    vawg = True
                    break
        if len(victims) == 1:  # the common case
            v = victims[0]
            alleg = _tuple_new(Allegation, (code, entry.days_cents, vawg, at, (v.id,)))
            victim_rows = [[v.id, v.sex]]
        else:
            alleg = _tuple_new(Allegation, (code, entry.days_cents, vawg, at, tuple([v.id for v in victims])))
            victim_rows = [[v.id, v.sex] for v in victims]
        if len(ev.suspects) == 1:  # the common case: resolved and indexed with one read of his key
            suspect = ev.suspects[0]
            while True:
                skey = "al:" + suspect
                value = store.get(skey)
                if value is None:
                    store[skey] = [crime_ref]
                    break
                if value.__class__ is list:
                    value.append(crime_ref)  # in place, then written back: no copy of a long list
                    store[skey] = value
                    break
                suspect = value  # an alias: follow it (resolve(), inline)
            suspects = [suspect]
            store[key] = [code, flag, at, victim_rows, suspects, False, [event_id]]
            self._remember(key, at)
            return _tuple_new(Outcome, (ACCEPTED, None, [
                _tuple_new(AllegationUpdate, (suspect, crime_ref, alleg, WHY_ADDED, event_id, at))]))
        suspects = sorted({resolve(store, s) for s in ev.suspects})
        store[key] = [code, flag, at, victim_rows, suspects, False, [event_id]]
        for s in suspects:
            self._index_add(s, crime_ref)
        self._remember(key, at)
        return _tuple_new(Outcome, (ACCEPTED, None, [
            _tuple_new(AllegationUpdate, (s, crime_ref, alleg, WHY_ADDED, event_id, at)) for s in suspects]))

    def _reclassify(self, key: str, rec: list, ev: ReportReclassified) -> Outcome:
        rec[_CODE] = ev.offence_code
        if ev.vawg is not None:
            rec[_FLAG] = ev.vawg
        self.store[key] = rec
        alleg = self._allegation(rec)
        return Outcome(ACCEPTED, None, [AllegationUpdate(s, ev.crime_ref, alleg, WHY_CORRECTED, ev.event_id, ev.at)
                                        for s in rec[_SUSPECTS]])

    def _cancel(self, key: str, rec: list, ev: ReportCancelled) -> Outcome:
        """Keep only the mark (recorded_at, cancelled, event ids): its suspects and victims go at once."""
        suspects = rec[_SUSPECTS]
        for s in suspects:
            self._index_remove(s, ev.crime_ref)
        self.store[key] = [None, None, rec[_RECORDED], [], [], True, rec[_EVENTS]]
        return Outcome(ACCEPTED, None, [AllegationUpdate(s, ev.crime_ref, None, WHY_CORRECTED, ev.event_id, ev.at)
                                        for s in suspects])

    def _link(self, key: str, rec: list, ev: SuspectLinked) -> Outcome:
        suspect = resolve(self.store, ev.suspect_id)
        if suspect in rec[_SUSPECTS]:
            return ACCEPTED_NOTHING
        rec[_SUSPECTS] = sorted(rec[_SUSPECTS] + [suspect])
        self.store[key] = rec
        self._index_add(suspect, ev.crime_ref)
        return Outcome(ACCEPTED, None,
                       [AllegationUpdate(suspect, ev.crime_ref, self._allegation(rec), WHY_ADDED, ev.event_id, ev.at)])

    def _unlink(self, key: str, rec: list, ev: SuspectUnlinked) -> Outcome:
        suspect = resolve(self.store, ev.suspect_id)
        if suspect not in rec[_SUSPECTS]:
            return ACCEPTED_NOTHING
        rec[_SUSPECTS] = [s for s in rec[_SUSPECTS] if s != suspect]
        self.store[key] = rec
        self._index_remove(suspect, ev.crime_ref)
        return Outcome(ACCEPTED, None, [AllegationUpdate(suspect, ev.crime_ref, None, WHY_CORRECTED, ev.event_id, ev.at)])

    def _merge(self, ev: SuspectsMerged) -> Outcome:
        """Link one canonical id under another, distinct one: the alias forest stays acyclic."""
        store = self.store
        if store.get("e:" + ev.event_id) is not None:
            return DUPLICATE_OUTCOME
        src, into = resolve(store, ev.suspect_id), resolve(store, ev.into)
        if src == into:
            return rejected("self_merge", f"{ev.suspect_id!r} and {ev.into!r} are already one suspect ({src!r})")
        store["e:" + ev.event_id] = src  # the id it made an alias; the alias outlives this entry
        outcome = Outcome(ACCEPTED, None, self._move(src, into, ev.event_id, ev.at))
        self._remember("e:" + ev.event_id, ev.at)
        return outcome

    def _move(self, src: str, into: str, cause: str, at: int) -> list:
        """Make canonical `src` an alias of canonical `into`: rewrite this partition's reports of src
        to into and move their allegations."""
        store = self.store
        crime_refs = store.get("al:" + src)
        store["al:" + src] = into  # his index (this key's list) moves to into below
        if crime_refs.__class__ is not list:
            crime_refs = []
        removed, added, new_refs = [], [], []
        allegation = self._allegation
        for crime_ref in crime_refs:
            key = "r:" + crime_ref
            rec = store[key]  # changed in place and written back
            suspects = rec[_SUSPECTS]
            if len(suspects) == 1:  # [src]: the common case
                had_into = False
                rec[_SUSPECTS] = [into]
            else:
                had_into = into in suspects
                rec[_SUSPECTS] = sorted({into if s == src else s for s in suspects})
            store[key] = rec
            if not had_into:
                new_refs.append(crime_ref)
            if rec[_CANCELLED]:
                continue
            removed.append(_tuple_new(AllegationUpdate, (src, crime_ref, None, WHY_MERGED, cause, at)))
            if not had_into:
                added.append(_tuple_new(AllegationUpdate, (into, crime_ref, allegation(rec), WHY_MERGED, cause, at)))
        if new_refs:
            self._index_extend(into, new_refs)
        # All of src's removals, then all of into's additions: the ledger sums each run once.
        return removed + added

    def _index_add(self, suspect: str, crime_ref: str) -> None:
        """Index a crime_ref under a suspect who is not yet on it (every caller has checked the report)."""
        self._index_extend(suspect, [crime_ref])

    def _index_extend(self, suspect: str, crime_refs: list) -> None:
        """Index crime_refs under a canonical suspect who is not yet on them."""
        key = "al:" + suspect
        refs = self.store.get(key)
        if refs is None:
            self.store[key] = crime_refs
        else:
            refs.extend(crime_refs)  # in place, then written back: no copy or scan of a long list
            self.store[key] = refs

    def _index_remove(self, suspect: str, crime_ref: str) -> None:
        key = "al:" + suspect
        refs = self.store.get(key)
        if refs is None or refs.__class__ is not list or crime_ref not in refs:
            return
        refs.remove(crime_ref)
        if refs:
            self.store[key] = refs
        else:
            del self.store[key]

    # -- retention ---------------------------------------------------------------

    def _cutoff(self) -> Optional[int]:
        """Reports and merges with a time before this are forgotten (None: kept for ever)."""
        if self.retention_us is None:
            return None
        return self.store.get(CLOCK_KEY, 0) - self.retention_us

    def _remember(self, key: str, at: int) -> None:
        """Index a report ("r:") or merge ("e:") under the hour of its time; forget it now if already due."""
        cutoff = self._cutoff()
        if cutoff is None:
            return
        if at < cutoff:
            self._forget(key)
            return
        self._hours.add((at, key))

    def advance(self, as_of: int) -> None:
        """Move the clock forward to `as_of` and forget what has left the retention period."""
        store = self.store
        if as_of <= store.get(CLOCK_KEY, 0):
            return
        store[CLOCK_KEY] = as_of
        if self.retention_us is None:
            return
        for at, key in self._hours.take_due(as_of - self.retention_us, inclusive=False):
            self._forget(key, at)

    def _forget(self, key: str, at: Optional[int] = None) -> None:
        """Take a report, or a merge's id, out of the state (`at`: the time it was indexed at). The alias
        the merge made stays (the module's docstring says why)."""
        store = self.store
        value = store.get(key)
        if value is None:
            return
        if key.startswith("e:"):
            del store[key]
            return
        if at is not None and value[_RECORDED] != at:
            return  # forgotten before and recorded again since: its own entry comes later
        del store[key]
        crime_ref = key[2:]
        for s in value[_SUSPECTS]:
            self._index_remove(s, crime_ref)
