"""The register stage: reports by crime_ref, and what each accepted event makes of its allegations.

Each partition applies its envelopes' events in order (streams/register.py
holds the rules) and sends each allegation's new state to the ledger partition
of its suspect. A merge reaches every partition and each decides it alike, so
partition 0 alone speaks for it (counts it, dead-letters it). The event time
reaches a ledger partition with its updates; the others get it as a tick
(`Ticks`), at most one per interval, none lost.
"""
from __future__ import annotations

from typing import Callable, Optional

from schemas.events import SuspectsMerged, event_from_row

from ..envelope import open_envelope
from ..messages import allegation_update_to_json
from ..partitioning import partition_for
from ..register import ACCEPTED, CLOCK_KEY, DUPLICATE, Register
from ..store import Store
from .base import DLQ, LEDGER, OFFSET_KEY, Work, by_partition, unapplied
from .intake import letter

#: In each register partition's store: the fingerprint of the harm table and lists its state was scored with.
FINGERPRINT_KEY = "fp"



class Ticks:
    """The register's clock ticks to every ledger partition: at most one per `interval`, none lost.

    A tick after every batch would be most of the traffic between stages at a
    low input rate, so the register ticks at most every `interval` and a timer
    sends what is left (`force`). Each register
    partition keeps the newest event time it applied in its store, with its
    state, and a restart or a new owner ticks it again (`primed` is False until
    then), so a crash loses no tick.
    """

    def __init__(self, interval: float):
        self.interval = interval
        self.pending: Optional[int] = None  # the newest event time applied and not yet ticked
        self.sent_at = float("-inf")  # (monotonic) time of the last tick taken
        self.primed = False

    def later(self, as_of: Optional[int]) -> None:
        """Remember `as_of` for the next tick (a tick that could not be sent comes back here)."""
        if as_of is not None and (self.pending is None or as_of > self.pending):
            self.pending = as_of

    def take(self, now: float, force: bool = False) -> Optional[int]:
        """The pending tick if one is due (always when `force`), or None; taking it clears it."""
        tick = self.pending
        if tick is None or (not force and now - self.sent_at < self.interval):
            return None
        self.pending = None
        self.sent_at = now
        return tick


class RegisterStage:
    def __init__(self, harm, partitions: int, stores: Callable[[int], Store], tick_interval: float,
                 retention_days: Optional[int] = None, fingerprint: Optional[str] = None):
        self.harm = harm
        self.retention_days = retention_days
        self.fingerprint = fingerprint  # of the harm table and lists the state is to be scored with
        self.partitions = partitions
        self.stores = stores
        self.ticks = Ticks(tick_interval)

    def work(self, messages: list, now: float) -> Work:
        """Apply a batch of register envelopes; the tick goes with it if one is due at (monotonic) `now`."""
        work = Work()
        for partition, group in by_partition(messages).items():
            store = self.stores(partition)
            work.stores.append(store)
            if self.fingerprint is not None and store.get(FINGERPRINT_KEY) is None:
                store[FINGERPRINT_KEY] = self.fingerprint
            newest = self._apply(partition, store, unapplied(store, group), work)
            self.ticks.later(newest)
        self.tick(work, now)
        return work

    def _apply(self, partition: int, store: Store, messages: list, work: Work) -> Optional[int]:
        register, outbox, tally = Register(store, self.harm, self.retention_days), work.outbox, work.tally
        newest = None
        for msg in messages:
            envelope = open_envelope(msg.value)
            work.t0 = max(work.t0, envelope.t0)
            if envelope.as_of is not None:  # the wall clock: forget what left the retention period
                register.advance(envelope.as_of)
            for item in envelope.items:
                event = event_from_row(item["ev"])
                outcome = register.apply(event)
                speaks = partition == 0 or event.__class__ is not SuspectsMerged
                if speaks:
                    tally["consumed", event.type, _outcome(outcome.status)] += 1
                if outcome.status != ACCEPTED:
                    if speaks and outcome.rejection:
                        code, detail = outcome.rejection
                        tally["dead_letter", code] += 1
                        outbox.send(DLQ, None, letter(f"{code}: {detail}", item["src"], item["raw"]))
                    continue
                newest = event.at if newest is None else max(newest, event.at)
                register.advance(event.at)  # forgets what left the retention period (SPEC §9)
                for u in outcome.updates:
                    outbox.add(LEDGER, partition_for(u.suspect, self.partitions), allegation_update_to_json(u),
                               envelope.t0)
        return newest

    def tick(self, work: Work, now: float, force: bool = False) -> None:
        """Put the pending tick in `work` for every ledger partition, if one is due (always when `force`)."""
        tick = self.ticks.take(now, force)
        if tick is not None:
            work.tick = tick
            for p in range(self.partitions):
                work.outbox.clock(LEDGER, p, tick)

    def rescore(self, partitions) -> Work:
        """After an assignment: every allegation of a partition whose state was scored with other files
        (another fingerprint), scored again, with cause `rescore:<first 12 hex>`; the fingerprint is kept
        with the state, so the work is done once (again after a crash before the write: it is idempotent)."""
        work = Work()
        if self.fingerprint is None:
            return work
        cause = "rescore:" + self.fingerprint[:12]
        for p in partitions:
            store = self.stores(p)
            known = store.get(FINGERPRINT_KEY)
            if known == self.fingerprint or (known is None and next(store.scan("r:"), None) is None):
                continue  # scored with these files, or nothing to score (its first batch keeps the fingerprint)
            register = Register(store, self.harm, self.retention_days)
            for u in register.rescore(cause, store.get(CLOCK_KEY, 0)):
                work.outbox.add(LEDGER, partition_for(u.suspect, self.partitions), allegation_update_to_json(u))
            store[FINGERPRINT_KEY] = self.fingerprint
            work.stores.append(store)
            work.partitions.append(p)
        return work

    def prime(self, partitions) -> None:
        """After an assignment: tick again the clocks the newly held partitions keep."""
        for p in partitions:
            self.ticks.later(self.stores(p).get(CLOCK_KEY))
        self.ticks.primed = True

    def applied_offset(self, partition: int) -> Optional[int]:
        """The offset of the last input message partition's state includes (None: none yet)."""
        return self.stores(partition).get(OFFSET_KEY)

    def failed(self, work: Work) -> None:
        """A batch's work was not sent: its tick stays pending."""
        self.ticks.later(work.tick)

    def reset(self) -> None:
        self.ticks.primed = False


def _outcome(status: str) -> str:
    return {ACCEPTED: "accepted", DUPLICATE: "duplicate"}.get(status, "dead_lettered")
