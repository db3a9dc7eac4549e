"""The topology in one process (Kafka Streams' TopologyTestDriver is the model).

It runs the worker's very stages (streams/stages) over P partitions: every
topic is an in-memory log per partition, every stage partition has its own
store, and the stages take batches of what they have not read yet. With a
seeded `random.Random` it delivers in random interleavings (which stage,
which partitions, how many messages) and can replay a batch as a crash would
(its output sent, its state lost, its input read again); without one it runs
the stages in order, which is what `harmrank rank` does with P = 1. Time is
simulated: the register's tick interval runs on a counter, the wall clock
moves only when `advance_clock` says so.
"""
from __future__ import annotations

import random
from typing import Optional, Sequence

import orjson

from schemas.defaults import MIN_ALLEGATIONS, RETENTION_MARGIN_DAYS, TOP_N, WINDOW_DAYS
from schemas.events import MERGE_KEY
from schemas.lists import ListSpec, default_lists

from .partitioning import partition_for
from .stages import CANDIDATES, DLQ, INPUT, LEDGER, OUTPUT, REGISTER, Message, Work
from .stages.intake import IntakeStage
from .stages.ledger import LedgerStage, clock_records
from .stages.ranker import RankerStage
from .stages.register import RegisterStage
from .store import DictStore, WriteBackStore

ORDER = (INPUT, REGISTER, LEDGER, CANDIDATES)  # the roles a stage reads, upstream first


