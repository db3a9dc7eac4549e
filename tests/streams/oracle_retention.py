"""The independent reference of tests/streams/oracle.py, taught SPEC §9 retention (written without the core).

A report recorded more than `retention_days` before as_of is forgotten, with the
ids of the events that touched it; a merge made that long ago is forgotten with
its alias and its id. A merge applies to the reports at once: forgetting its
alias later does not split the reports it joined, so reports hold the ids their
suspects had when each event applied (the base class resolves them lazily,
which is the same thing while no alias is ever forgotten).
"""
from __future__ import annotations

from schemas.events import US_PER_DAY, SuspectsMerged

from .oracle import Oracle


class RetentionOracle(Oracle):
    def __init__(self, harm, top_n=100, window_days=365, min_allegations=2, retention_days=None):
        super().__init__(harm, top_n, window_days, min_allegations)
        self.retention = (window_days + 90 if retention_days is None else retention_days) * US_PER_DAY
        self.touched = {}  # crime_ref -> ids of the events accepted for it
        self.merges = {}  # merge event_id -> (the id it made an alias, its at)

    def apply(self, ev):
        alias = self.resolve(ev.suspect_id) if isinstance(ev, SuspectsMerged) else None
        result = super().apply(ev)
        if result == "accepted":
            if alias is not None:
                self.merges[ev.event_id] = (alias, ev.at)
            else:
                self.touched.setdefault(ev.crime_ref, set()).add(ev.event_id)
            for rep in self.reports.values():
                rep["suspects"] = sorted({self.resolve(s) for s in rep["suspects"]})
            self.forget()
        return result

    def advance(self, as_of):
        """The wall clock moves with no input."""
        if self.as_of is None or as_of > self.as_of:
            self.as_of = as_of
            self.forget()

    def forget(self):
        cutoff = self.as_of - self.retention
        for ref in [r for r, rep in self.reports.items() if rep["recorded_at"] < cutoff]:
            del self.reports[ref]
            self.seen -= self.touched.pop(ref, set())
        for event_id in [e for e, (_, at) in self.merges.items() if at < cutoff]:
            alias, _ = self.merges.pop(event_id)
            del self.aliases[alias]
            self.seen.discard(event_id)
