"""The batch reference: the ranking as of a time, from a JSON-lines file of input events.

It streams the file line by line through the same validation and the same
Pipeline the worker runs, so memory grows with the state, not the file, and
the two cannot disagree. Lines the worker would dead-letter are skipped and
reported with their line number and reason.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

from schemas.validate import Rejected, validate

from .gcpolicy import long_lived_state
from .pipeline import Pipeline
from .register import ACCEPTED, DUPLICATE

FLUSH_EVERY = 1000


@dataclass
class BatchResult:
    pipeline: Pipeline
    as_of: Optional[int]
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    after_as_of: int = 0
    events: list = field(default_factory=list)  # ranking events, when asked for


def now_us() -> int:
    return time.time_ns() // 1000


def rank_lines(lines: Iterable, harm_table, top_n: int = 100, window_days: int = 365, min_allegations: int = 2,
               as_of: Optional[int] = None, on_reject: Optional[Callable[[int, str], None]] = None,
               clock_now: Optional[int] = None, keep_events: bool = False,
               retention_days: Optional[int] = None) -> BatchResult:
    """Apply every line (bytes or str, one JSON event each) in order; returns the final state.

    With `as_of`, events recorded after it have not happened yet and are not
    applied, and the clock is set to `as_of` at the end (so allegations age out, and
    reports older than `retention_days` are forgotten; None: window_days + 90).
    """
    pipe = Pipeline(harm_table, top_n=top_n, window_days=window_days, min_allegations=min_allegations,
                    retention_days=retention_days)
    result = BatchResult(pipe, as_of)
    now = now_us() if clock_now is None else clock_now
    with long_lived_state() as tick:  # see streams/gcpolicy.py: the state is millions of long-lived objects
        pending = 0
        for lineno, line in enumerate(lines, start=1):
            if isinstance(line, str):
                line = line.encode("utf-8", "surrogateescape")
            if not line.strip():
                continue
            result.lines += 1
            event = validate(line.rstrip(b"\r\n"), harm_table, now_us=now)
            if isinstance(event, Rejected):
                result.rejected += 1
                if on_reject:
                    on_reject(lineno, event.reason)
                continue
            if as_of is not None and event.at > as_of:
                result.after_as_of += 1
                continue
            outcome = pipe.apply(event)
            tick()
            if outcome.status == ACCEPTED:
                result.accepted += 1
            elif outcome.status == DUPLICATE:
                result.duplicates += 1
            else:
                result.rejected += 1
                if on_reject:
                    code, detail = outcome.rejection
                    on_reject(lineno, f"{code}: {detail}")
            pending += 1
            if keep_events or pending >= FLUSH_EVERY:
                out = pipe.flush()
                if keep_events:
                    result.events.extend(out)
                pending = 0
        if as_of is not None:
            pipe.advance(as_of)
        out = pipe.flush()
        if keep_events:
            result.events.extend(out)
    if result.as_of is None:
        result.as_of = pipe.as_of if result.accepted else None
    return result


def ranking_rows(result: BatchResult) -> list[dict]:
    """`[{"rank", "suspect_id", "score", "allegations", "victims"}]` as SPEC §5 prints with --json."""
    return [{"rank": rank, "suspect_id": suspect, "score": summary.score / 100, "allegations": summary.allegations,
             "victims": summary.victims} for rank, suspect, summary in result.pipeline.ranking()]
