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
    """[(partition, first offset, last offset, first produced, last produced, messages, events)]: the runs of
    messages none of whose reports was applied, and how many input events those messages carried."""
    known = {r.key[2:].decode() for r in changelog_records if r.key.startswith(b"r:")}
    runs: list = []
    for r in sorted(register_records, key=lambda r: (r.partition, r.offset)):
        refs = recorded_refs(r.value)
        if not refs or any(ref in known for ref in refs):
            continue
        events = len(orjson.loads(r.value)["items"])
        if runs and runs[-1][0] == r.partition and r.offset - runs[-1][2] <= JOIN_WITHIN:
            p, a, _, t0, _, n, e = runs[-1]
            runs[-1] = (p, a, r.offset, t0, r.timestamp, n + 1, e + events)
        else:
            runs.append((r.partition, r.offset, r.offset, r.timestamp, r.timestamp, 1, events))
    return runs


def describe(runs: list) -> list:
    def at(ms: int) -> str:
        return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%H:%M:%S.%f")[:-3]

    return [f"{REGISTER_TOPIC}[{p}] offsets {a}..{b} (produced {at(t0)}-{at(t1)} UTC): {n} messages ({e} events) "
            "whose reports the register never applied" for p, a, b, t0, t1, n, e in runs]
