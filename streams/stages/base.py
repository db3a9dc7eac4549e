"""What every stage shares: the roles of the topics, a message in, the work of a batch out."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Optional

from ..envelope import Outbox
from ..store import Store

# The topics by role; the adapter and the driver map each to a topic of their own.
INPUT = "input"  # crime-reports
REGISTER = "register"  # by crime_ref (merges to every partition)
LEDGER = "ledger"  # by suspect
CANDIDATES = "candidates"  # one partition: the ledgers' local top-N changes
OUTPUT = "output"  # harm-ranking
DLQ = "dlq"  # crime-reports.dlq

#: In each stage partition's store: the offset of the last input message its state includes.
OFFSET_KEY = "offset"
#: In a write-first stage partition's store: the output of its last batch, sent again after a restart.
PENDING_KEY = "out"


class Message(NamedTuple):
    """One message a stage reads: where it was (topic, partition, offset), its publish time (ms), its bytes."""

    topic: str
    partition: int
    offset: int
    timestamp: Optional[float]
    value: Optional[bytes]


@dataclass
class Work:
    """What a stage made of a batch: what to send, which stores to write once it is sent, what to count.

    `tally` counts by tuple: ("consumed", type, outcome), ("dead_letter", reason),
    ("merge_forwarded",), ("output", type, reason or "", list); the adapter turns it into metrics.
    """

    outbox: Outbox = field(default_factory=Outbox)
    stores: list = field(default_factory=list)
    tally: Counter = field(default_factory=Counter)
    t0: float = 0.0  # the newest publish time (s) among the facts worked, for the latency metric
    tick: Optional[int] = None  # the register's clock tick sent with this batch, if any
    partitions: list = field(default_factory=list)  # the stage partitions the batch worked


def unapplied(store: Store, messages: list) -> list:
    """The messages this partition's state does not include yet; records the last one's offset in it.

    A stage writes the offset of the last message it applied together with its
    state, so the replay that follows a crash (offsets are committed later than
    state is written) skips what was applied, instead of applying older absolute
    facts over newer ones.
    """
    last = store.get(OFFSET_KEY)
    fresh = messages if last is None else [m for m in messages if m.offset > last]
    if fresh:
        store[OFFSET_KEY] = fresh[-1].offset
    return fresh


def skipped(messages: list, applied: Callable[[int], Optional[int]]) -> dict:
    """partition -> the offset to read it again from, for each partition whose messages in the batch skip
    one: the first past the message after the last one its state includes (`applied(partition)`), or any
    past the one before it in the batch.

    The stage topics have no gaps (no compaction, no transactions), so a skip means the transport lost
    messages on the way (Faust, around a rebalance, can drop fetched messages and mark them read, and the
    loss may fall inside a batch gathered across it): the batch is not worked, and its partitions are
    read again from where their state ends (a partition with no state yet: from its first message here).
    Messages at or before one already seen are replays, not skips.
    """
    restart: dict = {}
    expected: dict = {}
    out: dict = {}
    for m in messages:
        p = m.partition
        if p not in expected:
            last = applied(p)
            restart[p] = m.offset if last is None else last + 1
            expected[p] = restart[p]
        if m.offset > expected[p]:
            out.setdefault(p, restart[p])
        expected[p] = max(expected[p], m.offset + 1)
    return out


def write_order(keys) -> list:
    """The order in which a batch's changed keys go to a changelog, in case the write is cut short (a
    crash between two of its record batches, when they are more than one): the batch's output first,
    so that a state holding any of the batch also holds what a restart sends again, and the input
    offset last, so that a state without all of the batch reads the batch again."""
    def rank(key: str) -> tuple:
        return (0 if key == PENDING_KEY else 2 if key == OFFSET_KEY else 1, key)
    return sorted(keys, key=rank)


def by_partition(messages: list) -> dict:
    groups: dict = {}
    for m in messages:
        groups.setdefault(m.partition, []).append(m)
    return groups
