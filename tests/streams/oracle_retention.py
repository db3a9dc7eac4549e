"""The independent reference of tests/streams/oracle.py, taught SPEC §9 retention (written without the core).

A report recorded more than `retention_days` before as_of is forgotten, with the
ids of the events that touched it; a merge made that long ago forgets its id
(a re-send is then applied again), while the alias it made stays: SPEC §2 names
no end to it, and later events that name the old id apply to the merged record.
"""
from __future__ import annotations

from schemas.events import US_PER_DAY, SuspectsMerged

from .oracle import Oracle


class RetentionOracle(Oracle):
    def __init__(self, harm, top_n=100, window_days=365, min_allegations=2, retention_days=None):
        super().__init__(harm, top_n, window_days, min_allegations)
        self.retention = (window_days + 90 if retention_days is None else retention_days) * US_PER_DAY
        self.touched = {}  # crime_ref -> ids of the events accepted for it
        self.merges = {}  # merge event_id -> its at

    def apply(self, ev):
        result = super().apply(ev)
        if result == "accepted":
            if isinstance(ev, SuspectsMerged):
                self.merges[ev.event_id] = ev.at
            else:
                self.touched.setdefault(ev.crime_ref, set()).add(ev.event_id)
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
            self.seen -= {("r:" + ref, event_id) for event_id in self.touched.pop(ref, set())}
        for event_id in [e for e, at in self.merges.items() if at < cutoff]:
            del self.merges[event_id]
            self.seen.discard(("merge", event_id))
