"""``harmrank publish FILE``: send a JSON-lines file of input events to ``crime-reports``.

Every non-blank line goes out as one message whose value is the line's bytes, unchanged
(the worker validates and dead-letters; this command never drops a line). The key is the
event's ``crime_ref`` when the line is a JSON object with a string ``crime_ref``, the fixed key
``suspects.merged`` for a merge (all merges in one partition, in the order published), else no
key. Lines that are not JSON objects are
still sent, and reported on stderr with their line number.

Exit codes: 0 every line acknowledged; 1 some sends failed; 2 unreadable file, bad
settings, or broker unreachable.
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
from typing import IO, Callable, Iterable, Iterator, Optional, Union

from agents.broker import BrokerError, reachable_servers
from agents.settings import Settings

# Seconds to wait for the broker to answer before giving up (exit code 2).
CONNECT_TIMEOUT = 5.0

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
MERGE_KEY = b"suspects.merged"


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


def _producer(servers: list[str], compression: Optional[str]):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaProducer
    return KafkaProducer(
        bootstrap_servers=servers,
        client_id="harmrank-publish",
        acks="all",
        linger_ms=20,
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


def publish_lines(
    lines: Iterable[Union[bytes, str]],
    bootstrap: Union[str, list[str]],
    topic: str = "crime-reports",
    *,
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
    Raises ``BrokerError`` when the broker cannot be reached at all.
    """
    servers = reachable_servers(bootstrap, timeout=CONNECT_TIMEOUT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka.errors import KafkaError, KafkaTimeoutError
    try:
        producer = _producer(servers, compression)
    except KafkaError as exc:
        raise BrokerError(f"broker unreachable at {','.join(servers)}: {exc}") from None

    result = PublishResult()
    lock = threading.Lock()

    def record_error(line_no: int, exc: BaseException) -> None:
        with lock:
            result.failed += 1
            if len(result.errors) < MAX_ERRORS:
                result.errors.append((line_no, f"{type(exc).__name__}: {exc}"))

    def ok_cb(_meta, line_no=None):
        with lock:
            result.sent += 1

    aborted: Optional[BaseException] = None
    start = time.monotonic()
    next_progress = start + 1.0
    try:
        for line_no, raw in enumerate(lines, 1):
            if isinstance(raw, str):
                raw = raw.encode("utf-8")
            if raw.endswith(b"\n"):
                raw = raw[:-1]
                if raw.endswith(b"\r"):
                    raw = raw[:-1]
            if not raw.strip():
                continue
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
            future.add_callback(ok_cb)
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
        # Anything neither acknowledged nor failed by now timed out.
        missing = result.lines - result.sent - result.failed
        if missing > 0:
            result.failed += missing
            if len(result.errors) < MAX_ERRORS:
                result.errors.append((0, f"{missing} events not acknowledged within {flush_timeout:g} s"))
    return result


def _read_lines(fh: IO[bytes]) -> Iterator[bytes]:
    for line in fh:
        yield line


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="harmrank publish",
        description="Publish a JSON-lines file of input events (one per line; '-' = stdin).",
    )
    parser.add_argument("file", metavar="FILE", help="JSON-lines file, or - for stdin")
    parser.add_argument("--broker", default=None, help="broker URL (env HARMRANK_BROKER; default kafka://127.0.0.1:9092)")
    parser.add_argument("--topic", default=None, help="topic (env HARMRANK_INPUT_TOPIC; default crime-reports)")
    parser.add_argument("--rate", type=float, default=None, metavar="EPS", help="send at most EPS events per second")
    parser.add_argument("--progress", action="store_true", help="report progress every second even when stderr is not a terminal")
    parser.add_argument("--compression", choices=["none", "gzip"], default="none",
                        help="batch compression (default none: faster against the local broker)")
    args = parser.parse_args(argv)

    def err(msg: str) -> None:
        print(f"harmrank publish: {msg}", file=sys.stderr, flush=True)

    try:
        settings = Settings.from_env(broker=args.broker, input_topic=args.topic)
    except ValueError as exc:
        err(str(exc))
        return 2
    if args.rate is not None and not args.rate > 0:
        err(f"--rate must be a positive number, got {args.rate:g}")
        return 2

    if args.file == "-":
        fh = sys.stdin.buffer
        close = False
    else:
        try:
            fh = open(args.file, "rb")
        except OSError as exc:
            err(f"cannot read {args.file}: {exc.strerror or exc}")
            return 2
        close = True

    reported = [0]

    def on_problem(line_no: int, reason: str) -> None:
        reported[0] += 1
        if reported[0] <= MAX_REPORTED:
            print(f"line {line_no}: {reason}, sent as-is for the dead-letter topic", file=sys.stderr, flush=True)

    tty = sys.stderr.isatty()
    show_progress = tty or args.progress

    def on_progress(queued: int, acked: int, elapsed: float) -> None:
        msg = f"queued {queued}, acknowledged {acked} ({acked / elapsed if elapsed else 0:.0f}/s)"
        if tty:
            print("\r" + msg + "   ", end="", file=sys.stderr, flush=True)
        else:
            print(msg, file=sys.stderr, flush=True)

    try:
        result = publish_lines(
            _read_lines(fh), settings.broker, settings.input_topic,
            rate=args.rate,
            compression=None if args.compression == "none" else args.compression,
            on_problem=on_problem,
            on_progress=on_progress if show_progress else None,
        )
    except BrokerError as exc:
        err(str(exc))
        return 2
    except OSError as exc:
        err(f"error reading {args.file}: {exc.strerror or exc}")
        return 2
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    finally:
        if close:
            with contextlib.suppress(Exception):
                fh.close()
    if show_progress and tty:
        print(file=sys.stderr)
    if reported[0] > MAX_REPORTED:
        print(f"... and {reported[0] - MAX_REPORTED} more lines that are not JSON objects", file=sys.stderr)
    for line_no, message in result.errors[:MAX_REPORTED]:
        where = f"line {line_no}: " if line_no else ""
        print(f"{where}send failed: {message}", file=sys.stderr)
    print(result.summary(), flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
