"""Where a soak lost events: the register messages whose recorded reports never reached the register's state.

Each report that the register accepts leaves an `r:<crime_ref>` key in its
changelog. A message of the register topic none of whose `report.recorded`
items ever did was never applied: runs of such offsets, with the times they
were produced, point at the moment (a rebalance, a kill) they were skipped.
"""
from __future__ import annotations

import datetime as dt

import orjson

REGISTER_TOPIC = "harmrank-register"
REGISTER_CHANGELOG = "harmrank-register-changelog"


def recorded_refs(value: bytes) -> list:
    """The crime_refs of the `report.recorded` items of one register envelope."""
    try:
        items = orjson.loads(value).get("items") or []
    except (orjson.JSONDecodeError, AttributeError):
        return []
    return [item["ev"][3] for item in items
            if isinstance(item, dict) and item.get("ev", [None])[0] == "report.recorded"]


#: Runs this close are one: a message between them may carry only reports recorded before (re-sent duplicates).
JOIN_WITHIN = 4


def never_applied(register_records, changelog_records) -> list:
    """[(partition, first offset, last offset, first produced, last produced, messages)]: runs of unapplied messages."""
    known = {r.key[2:].decode() for r in changelog_records if r.key.startswith(b"r:")}
    runs: list = []
    for r in sorted(register_records, key=lambda r: (r.partition, r.offset)):
        refs = recorded_refs(r.value)
        if not refs or any(ref in known for ref in refs):
            continue
        if runs and runs[-1][0] == r.partition and r.offset - runs[-1][2] <= JOIN_WITHIN:
            runs[-1] = (r.partition, runs[-1][1], r.offset, runs[-1][3], r.timestamp, runs[-1][5] + 1)
        else:
            runs.append((r.partition, r.offset, r.offset, r.timestamp, r.timestamp, 1))
    return runs


def describe(runs: list) -> list:
    def at(ms: int) -> str:
        return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%H:%M:%S.%f")[:-3]

    return [f"{REGISTER_TOPIC}[{p}] offsets {a}..{b} (produced {at(t0)}-{at(t1)} UTC): {n} messages whose reports "
            "the register never applied" for p, a, b, t0, t1, n in runs]
