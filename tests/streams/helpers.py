"""Small builders shared by the core tests: a harm table, event constructors, a JSON-backed store."""
from __future__ import annotations

import json
from decimal import Decimal
from typing import NamedTuple

from schemas.events import (US_PER_DAY, ReportCancelled, ReportReclassified, ReportRecorded, SuspectLinked,
                            SuspectsMerged, SuspectUnlinked, Victim)
from streams.store import DictStore

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


class JsonStore(DictStore):
    """A Store that keeps each value as JSON text, as the worker's RocksDB tables do.

    A value read is a fresh copy, so a change the core makes in place and does not
    write back is lost here, as it would be in the worker; DictStore would hide it.
    """

    def __setitem__(self, key, value):
        super().__setitem__(key, json.dumps(value))

    def __getitem__(self, key):
        return json.loads(super().__getitem__(key))

    def get(self, key, default=None):
        text = super().get(key)
        return default if text is None else json.loads(text)

    def scan(self, prefix):
        for key, text in list(self.items()):
            if key.startswith(prefix):
                yield key, json.loads(text)
