"""One event at a time through the worker's stages in one process: the core tests' view of the topology.

`apply(event)` sends one validated event through the in-process driver with one
partition (intake, register, ledger, ranker: the stages the worker runs) and says
what became of it; `flush()` returns the ranking events emitted since the last
call. The tests drive the rules of SPEC §1-§3 through it.
"""
from __future__ import annotations

from typing import Optional

import orjson

from schemas.defaults import MIN_ALLEGATIONS, TOP_N, WINDOW_DAYS
from schemas.events import MERGE_KEY, SuspectsMerged
from schemas.validate import event_to_json

from .driver import Driver
from .ledger import Ledger
from .ranker import Ranker
from .register import ACCEPTED, DUPLICATE, REJECTED, Outcome, Register

_STATUS = {"accepted": ACCEPTED, "duplicate": DUPLICATE, "dead_lettered": REJECTED}


class StagesView:
    """The register, ledger and ranker of a one-partition driver, to read its state."""

    def __init__(self, driver: Driver):
        self.driver = driver

    @property
    def register(self) -> Register:
        return Register(self.driver.register.stores(0), self.driver.intake.harm, self.driver.register.retention_days)

    @property
    def ledger(self) -> Ledger:
        return self.driver.ledger.ledger(0)

    @property
    def ranker(self) -> Ranker:
        return self.driver.ranker.ranker

    @property
    def as_of(self) -> int:
        return self.ledger.as_of

    def ranking(self):
        return self.ranker.ranking()


class Pipeline(StagesView):
    def __init__(self, harm_table, top_n: int = TOP_N, window_days: int = WINDOW_DAYS, min_allegations: int = MIN_ALLEGATIONS,
                 book_capacity: Optional[int] = None, retention_days: Optional[int] = None, lists=None,
                 durable: bool = False):
        """`durable`: stores that keep values as JSON bytes, as RocksDB does (a value the core changes
        in place and does not write back is then lost, as in the worker)."""
        super().__init__(Driver(harm_table, 1, top_n, window_days, min_allegations, book_capacity=book_capacity,
                                max_batch=1, retention_days=retention_days, lists=lists, durable=durable))
        self._emitted = 0

    def restart(self) -> None:
        """Every stage forgets what it holds in memory and reads its store again, as after a crash."""
        driver = self.driver
        for stage in (driver.intake, driver.register, driver.ledger, driver.ranker):
            stage.reset()

    def apply(self, event) -> Outcome:
        """Apply one validated input event; returns what became of it."""
        key = MERGE_KEY if event.__class__ is SuspectsMerged else event.crime_ref.encode()
        before = dict(self.driver.tally)
        letters = len(self.driver.sink["dlq"])
        self.driver.publish(event_to_json(event), key)
        self.driver.run()
        status = next(_STATUS[k[2]] for k, n in self.driver.tally.items()
                      if k[0] == "consumed" and n != before.get(k, 0))
        if status != REJECTED:
            return Outcome(status, None, [])
        code, _, detail = self.driver.dead_letters()[letters]["reason"].partition(": ")
        return Outcome(REJECTED, (code, detail), [])

    def advance(self, as_of: int) -> None:
        """Move the clock (the wall clock, with no input)."""
        self.driver.advance_clock(as_of)
        self.driver.run()

    def flush(self) -> list[dict]:
        """The ranking events emitted since the last flush."""
        values = self.driver.sink["output"][self._emitted:]
        self._emitted += len(values)
        return [orjson.loads(v) for v in values]
