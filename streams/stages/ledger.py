"""The ledger stage: each suspect's allegations in the window, by suspect; its local top-N changes go on.

A partition's `Ledger` (streams/ledger.py holds the rules) keeps derived indexes
in memory (its bounded top-N book), so the stage keeps one per partition it has
worked, and forgets it when a batch fails or the partition may move: it is
rebuilt from the store on next use.

A ledger remembers what it announced to the ranker, and a replay cut otherwise
may not announce it again (a suspect in and out within the replayed batch), so
the ranker would keep a stale candidate. So this stage writes its state first,
with the candidate updates of the batch in it (`PENDING_KEY`), and sends them
after; a crash in between re-sends exactly those (`recover`).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

from schemas.lists import ListSpec, default_lists

from ..envelope import open_envelope
from ..ledger import Ledger
from ..messages import allegation_update_from_json, candidate_update_to_json
from ..store import Store
from .base import CANDIDATES, LEDGER, OFFSET_KEY, PENDING_KEY, REGISTER, Work, by_partition, unapplied

#: A ledger partition keeps its best BOOK_CAPACITY_FACTOR x N suspects of each list in memory.
BOOK_CAPACITY_FACTOR = 10


class LedgerStage:
    writes_first = True  # state (with the batch's candidate updates) is written before they are sent

    def __init__(self, partitions: int, stores: Callable[[int], Store], top_n: int, window_days: int,
                 min_allegations: int, book_capacity: Optional[int] = None,
                 lists: Optional[Sequence[ListSpec]] = None):
        self.partitions = partitions
        self.stores = stores
        self.lists = tuple(lists or default_lists(top_n, window_days, min_allegations))
        largest = max(spec.top_n for spec in self.lists)
        self.book_capacity = BOOK_CAPACITY_FACTOR * largest if book_capacity is None else book_capacity
        self.ledgers: dict = {}  # partition -> Ledger

    def ledger(self, partition: int) -> Ledger:
        ledger = self.ledgers.get(partition)
        if ledger is None:
            ledger = Ledger(self.stores(partition), book_capacity=self.book_capacity, lists=self.lists)
            self.ledgers[partition] = ledger
        return ledger

    def work(self, messages: list) -> Work:
        """Apply a batch of ledger envelopes; each partition's top-N changes go to the candidates."""
        work = Work()
        for partition, group in by_partition(messages).items():
            ledger = self.ledger(partition)
            work.partitions.append(partition)
            work.stores.append(ledger.store)
            clock_before = ledger.as_of
            t0 = 0.0
            for msg in unapplied(ledger.store, group):
                envelope = open_envelope(msg.value)
                t0 = max(t0, envelope.t0)
                ledger.apply_many([allegation_update_from_json(item) for item in envelope.items])
                if envelope.as_of is not None:
                    ledger.advance(envelope.as_of)
            work.t0 = max(work.t0, t0)
            facts = [candidate_update_to_json(update) for update in ledger.flush()]
            clock = ledger.as_of if ledger.as_of > clock_before else None
            if facts or clock is not None:
                ledger.store[PENDING_KEY] = [facts, clock, t0]
            elif ledger.store.get(PENDING_KEY) is not None:
                del ledger.store[PENDING_KEY]
            _put(work, facts, clock, t0)
        return work

    def recover(self, partitions) -> Work:
        """The candidate updates of each partition's last batch, to send again after a restart."""
        work = Work()
        for partition in partitions:
            pending = self.ledger(partition).store.get(PENDING_KEY)
            if pending is not None:
                _put(work, *pending)
        return work

    def applied_offset(self, partition: int) -> Optional[int]:
        """The offset of the last input message partition's state includes (None: none yet)."""
        return self.ledger(partition).store.get(OFFSET_KEY)

    def failed(self, work: Work) -> None:
        """A batch's work was not sent: its partitions' in-memory books may be ahead of their stores."""
        for partition in work.partitions:
            self.ledgers.pop(partition, None)

    def reset(self) -> None:
        self.ledgers.clear()

    def stats(self, name: Optional[str] = None) -> tuple:
        """(suspects tracked, suspects eligible in a list (default the first)) over the partitions held."""
        tracked = eligible = 0
        for ledger in list(self.ledgers.values()):
            a, b = ledger.stats(name)
            tracked += a
            eligible += b
        return tracked, eligible


def _put(work: Work, facts: list, clock, t0: float) -> None:
    for fact in facts:
        work.outbox.add(CANDIDATES, 0, fact, t0)
    if clock is not None:
        work.outbox.clock(CANDIDATES, 0, clock)


def clock_records(work: Work, partitions: int, as_of: int) -> None:
    """The wall clock: move every register and ledger partition to `as_of`, so allegations age out and
    reports leave the retention period with no new input."""
    for p in range(partitions):
        work.outbox.clock(REGISTER, p, as_of)
        work.outbox.clock(LEDGER, p, as_of)
