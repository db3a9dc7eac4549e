"""An independent, from-scratch reference of SPEC §1-3, written without the core.

It replays events naively (whole state in dicts, every score summed afresh with
Decimal) and is what the core's incremental results are checked against:
`Oracle` gives the ranking, `EventOracle` the ranking events each flush emits.
"""
from __future__ import annotations

from decimal import Decimal

from schemas.events import (US_PER_DAY, ReportCancelled, ReportReclassified, ReportRecorded, SuspectLinked,
                            SuspectsMerged, SuspectUnlinked, us_to_iso)


class Oracle:
    def __init__(self, harm, top_n=100, window_days=365, min_allegations=2):
        self.harm = harm  # code -> (Decimal days, vawg bool)
        self.top_n = top_n
        self.window = window_days * US_PER_DAY
        self.min_allegations = min_allegations
        self.reports = {}
        self.aliases = {}
        self.seen = set()
        self.as_of = None

    def resolve(self, s):
        while s in self.aliases:
            s = self.aliases[s]
        return s

    def apply(self, ev):
        """Returns 'accepted', 'duplicate' or a rejection code."""
        # A re-sent event is the same event_id on the same report, or among merges (SPEC §2).
        seen_key = ("merge" if isinstance(ev, SuspectsMerged) else "r:" + ev.crime_ref, ev.event_id)
        if seen_key in self.seen:
            return "duplicate"
        if isinstance(ev, SuspectsMerged):
            a, b = self.resolve(ev.suspect_id), self.resolve(ev.into)
            if a == b:
                return "self_merge"
            self.aliases[a] = b
        elif isinstance(ev, ReportRecorded):
            if ev.crime_ref in self.reports:
                return "already_recorded"
            self.reports[ev.crime_ref] = dict(code=ev.offence_code, flag=ev.vawg, recorded_at=ev.at,
                                              victims=[(v.id, v.sex) for v in ev.victims],
                                              suspects=list(ev.suspects), cancelled=False)
        else:
            rep = self.reports.get(ev.crime_ref)
            if rep is None:
                return "unknown_crime_ref"
            if rep["cancelled"]:
                return "cancelled_crime_ref"
            if isinstance(ev, ReportReclassified):
                rep["code"] = ev.offence_code
                if ev.vawg is not None:
                    rep["flag"] = ev.vawg
            elif isinstance(ev, ReportCancelled):
                rep["cancelled"] = True
            elif isinstance(ev, SuspectLinked):
                if self.resolve(ev.suspect_id) not in {self.resolve(s) for s in rep["suspects"]}:
                    rep["suspects"].append(ev.suspect_id)
            elif isinstance(ev, SuspectUnlinked):
                target = self.resolve(ev.suspect_id)
                rep["suspects"] = [s for s in rep["suspects"] if self.resolve(s) != target]
        self.seen.add(seen_key)
        self.as_of = ev.at if self.as_of is None else max(self.as_of, ev.at)
        return "accepted"

    def standings(self, as_of=None):
        """suspect -> (score Decimal, allegations, newest, victims) over VAWG allegations in the window."""
        as_of = self.as_of if as_of is None else as_of
        acc = {}
        if as_of is None:
            return acc
        for ref, rep in self.reports.items():
            if rep["cancelled"] or not (as_of - self.window < rep["recorded_at"] <= as_of):
                continue
            days, code_vawg = self.harm[rep["code"]]
            vawg = rep["flag"] if rep["flag"] is not None else (
                code_vawg and any(sex == "F" for _, sex in rep["victims"]))
            if not vawg:
                continue
            for s in {self.resolve(x) for x in rep["suspects"]}:
                score, n, newest, victims = acc.get(s, (Decimal(0), 0, 0, set()))
                acc[s] = (score + days, n + 1, max(newest, rep["recorded_at"]),
                          victims | {vid for vid, _ in rep["victims"]})
        return {s: (sc, n, nw, len(v)) for s, (sc, n, nw, v) in acc.items()}

    def profiles(self, as_of=None):
        """suspect -> standing, for every suspect with an allegation of any kind in the window: his
        standing (as standings() gives it), or (0, 0, 0, 0) when none of them is VAWG."""
        as_of = self.as_of if as_of is None else as_of
        if as_of is None:
            return {}
        out = {}
        for rep in self.reports.values():
            if not rep["cancelled"] and as_of - self.window < rep["recorded_at"] <= as_of:
                out.update((self.resolve(s), (Decimal(0), 0, 0, 0)) for s in rep["suspects"])
        out.update(self.standings(as_of))
        return out

    def allegations(self, suspect, as_of=None):
        """crime_ref -> (code, days Decimal, vawg, recorded_at, victim ids) of his allegations in the window."""
        as_of = self.as_of if as_of is None else as_of
        out = {}
        for ref, rep in self.reports.items():
            if (rep["cancelled"] or as_of is None or not (as_of - self.window < rep["recorded_at"] <= as_of)
                    or suspect not in {self.resolve(s) for s in rep["suspects"]}):
                continue
            days, code_vawg = self.harm[rep["code"]]
            vawg = rep["flag"] if rep["flag"] is not None else (
                code_vawg and any(sex == "F" for _, sex in rep["victims"]))
            out[ref] = (rep["code"], days, vawg, rep["recorded_at"], tuple(vid for vid, _ in rep["victims"]))
        return out

    def ranking(self, as_of=None, top_n=None):
        """[(rank, suspect, score Decimal, allegations, newest, victims)] of the top N."""
        rows = [(s, *v) for s, v in self.standings(as_of).items() if v[1] >= self.min_allegations]
        rows.sort(key=lambda r: (-r[1], -r[2], -r[3], r[0]))
        return [(i, *r) for i, r in enumerate(rows[: top_n or self.top_n], start=1)]


