"""The ledger's expiry index: every allegation in the window under the hour it was recorded in.

An entry is (recorded_at, suspect, crime_ref), kept in "x:<hour>" chunks
(streams/hourindex.py), so a search compares plain ints, not lists. The
window's end takes whole hours from the cursor on (`due`); an escalation
list's recent part, or a list window shorter than the ledger's, reads the
entries that crossed its span (`crossing`).
"""
from __future__ import annotations

from .hourindex import HourIndex
from .store import Store


class ExpiryIndex:
    def __init__(self, store: Store):
        self.hours = HourIndex(store, "x:", "x-cursor", 3)

    def index(self, suspect: str, crime_ref: str, recorded_at: int) -> None:
        """Index an allegation under the hour it was recorded in."""
        self.hours.add((recorded_at, suspect, crime_ref))

    def unindex(self, suspect: str, crime_ref: str, recorded_at: int) -> None:
        """Take an allegation that leaves before its time (cancel, unlink, merge) out of its hour."""
        self.hours.remove((recorded_at, suspect, crime_ref))

    def due(self, cutoff: int) -> list:
        """Take out and return every entry (recorded_at, suspect, crime_ref) recorded at or before `cutoff`."""
        return self.hours.take_due(cutoff, inclusive=True)

    def crossing(self, low: int, high: int) -> list:
        """The entries (recorded_at, suspect, crime_ref) with low < recorded_at <= high, left in place."""
        return self.hours.crossing(low, high)
