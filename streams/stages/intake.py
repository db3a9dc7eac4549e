"""The intake: validate each input record and route it to its register partition (a merge to all).

The validated event travels on as a compact row (so it is validated once), with
its raw text and its source for the dead-letter topic. Every register partition
keeps the alias forest and applies each merge between the crime events around
it, in input order (streams/register.py); all partitions must see the merges in
one order, and one intake reads an input partition, so merges go on from one
input partition only, `merge_home`: a merge published elsewhere is forwarded
there first and applies when it is read from there.
"""
from __future__ import annotations

import json
import time
from typing import Optional

from schemas.events import EVENT_TYPES, MERGE_KEY, SuspectsMerged, event_to_row
from schemas.validate import MAX_MESSAGE_BYTES, Rejected, dead_letter, validate

from ..partitioning import partition_for
from .base import DLQ, INPUT, REGISTER, Work


class IntakeStage:
    def __init__(self, harm, partitions: int, not_after: Optional[int] = None):
        self.harm = harm
        self.partitions = partitions
        self.not_after = not_after  # `rank --as-of`: events recorded after it have not happened yet

    def work(self, records: list, now_us: Optional[int], merge_home: Optional[int] = None) -> Work:
        """Validate and route a batch of input records (`Message`s, in each partition's order)."""
        work = Work()
        outbox, tally = work.outbox, work.tally
        for msg in records:
            value = msg.value if msg.value is not None else b""
            event = validate(value, self.harm, now_us=now_us)
            if isinstance(event, Rejected):
                tally["consumed", type_of(value), "dead_lettered"] += 1
                tally["dead_letter", event.code] += 1
                outbox.send(DLQ, None, letter(event.reason, msg, value))
                continue
            if self.not_after is not None and event.at > self.not_after:
                tally["after_as_of",] += 1
                continue
            item = {"ev": event_to_row(event), "raw": value.decode(), "src": [msg.topic, msg.partition, msg.offset]}
            t0 = msg.timestamp / 1000 if msg.timestamp and msg.timestamp > 0 else time.time()
            work.t0 = max(work.t0, t0)
            if event.__class__ is SuspectsMerged:
                if merge_home is not None and msg.partition != merge_home:
                    outbox.send(INPUT, MERGE_KEY, value, merge_home)
                    tally["merge_forwarded",] += 1
                    continue
                for p in range(self.partitions):
                    outbox.add(REGISTER, p, item, t0)
            else:
                outbox.add(REGISTER, partition_for(event.crime_ref, self.partitions), item, t0)
        return work

    def failed(self, work: Work) -> None:
        """Nothing to take back: the intake keeps no state (its input is read again)."""

    def reset(self) -> None:
        """Nothing to forget: the intake keeps no state."""


def letter(reason: str, src, raw) -> bytes:
    """The dead letter of SPEC §3 for a message from `src` (topic, partition, offset), as bytes.

    The standard library's encoder: it never refuses a string (orjson refuses lone surrogates).
    """
    topic, partition, offset = src[0], src[1], src[2]
    return json.dumps(dead_letter(reason, topic, partition, offset, raw), separators=(",", ":")).encode()


def type_of(raw: bytes) -> str:
    """The event type for the metrics label, only if it is one of the known types."""
    if len(raw) > MAX_MESSAGE_BYTES:
        return "invalid"
    try:
        value = json.loads(raw).get("type")
    except Exception:
        return "invalid"
    return value if value in EVENT_TYPES else "invalid"
