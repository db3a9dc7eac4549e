"""``harmrank publish FILE``: send a JSON-lines file of input events to ``crime-reports``.

Every non-blank line goes out as one message whose value is the line's bytes, unchanged
(the worker validates and dead-letters; this command never drops a line). The key is the
event's ``crime_ref`` when the line is a JSON object with a string ``crime_ref``, the fixed key
``suspects.merged`` for a merge (all merges in one partition, in the order published), else no
key. Lines that are not JSON objects are
still sent, and reported on stderr with their line number.

Exit codes (agents/commands): 0 every line acknowledged; 1 some sends failed; 2 unreadable
file, bad settings, or broker unreachable.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Iterable, Iterator, Optional, Union

from schemas.events import MERGE_KEY

from ..kafka_admin import BrokerError, reachable_servers
from ..kafka_clients import kafka_python_kwargs
from ..settings import KAFKA_FIELDS, add_common_args, help_text
from . import CONNECT_TIMEOUT, EXIT_FAILED, Fail, command, say, settings_of

__all__ = ["PublishResult", "event_key", "main", "publish_lines"]

MAX_REPORTED = 20  # per-line stderr reports before summarising the rest


@dataclass
class PublishResult:
    sent: int = 0  # acknowledged by the broker
    failed: int = 0  # not acknowledged (error or timeout)
    errors: list = field(default_factory=list)  # [(line_no, message)], at most MAX_ERRORS kept
    not_json: list = field(default_factory=list)  # [(line_no, reason)] lines that are not JSON objects
    lines: int = 0  # non-blank lines handed to the producer
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failed == 0

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    def summary(self) -> str:
        return f"sent {self.sent} events in {self.elapsed:.1f} s ({self.rate:.0f}/s), {self.failed} failed"


MAX_ERRORS = 100


def event_key(line: Union[bytes, str]) -> tuple[Optional[bytes], Optional[str]]:
    """``(key, problem)`` for one line: the key bytes (or None), and why the line is not a
    JSON object (or None when it is one)."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None, "not JSON"
    if not isinstance(obj, dict):
        return None, "not a JSON object"
    if obj.get("type") == "suspects.merged":
        # Merges name no crime_ref, and each depends on the ones before it (alias chains,
        # self-merges): one key puts them all in one partition, in the order published.
        return MERGE_KEY, None
    value = obj.get("crime_ref")
    if isinstance(value, str) and value:
        return value.encode("utf-8"), None
    return None, None


