"""The whole topology in one process: register, ledger and ranker wired directly.

This is what `harmrank rank` runs, and what the tests drive with simulated time
(the TopologyTestDriver idea): the same stage classes the streaming worker runs
between Kafka topics, here with in-memory stores and one partition, so the batch
and the stream cannot disagree on a rule.
"""
from __future__ import annotations

from typing import Optional

from .ledger import Ledger
from .ranker import Ranker
from .register import ACCEPTED, Outcome, Register
from .store import DictStore

RETENTION_MARGIN_DAYS = 90  # the default retention: the window and this much more (SPEC §9)


class Pipeline:
    def __init__(self, harm_table, top_n: int = 100, window_days: int = 365, min_allegations: int = 2,
                 book_capacity: Optional[int] = None, retention_days: Optional[int] = None):
        retention = window_days + RETENTION_MARGIN_DAYS if retention_days is None else retention_days
        self.register = Register(DictStore(), harm_table, retention)
        self.ledger = Ledger(DictStore(), top_n, window_days, min_allegations, book_capacity)
        self.ranker = Ranker(DictStore(), top_n)

    @property
    def as_of(self) -> int:
        return self.ledger.as_of

    def apply(self, event) -> Outcome:
        """Apply one validated input event; returns what became of it."""
        outcome = self.register.apply(event)
        if outcome.status == ACCEPTED:
            self.advance(event.at)
            self.ledger.apply_many(outcome.updates)
        return outcome

    def advance(self, as_of: int) -> None:
        """Move the clock (an accepted event's `at`, or the wall clock): allegations age out, reports are forgotten."""
        self.ledger.advance(as_of)
        self.register.advance(as_of)

    def flush(self) -> list[dict]:
        """Pass the ledger's local top-N changes to the ranker; returns the ranking events."""
        for update in self.ledger.flush():
            self.ranker.apply(update)
        self.ranker.advance(self.ledger.as_of)
        return self.ranker.flush()

    def ranking(self):
        return self.ranker.ranking()
