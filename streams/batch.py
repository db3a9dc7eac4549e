"""The batch reference: the ranking as of a time, from a JSON-lines file of input events.

It streams the file, a chunk of lines at a time, through the in-process driver
with one partition: the worker's very stages (validation included), so the two
cannot disagree. Memory grows with the state, not the file. Lines the worker
would dead-letter are skipped and reported with their line number and reason.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Sequence

import orjson

from schemas.defaults import MIN_ALLEGATIONS, TOP_N, WINDOW_DAYS
from schemas.lists import ListSpec
from .driver import Driver
from .gcpolicy import long_lived_state
from .stages import DLQ, INPUT, OUTPUT

CHUNK = 1000  # lines a batch: the ranking is worked out (flushed) after each


@dataclass
class BatchResult:
    driver: Driver
    as_of: Optional[int]
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    after_as_of: int = 0
    events: list = field(default_factory=list)  # ranking events, when asked for

    @property
    def pipeline(self):
        """The register, ledger and ranker of the one partition (for the tests and the API checks)."""
        from .pipeline import StagesView  # (pipeline imports this module's driver)

        return StagesView(self.driver)


def now_us() -> int:
    return time.time_ns() // 1000


def rank_lines(lines: Iterable, harm_table, top_n: int = TOP_N, window_days: int = WINDOW_DAYS, min_allegations: int = MIN_ALLEGATIONS,
               as_of: Optional[int] = None, on_reject: Optional[Callable[[int, str], None]] = None,
               clock_now: Optional[int] = None, keep_events: bool = False,
               retention_days: Optional[int] = None, lists: Optional[Sequence[ListSpec]] = None) -> BatchResult:
    """Apply every line (bytes or str, one JSON event each) in order; returns the final state.

    With `as_of`, events recorded after it have not happened yet and are not
    applied, and the clock is set to `as_of` at the end (so allegations age out, and
    reports older than `retention_days` are forgotten; None: the longest list window + 90).
    `lists`: the lists of SPEC §7 (None: the one list `vawg` of top_n, window_days, min_allegations).
    With `keep_events`, every line is its own batch, so each ranking event's
    cause is the one event that moved it.
    """
    now = now_us() if clock_now is None else clock_now
    driver = Driver(harm_table, 1, top_n, window_days, min_allegations, not_after=as_of, now_us=now,
                    max_batch=1 if keep_events else CHUNK, retention_days=retention_days, lists=lists)
    result = BatchResult(driver, as_of)
    chunk: list = []  # line numbers of the lines published since the last run, by input offset
    with long_lived_state() as tick:  # see streams/gcpolicy.py: the state is millions of long-lived objects
        for lineno, line in enumerate(lines, start=1):
            if isinstance(line, str):
                line = line.encode("utf-8", "surrogateescape")
            if not line.strip():
                continue
            result.lines += 1
            driver.publish(line.rstrip(b"\r\n"))
            chunk.append(lineno)
            tick()
            if len(chunk) >= (1 if keep_events else CHUNK):
                _run(driver, chunk, result, on_reject, keep_events)
        _run(driver, chunk, result, on_reject, keep_events)
        if as_of is not None:
            driver.advance_clock(as_of)
            _run(driver, chunk, result, on_reject, keep_events)
    tally = driver.tally
    result.accepted = sum(n for k, n in tally.items() if k[0] == "consumed" and k[2] == "accepted")
    result.duplicates = sum(n for k, n in tally.items() if k[0] == "consumed" and k[2] == "duplicate")
    result.rejected = sum(n for k, n in tally.items() if k[0] == "consumed" and k[2] == "dead_lettered")
    result.after_as_of = tally.get(("after_as_of",), 0)
    if result.as_of is None:
        result.as_of = driver.ledger.ledger(0).as_of if result.accepted else None
    return result


def _run(driver: Driver, chunk: list, result: BatchResult, on_reject, keep_events: bool) -> None:
    """Work what was published; report its dead letters in line order, keep its ranking events if asked."""
    first = driver.base.get((INPUT, 0), 0)  # the input offset of chunk[0]
    driver.run()
    if on_reject is not None:
        letters = sorted((orjson.loads(v) for v in driver.sink[DLQ]), key=lambda letter: letter["offset"])
        for letter in letters:
            on_reject(chunk[letter["offset"] - first], letter["reason"])
    driver.sink[DLQ].clear()
    chunk.clear()
    if keep_events:
        result.events.extend(orjson.loads(v) for v in driver.sink[OUTPUT])
    driver.sink[OUTPUT].clear()


def ranking_rows(result: BatchResult, list_name: Optional[str] = None) -> list[dict]:
    """`[{"rank", "suspect_id", "score", "allegations", "victims"}]` of a list (None: the first) as SPEC §5
    prints with --json; KeyError for a list not configured."""
    ranker = result.driver.ranker.ranker_of(list_name)
    if ranker is None:
        raise KeyError(list_name)
    return [{"rank": rank, "suspect_id": suspect, "score": summary.score / 100, "allegations": summary.allegations,
             "victims": summary.victims} for rank, suspect, summary in ranker.ranking()]