def _producer(bootstrap: Union[str, list[str]], compression: Optional[str], client_kwargs: dict):
    """A kafka-python producer on a broker that answers, or BrokerError."""
    servers = reachable_servers(bootstrap, timeout=CONNECT_TIMEOUT, ssl_context=client_kwargs.get("ssl_context"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaProducer
        from kafka.errors import KafkaError
    try:
        return KafkaProducer(
            **client_kwargs,
            bootstrap_servers=servers,
            client_id="harmrank-publish",
            acks="all",
            linger_ms=20,
            # Record batches of up to 1 MiB rather than kafka-python's 16 KiB (about 72 events): a bulk
            # publish makes a few hundred batches a partition instead of thousands, which the local broker
            # stores and serves with far less work (docs/PERFORMANCE.md).
            batch_size=1024 * 1024,
            compression_type=compression,
            # The idempotent producer (kafka-python's default; tansu accepts it) keeps the
            # order of the events of one crime_ref across retries.
            enable_idempotence=True,
            retries=5,
            delivery_timeout_ms=60000,
            request_timeout_ms=15000,
            max_block_ms=15000,
            max_request_size=4 * 1024 * 1024,
        )
    except KafkaError as exc:
        raise BrokerError(f"broker unreachable at {','.join(servers)}: {exc}") from None


class _Tally:
    """A publish's result, counted from kafka-python's callbacks (another thread) under one lock."""

    def __init__(self):
        self.result = PublishResult()
        self.lock = threading.Lock()

    def acked(self, _meta: Any) -> None:
        with self.lock:
            self.result.sent += 1

    def failed(self, line_no: int, exc: BaseException) -> None:
        with self.lock:
            self.result.failed += 1
            if len(self.result.errors) < MAX_ERRORS:
                self.result.errors.append((line_no, f"{type(exc).__name__}: {exc}"))


def publish_lines(
    lines: Iterable[Union[bytes, str]],
    bootstrap: Union[str, list[str]],
    topic: str,
    *,
    client_kwargs: Optional[dict] = None,
    rate: Optional[float] = None,
    compression: Optional[str] = None,
    on_problem: Optional[Callable[[int, str], None]] = None,
    on_progress: Optional[Callable[[int, int, float], None]] = None,
    flush_timeout: float = 60.0,
) -> PublishResult:
    """Send every non-blank line as one message; returns what the broker acknowledged.

    ``lines`` yields bytes (or str, encoded UTF-8), with or without the line terminator.
    ``rate`` paces sends to at most that many events per second. ``on_problem(line_no,
    reason)`` is called for each line that is not a JSON object (it is sent anyway).
    ``on_progress(queued, acked, elapsed)`` is called about once a second.
    ``client_kwargs`` are kafka-python's security arguments (`kafka_clients.kafka_python_kwargs`).
    Raises ``BrokerError`` when the broker cannot be reached at all.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka.errors import KafkaError, KafkaTimeoutError
    producer = _producer(bootstrap, compression, dict(client_kwargs or {}))
    tally = _Tally()
    result, lock, record_error = tally.result, tally.lock, tally.failed

    aborted: Optional[BaseException] = None
    start = time.monotonic()
    next_progress = start + 1.0
    try:
        for line_no, raw in _payloads(lines):
            key, problem = event_key(raw)
            if problem is not None:
                result.not_json.append((line_no, problem))
                if on_problem is not None:
                    on_problem(line_no, problem)
            result.lines += 1
            if rate:
                ahead = start + result.lines / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            if aborted is not None:
                with lock:
                    result.failed += 1
                continue
            try:
                future = producer.send(topic, value=raw, key=key)
            except KafkaTimeoutError as exc:  # broker gone: do not block on every line
                record_error(line_no, exc)
                aborted = exc
                continue
            except KafkaError as exc:  # e.g. MessageSizeTooLarge
                record_error(line_no, exc)
                continue
            future.add_callback(tally.acked)
            future.add_errback(lambda exc, n=line_no: record_error(n, exc))
            if on_progress is not None:
                now = time.monotonic()
                if now >= next_progress:
                    next_progress = now + 1.0
                    on_progress(result.lines, result.sent, now - start)
        if aborted is not None:
            with lock:
                result.errors.append((0, f"gave up after a send timed out: {aborted}"))
        try:
            producer.flush(timeout=flush_timeout)
        except KafkaTimeoutError:
            pass
    finally:
        with contextlib.suppress(Exception):
            producer.close(timeout=5)
        result.elapsed = time.monotonic() - start
    with lock:
        _count_unacknowledged(result, flush_timeout)
    return result


def _payloads(lines: Iterable[Union[bytes, str]]) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes without the line terminator) of each non-blank line."""
    for line_no, raw in enumerate(lines, 1):
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        if raw.endswith(b"\n"):
            raw = raw[:-1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
        if raw.strip():
            yield line_no, raw


def _count_unacknowledged(result: PublishResult, flush_timeout: float) -> None:
    """After the flush: anything neither acknowledged nor failed by now timed out."""
    missing = result.lines - result.sent - result.failed
    if missing > 0:
        result.failed += missing
        if len(result.errors) < MAX_ERRORS:
            result.errors.append((0, f"{missing} events not acknowledged within {flush_timeout:g} s"))


def _read_lines(fh: IO[bytes]) -> Iterator[bytes]:
    for line in fh:
        yield line


PROG = "harmrank publish"


@command(PROG)
def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG,
                                     description="Publish a JSON-lines file of input events (one per line; '-' = stdin).")
    parser.add_argument("file", metavar="FILE", help="JSON-lines file, or - for stdin")
    parser.add_argument("--topic", dest="input_topic", default=None, help=help_text("input_topic"))
    parser.add_argument("--rate", type=float, default=None, metavar="EPS", help="send at most EPS events per second")
    parser.add_argument("--progress", action="store_true",
                        help="report progress every second even when stderr is not a terminal")
    parser.add_argument("--compression", choices=["none", "gzip"], default="none",
                        help="batch compression (default none: faster against the local broker)")
    add_common_args(parser, only=KAFKA_FIELDS)
    args = parser.parse_args(argv)
    settings = settings_of(args)
    if args.rate is not None and not args.rate > 0:
        raise Fail(f"--rate must be a positive number, got {args.rate:g}")
    if args.file == "-":
        return _publish(sys.stdin.buffer, args, settings)
    try:
        fh = open(args.file, "rb")
    except OSError as exc:
        raise Fail(f"cannot read {args.file}: {exc.strerror or exc}") from None
    with fh:
        return _publish(fh, args, settings)


def _publish(fh: IO[bytes], args: argparse.Namespace, settings) -> int:
    """Send the file's lines and report on stderr; the exit code."""
    reported = [0]

    def on_problem(line_no: int, reason: str) -> None:
        reported[0] += 1
        if reported[0] <= MAX_REPORTED:
            print(f"line {line_no}: {reason}, sent as-is for the dead-letter topic", file=sys.stderr, flush=True)

    tty = sys.stderr.isatty()
    show_progress = tty or args.progress

    def on_progress(queued: int, acked: int, elapsed: float) -> None:
        msg = f"queued {queued}, acknowledged {acked} ({acked / elapsed if elapsed else 0:.0f}/s)"
        print(("\r" + msg + "   ") if tty else msg, end="" if tty else "\n", file=sys.stderr, flush=True)

    try:
        result = publish_lines(_read_lines(fh), settings.broker, settings.input_topic, rate=args.rate,
                               client_kwargs=kafka_python_kwargs(settings),
                               compression=None if args.compression == "none" else args.compression,
                               on_problem=on_problem, on_progress=on_progress if show_progress else None)
    except BrokerError as exc:
        raise Fail(str(exc)) from None
    except OSError as exc:
        raise Fail(f"error reading {args.file}: {exc.strerror or exc}") from None
    except KeyboardInterrupt:
        say(PROG, "interrupted")
        return 130
    if show_progress and tty:
        print(file=sys.stderr)
    if reported[0] > MAX_REPORTED:
        print(f"... and {reported[0] - MAX_REPORTED} more lines that are not JSON objects", file=sys.stderr)
    for line_no, message in result.errors[:MAX_REPORTED]:
        where = f"line {line_no}: " if line_no else ""
        print(f"{where}send failed: {message}", file=sys.stderr)
    print(result.summary(), flush=True)
    return 0 if result.ok else EXIT_FAILED
