"""An independent, from-scratch reference of SPEC §1-2, written without the core.

It replays events naively (whole state in dicts, every score summed afresh with
Decimal) and is what the core's incremental results are checked against.
"""
from __future__ import annotations

from decimal import Decimal

from schemas.events import (US_PER_DAY, ReportCancelled, ReportReclassified, ReportRecorded, SuspectLinked,
                            SuspectsMerged, SuspectUnlinked)


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
        if ev.event_id in self.seen:
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
        self.seen.add(ev.event_id)
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

    def ranking(self, as_of=None, top_n=None):
        """[(rank, suspect, score Decimal, allegations, newest, victims)] of the top N."""
        rows = [(s, *v) for s, v in self.standings(as_of).items() if v[1] >= self.min_allegations]
        rows.sort(key=lambda r: (-r[1], -r[2], -r[3], r[0]))
        return [(i, *r) for i, r in enumerate(rows[: top_n or self.top_n], start=1)]
