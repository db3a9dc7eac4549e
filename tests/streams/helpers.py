"""Small builders shared by the core tests: a harm table, event constructors, the property tests' events."""
from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import NamedTuple

from schemas.events import (US_PER_DAY, ReportCancelled, ReportReclassified, ReportRecorded, SuspectLinked,
                            SuspectsMerged, SuspectUnlinked, Victim)

T0 = 1_735_689_600_000_000  # 2025-01-01T00:00:00Z in epoch microseconds
DAY = US_PER_DAY


class Entry(NamedTuple):
    code: str
    title: str
    days_cents: int
    vawg: bool


class FakeHarm:
    """code -> days (str, exact) and VAWG membership, shaped like schemas.harm_table.HarmTable."""

    def __init__(self, rows: dict):
        self.rows = {c: Entry(c, f"offence {c}", int(Decimal(d) * 100), v) for c, (d, v) in rows.items()}

    def get(self, code):
        return self.rows.get(code)

    def __contains__(self, code):
        return code in self.rows

    def oracle_view(self):
        return {c: (Decimal(e.days_cents) / 100, e.vawg) for c, e in self.rows.items()}


HARM = FakeHarm({
    "019/08": ("1825", True),     # rape
    "008/06": ("182.5", True),    # ABH
    "105/01": ("5", True),        # common assault
    "008/66": ("0.25", True),     # odd small value: exactness check
    "092/11": ("1460", False),    # drugs supply: non-VAWG
    "034/01": ("365.33", False),  # robbery: non-VAWG
})
CODES = list(HARM.rows)

_ids = iter(range(10**9))


def eid():
    return f"E{next(_ids)}"


def recorded(ref, code, suspects, at, victims=(("V1", "F"),), vawg=None, event_id=None):
    return ReportRecorded(event_id or eid(), at, ref, code, tuple(suspects), tuple(Victim(i, s) for i, s in victims),
                          vawg)


def reclassified(ref, code, at, vawg=None):
    return ReportReclassified(eid(), at, ref, code, vawg)


def cancelled(ref, at):
    return ReportCancelled(eid(), at, ref)


def linked(ref, suspect, at):
    return SuspectLinked(eid(), at, ref, suspect)


def unlinked(ref, suspect, at):
    return SuspectUnlinked(eid(), at, ref, suspect)


def merged(src, into, at):
    return SuspectsMerged(eid(), at, src, into)



def build(op, at, history):
    """The input event a property test's generated op stands for (None: nothing to apply).

    "dup" re-sends an earlier event; "reuse" gives a new event an earlier event's id.
    """
    kind = op[0]
    if kind == "rec":
        return recorded(op[1], op[2], op[3], at, victims=op[4], vawg=op[5])
    if kind == "recl":
        return reclassified(op[1], op[2], at, vawg=op[3])
    if kind == "cancel":
        return cancelled(op[1], at)
    if kind == "link":
        return linked(op[1], op[2], at)
    if kind == "unlink":
        return unlinked(op[1], op[2], at)
    if kind == "merge":
        return merged(op[1], op[2], at)
    if kind == "dup":
        return history[-1 - op[1]] if len(history) > op[1] else None
    if kind == "reuse":
        ev = build(op[2], at, history)
        return dataclasses.replace(ev, event_id=history[-1 - op[1]].event_id) if len(history) > op[1] else ev
    return None