class Driver:
    def __init__(self, harm, partitions: int = 1, top_n: int = TOP_N, window_days: int = WINDOW_DAYS,
                 min_allegations: int = MIN_ALLEGATIONS, rng: Optional[random.Random] = None, book_capacity: Optional[int] = None,
                 not_after: Optional[int] = None, now_us: Optional[int] = None, max_batch: int = 1000,
                 input_partitions: Optional[int] = None, retention_days: Optional[int] = None,
                 durable: bool = False,
                 lists: Optional[Sequence[ListSpec]] = None):
        self.partitions = partitions
        self.input_partitions = partitions if input_partitions is None else input_partitions
        self.rng = rng
        self.now_us = now_us  # the machine's time for the future-timestamp check (None: no check)
        self.max_batch = max_batch
        self.mono = 0.0  # simulated monotonic time, for the register's tick interval
        crash_safe = rng is not None or durable  # stores that keep JSON bytes, written at the end of a batch
        self._stores: dict = {}
        # role -> partition -> [Message]; without a rng what every reader has read is dropped
        # (self.base: the offset of each log's first message), so memory follows the state, not the input.
        self.logs: dict = {role: {} for role in ORDER}
        self.base: dict = {}
        self.read: dict = {}  # (role, partition) -> offset of the next message to read
        self.sink: dict = {OUTPUT: [], DLQ: []}  # what leaves the topology: values in order
        self.intake = IntakeStage(harm, partitions, not_after=not_after)
        self.lists = tuple(lists or default_lists(top_n, window_days, min_allegations))
        longest = max(spec.window_days for spec in self.lists)
        retention = longest + RETENTION_MARGIN_DAYS if retention_days is None else retention_days
        self.register = RegisterStage(harm, partitions, self._store_maker("register", crash_safe), tick_interval=0,
                                      retention_days=retention)
        self.ledger = LedgerStage(partitions, self._store_maker("ledger", crash_safe), top_n, window_days,
                                  min_allegations, book_capacity=book_capacity, lists=self.lists)
        self.ranker = RankerStage(self._store_maker("ranker", crash_safe), top_n, self.lists)
        self.tally: dict = {}

    def _store_maker(self, table: str, crash_safe: bool):
        def store(partition: int):
            key = (table, partition)
            if key not in self._stores:
                self._stores[key] = WriteBackStore() if crash_safe else DictStore()
            if crash_safe:  # a fresh view of the committed state, as a new PartitionStore is
                return WriteBackStore(self._stores[key].db)
            return self._stores[key]
        return store

    # -- input and output ------------------------------------------------------------------

    def publish(self, value: bytes, key: Optional[bytes] = None) -> None:
        """Append an input record, to the partition its key maps to (as a producer would)."""
        partition = 0 if key is None else partition_for(key.decode("utf-8", "replace"), self.input_partitions)
        self._append(INPUT, partition, value)

    def _append(self, role: str, partition: int, value: bytes) -> None:
        if role in self.sink:
            self.sink[role].append(value)
            return
        log = self.logs[role].setdefault(partition, [])
        log.append(Message(role, partition, self.base.get((role, partition), 0) + len(log), None, value))

    def output(self) -> list:
        """Every ranking event emitted, in order (one partition)."""
        return [orjson.loads(v) for v in self.sink[OUTPUT]]

    def dead_letters(self) -> list:
        return [orjson.loads(v) for v in self.sink[DLQ]]

    @property
    def merge_home(self) -> int:
        return partition_for(MERGE_KEY.decode(), self.input_partitions)

    # -- running ---------------------------------------------------------------------------

    def run(self, crash_rate: float = 0.0) -> None:
        """Work until every stage has read everything; with a rng, in random order, crashing at `crash_rate`."""
        while True:
            ready = [role for role in ORDER if self._unread(role)]
            if not ready:
                return
            role = ready[0] if self.rng is None else self.rng.choice(ready)
            crash = self.rng is not None and self.rng.random() < crash_rate
            self.step(role, crash=crash)

    def advance_clock(self, as_of: int) -> None:
        """The wall clock: every register and ledger partition moves to `as_of` (as the worker's timer sends it)."""
        work = Work()
        clock_records(work, self.partitions, as_of)
        self._send(work)

    def restart(self, harm, fingerprint: str) -> None:
        """A restart with another harm table: every stage forgets what it holds in memory, and the register
        scores its state again with the new table (as the worker does when its partitions are assigned)."""
        for stage in (self.intake, self.register, self.ledger, self.ranker):
            stage.reset()
        self.intake.harm = self.register.harm = harm
        self.register.fingerprint = fingerprint
        work = self.register.rescore(range(self.partitions))
        self._send(work)
        for store in work.stores:
            store.commit()

    def flush_ticks(self) -> None:
        """The register's timer: send the tick the last batches left pending."""
        work = Work()
        self.register.tick(work, self.mono, force=True)
        self._send(work)

    def step(self, role: str, crash: bool = False) -> None:
        """One batch of `role`'s stage. A crash sends its output, then loses its state and its reading."""
        batch = self._take(role)
        self.mono += 1.0
        stage = {INPUT: self.intake, REGISTER: self.register, LEDGER: self.ledger, CANDIDATES: self.ranker}[role]
        if role == INPUT:
            work = self.intake.work(batch, self.now_us, self.merge_home if self.input_partitions > 1 else None)
        elif role == REGISTER:
            work = self.register.work(batch, self.mono)
        else:
            work = stage.work(batch)
        for key, count in work.tally.items():
            self.tally[key] = self.tally.get(key, 0) + count
        if getattr(stage, "writes_first", False):
            for store in work.stores:
                store.commit()
            if crash:  # between the write and the send: a restart sends what the write holds
                stage.reset()
                self._send(stage.recover() if role == CANDIDATES else stage.recover(range(self.partitions)))
                return
            self._send(work)
        else:
            self._send(work)
            if crash:  # between the send and the write: the batch is read again
                for store in work.stores:
                    store.discard_changes()
                stage.reset()
                return
            for store in work.stores:
                store.commit()
        for m in batch:
            self.read[(role, m.partition)] = m.offset + 1
        if self.rng is None:
            self._trim(role)

    def _trim(self, role: str) -> None:
        for p, log in self.logs[role].items():
            done = self.read.get((role, p), 0) - self.base.get((role, p), 0)
            if done:
                del log[:done]
                self.base[(role, p)] = self.base.get((role, p), 0) + done

    def _unread(self, role: str) -> list:
        return [p for p, log in self.logs[role].items()
                if self.read.get((role, p), 0) < self.base.get((role, p), 0) + len(log)]

    def _take(self, role: str) -> list:
        """A batch: a prefix of what is unread in some of the role's partitions."""
        partitions = sorted(self._unread(role))
        rng = self.rng
        if rng is not None:
            partitions = [p for p in partitions if rng.random() < 0.6] or [rng.choice(partitions)]
        batch = []
        for p in partitions:
            start = self.read.get((role, p), 0) - self.base.get((role, p), 0)
            count = self.max_batch if rng is None else rng.randint(1, self.max_batch)
            batch.extend(self.logs[role][p][start:start + count])
        return batch

    def _send(self, work: Work) -> None:
        for record in work.outbox.records():
            self._append(record.role, record.partition or 0, record.value)