# -- SPEC §3: the output events -------------------------------------------------

# The reason an exit takes from the kind of input event that changed the suspect's own standing.
_EVENT_REASON = {ReportRecorded: "displaced", SuspectLinked: "displaced", ReportReclassified: "corrected",
                 ReportCancelled: "corrected", SuspectUnlinked: "corrected", SuspectsMerged: "merged"}
_CORRECTIONS = (ReportReclassified, ReportCancelled, SuspectUnlinked)


def _order(standing):
    """SPEC §1's order of a standing (high first), worst for no standing at all."""
    if standing is None:
        return (1, 0, 0, 0)
    score, n, newest, _ = standing
    return (0, -score, -n, -newest)


class Predicted(dict):
    """One predicted output event: its fields, and `causes`, the causes SPEC §3 allows it."""


class EventOracle:
    """Predicts, flush by flush, the ranking events of SPEC §3 from an Oracle's naive state.

    A step is one input event (or one move of the wall clock) followed by a flush.
    Each step has two phases: the clock moves to the event's `at` (allegations age
    out), then the event applies. A suspect's profile is his standing (score,
    allegations, newest, victims) when he has any allegation in the window, VAWG
    or not, and nothing otherwise. An exit's reason follows one of two rules:

    - "last_change" (what the core does): the phase that last changed his profile
      names it: the event's kind (a correction: corrected; a merge: merged; a
      report or a link: displaced), else the clock (expired); untouched: displaced.
    - "spec" (SPEC §3 read literally): merged if his record was merged away and
      that lowered him; corrected if the event is a correction that lowered him;
      expired if the clock lowered him; otherwise, even when an event raised him,
      displaced.

    Each predicted exit carries both: `reason` by the chosen rule, `spec_reason`.
    `ranking.updated` follows SPEC §3: a member still in whose score, allegations
    or victims differ from those last announced.
    """

    def __init__(self, oracle: Oracle, rule: str = "last_change"):
        if rule not in ("last_change", "spec"):
            raise ValueError(rule)
        self.oracle = oracle
        self.rule = rule
        self.members: dict = {}  # suspect -> (score, allegations, victims) last announced

    def clock_cause(self, as_of) -> str:
        return "clock:" + us_to_iso(as_of)

    def apply(self, ev):
        """Apply one input event; returns (its outcome as Oracle.apply gives it, the events of the flush)."""
        o = self.oracle
        before = o.profiles()
        as_of = ev.at if o.as_of is None else max(o.as_of, ev.at)
        mid = o.profiles(as_of)  # the clock moved, the event not yet applied
        outcome = o.apply(ev)
        if outcome != "accepted":
            return outcome, []
        return outcome, self._events(before, mid, o.profiles(), ev)

    def advance(self, as_of):
        """Move the clock with no input (the wall clock); returns the events of the flush."""
        o = self.oracle
        if o.as_of is None or as_of <= o.as_of:
            return []
        before = o.profiles()
        o.as_of = as_of
        after = o.profiles()
        return self._events(before, after, after, None)

    def _events(self, before, mid, after, ev):
        o = self.oracle
        top = o.ranking()
        now = {s: (score, n, victims) for _, s, score, n, _, victims in top}
        clock = self.clock_cause(o.as_of)
        event_id = None if ev is None else ev.event_id
        mid_members = set() if ev is None else self._mid_members(mid)
        out = []
        for s in sorted(set(self.members) - set(now)):
            standing = after.get(s)
            score, n, _, victims = standing or (0, 0, 0, 0)
            out.append(Predicted(type="ranking.exited", suspect_id=s,
                                 reason=self._reason(self.rule, s, before.get(s), mid.get(s), standing, ev),
                                 spec_reason=self._reason("spec", s, before.get(s), mid.get(s), standing, ev),
                                 score=score, allegations=n, victims=victims,
                                 causes=self._causes(s, before, mid, after, mid_members, event_id, clock)))
        for rank, s, score, n, _, victims in top:
            if s in self.members and self.members[s] == now[s]:
                continue
            kind = "ranking.updated" if s in self.members else "ranking.entered"
            out.append(Predicted(type=kind, suspect_id=s, rank=rank, score=score, allegations=n, victims=victims,
                                 causes=self._causes(s, before, mid, after, mid_members, event_id, clock)))
        self.members = now
        return out

    def _mid_members(self, mid):
        rows = [(s, *v) for s, v in mid.items() if v[1] >= self.oracle.min_allegations]
        rows.sort(key=lambda r: (-r[1], -r[2], -r[3], r[0]))
        return {r[0] for r in rows[: self.oracle.top_n]}

    def _reason(self, rule, s, before, mid, after, ev):
        if rule == "last_change":
            if ev is not None and mid != after:
                return _EVENT_REASON[type(ev)]
            return "expired" if before != mid else "displaced"
        if isinstance(ev, SuspectsMerged) and s in self.oracle.aliases and _order(after) > _order(mid):
            return "merged"
        if isinstance(ev, _CORRECTIONS) and _order(after) > _order(mid):
            return "corrected"
        return "expired" if _order(mid) > _order(before) else "displaced"

    def _causes(self, s, before, mid, after, mid_members, event_id, clock):
        """The cause of a suspect's event: the phase that changed his own standing last, or when
        others moved him, the phase he first crossed the cut in (either, if that is unclear)."""
        if event_id is not None and mid.get(s) != after.get(s):
            return {event_id}
        if before.get(s) != mid.get(s):
            return {clock}
        if event_id is None:
            return {clock}
        if (s in self.members) != (s in mid_members):
            return {clock}
        return {clock, event_id}
