"""``harmrank follow``: print the ranking events (topic ``harm-ranking``) as they arrive.

Human-readable by default::

    2025-03-01 10:00  ENTER  #17  S123  score 2419.0  3 allegations  2 victims
    2025-03-01 10:05  EXIT        S9    displaced  score 40.0  2 allegations  1 victim

``--json`` prints each event's raw JSON line. No consumer group is used (nothing is
committed): it follows from the end of the topic, or from the beginning with
``--from-beginning``. Each event is printed once: after a restart or a rebalance the worker
may send its last batch's events again, with the same event_ids (SPEC §3); those are skipped.

tansu quirk: ListOffsets(LATEST) answers "base offset of the last batch + 1", so a plain
``seek_to_end`` would replay part of the last batch. The true end is the high watermark of
the first Fetch response; records below it are history and skipped.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import time
import warnings
from collections import OrderedDict
from typing import Any, Callable, Optional, TextIO, Union

from ..kafka_admin import BrokerError, reachable_servers
from ..kafka_clients import kafka_python_kwargs
from ..settings import KAFKA_FIELDS, add_common_args, help_text
from . import CONNECT_TIMEOUT, Fail, command, say, settings_of

__all__ = ["FirstSeen", "event_of", "format_event", "follow", "main"]


def _short_time(ts: Any) -> str:
    """``2025-03-01T10:00:00+00:00`` -> ``2025-03-01 10:00`` (kept in its own offset)."""
    if not isinstance(ts, str) or len(ts) < 16 or ts[10] not in "Tt ":
        return str(ts) if ts is not None else "-"
    return ts[:10] + " " + ts[11:16]


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "?"
    if isinstance(value, (int, float)):
        return f"{float(value):.1f}" if float(value) == round(float(value), 1) else f"{float(value):.2f}"
    return str(value)


def _plural(n: Any, word: str) -> str:
    if isinstance(n, int) and not isinstance(n, bool):
        return f"{n} {word}" + ("" if n == 1 else "s")
    return f"? {word}s"


def format_event(value: Union[bytes, str, dict]) -> str:
    """One human-readable line for a ranking event (any other payload is shown raw)."""
    obj = value
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        try:
            obj = json.loads(value)
        except ValueError:
            return f"?      {value}"
    if not isinstance(obj, dict):
        return f"?      {value}"
    kind = obj.get("type")
    when = _short_time(obj.get("as_of"))
    sid = obj.get("suspect_id", "?")
    tail = f"score {_num(obj.get('score'))}  {_plural(obj.get('allegations'), 'allegation')}  {_plural(obj.get('victims'), 'victim')}"
    if kind == "ranking.entered":
        rank = obj.get("rank")
        return f"{when}  ENTER  #{rank if rank is not None else '?':<4} {sid}  {tail}"
    if kind == "ranking.updated":
        rank = obj.get("rank")
        return f"{when}  UPDATE #{rank if rank is not None else '?':<4} {sid}  {tail}"
    if kind == "ranking.exited":
        reason = obj.get("reason", "?")
        return f"{when}  EXIT   {'':5} {sid}  {reason}  {tail}"
    text = value if isinstance(value, str) else json.dumps(obj)
    return f"{when}  {str(kind or '?').upper():6} {text}"


class FirstSeen:
    """Keeps an event the first time its event_id comes, among the latest `size` ids (a re-send comes
    right after a restart or rebalance, so the window is far wider than any re-send's distance)."""

    def __init__(self, size: int = 100_000):
        self.size = size
        self._ids: OrderedDict = OrderedDict()

    def __call__(self, event: Optional[dict]) -> bool:
        """True the first time an event's id comes; an event without one (or not an event) always passes."""
        event_id = event.get("event_id") if isinstance(event, dict) else None
        if not isinstance(event_id, str):
            return True
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)
        return True


def _consumer(servers: list[str], from_beginning: bool, client_kwargs: dict):
    """A kafka-python consumer with no group (nothing is committed), or BrokerError."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaConsumer
        from kafka.errors import KafkaError
    try:
        return KafkaConsumer(
            bootstrap_servers=servers,
            client_id="harmrank-follow",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if from_beginning else "latest",
            session_timeout_ms=6000,
            fetch_max_wait_ms=100,
            allow_auto_create_topics=False,
            **client_kwargs,
        )
    except KafkaError as exc:
        raise BrokerError(f"broker unreachable at {','.join(servers)}: {exc}") from None


def _seek_to_end(consumer: Any, tps: list) -> dict:
    """Seek to the end; returns {partition: offset} below which records are history, to skip.

    tansu: the LATEST offset may be inside the last batch; the real end is the
    fetch high watermark.
    """
    consumer.seek_to_end(*tps)
    skip_below: dict = {}
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        consumer.poll(timeout_ms=100)  # history
        known = {tp: consumer.highwater(tp) for tp in tps}
        if all(hw is not None for hw in known.values()):
            skip_below = known
            break
    for tp, hw in skip_below.items():
        if hw is not None and consumer.position(tp) < hw:
            consumer.seek(tp, hw)
    return skip_below


def follow(
    bootstrap: Union[str, list[str]],
    topic: str,
    emit: Callable[[bytes], None],
    *,
    from_beginning: bool = False,
    max_events: Optional[int] = None,
    idle_timeout: Optional[float] = None,
    on_waiting: Optional[Callable[[str], None]] = None,
    client_kwargs: Optional[dict] = None,
    only: Optional[Callable[[bytes], bool]] = None,
) -> int:
    """Call ``emit(value_bytes)`` for each event (that ``only`` keeps, if given); returns how many were emitted.

    Stops after ``max_events`` events, or after ``idle_timeout`` seconds with none.
    ``client_kwargs`` are kafka-python's security arguments (`kafka_clients.kafka_python_kwargs`).
    Raises ``BrokerError`` when the broker cannot be reached.
    """
    client_kwargs = dict(client_kwargs or {})
    servers = reachable_servers(bootstrap, timeout=CONNECT_TIMEOUT, ssl_context=client_kwargs.get("ssl_context"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import TopicPartition
    consumer = _consumer(servers, from_beginning, client_kwargs)

    count = 0
    last_activity = time.monotonic()

    def idle_expired() -> bool:
        return idle_timeout is not None and time.monotonic() - last_activity >= idle_timeout

    try:
        # 1. Wait for the topic to exist.
        warned = False
        while True:
            parts = consumer.partitions_for_topic(topic)
            if parts:
                break
            if not warned:
                warned = True  # the topic was missing when we started
                if on_waiting is not None:
                    on_waiting(f"waiting for topic {topic!r} to appear")
            if idle_expired():
                return count
            time.sleep(0.25)
            with contextlib.suppress(Exception):
                consumer.topics()  # refresh metadata
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        skip_below: dict = {}
        if from_beginning or warned:
            # A topic that did not exist when we started holds only new events.
            consumer.seek_to_beginning(*tps)
        else:
            skip_below = _seek_to_end(consumer, tps)
        last_activity = time.monotonic()
        # 2. Follow.
        while True:
            if max_events is not None and count >= max_events:
                return count
            if idle_expired():
                return count
            batch = consumer.poll(timeout_ms=200)
            # Order is kept within a partition (one suspect's events share one).
            records = [r for tp in tps for r in batch.get(tp, ())]
            for rec in records:
                if rec.offset < (skip_below.get(TopicPartition(rec.topic, rec.partition)) or 0):
                    continue
                value = rec.value if rec.value is not None else b"null"
                if only is not None and not only(value):
                    continue
                emit(value)
                count += 1
                last_activity = time.monotonic()
                if max_events is not None and count >= max_events:
                    return count
    finally:
        with contextlib.suppress(Exception):
            consumer.close()


PROG = "harmrank follow"


def event_of(value: bytes) -> Optional[dict]:
    """A ranking event as a dict, or None for anything else."""
    try:
        obj = json.loads(value)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


@command(PROG)
def main(argv: Optional[list[str]] = None, stdout: Optional[TextIO] = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG,
                                     description="Print the ranking events (entered / exited the top N) as they arrive.")
    parser.add_argument("--topic", dest="output_topic", default=None, help=help_text("output_topic"))
    parser.add_argument("--json", action="store_true", help="print each event's raw JSON line")
    parser.add_argument("--list", dest="list_name", default=None, metavar="NAME",
                        help="only the events of this list (SPEC §7; default: every list's)")
    parser.add_argument("--from-beginning", action="store_true", help="start at the beginning of the topic, not its end")
    parser.add_argument("--max", type=int, default=None, metavar="N", help="stop after N events")
    parser.add_argument("--timeout", type=float, default=None, metavar="S", help="stop after S seconds with no event")
    add_common_args(parser, only=KAFKA_FIELDS)
    args = parser.parse_args(argv)
    out = stdout if stdout is not None else sys.stdout
    settings = settings_of(args)
    if args.max is not None and args.max < 1:
        raise Fail(f"--max must be a positive integer, got {args.max}")
    if args.timeout is not None and not args.timeout > 0:
        raise Fail(f"--timeout must be a positive number, got {args.timeout:g}")

    def emit(value: bytes) -> None:
        line = value.decode("utf-8", "replace").rstrip("\n") if args.json else format_event(value)
        out.write(line + "\n")
        out.flush()

    def _interrupt(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C / kill: stop quietly, exit 0
        with contextlib.suppress(ValueError):  # not in the main thread
            previous[sig] = signal.signal(sig, _interrupt)
    first_seen = FirstSeen()

    def only(value: bytes) -> bool:
        event = event_of(value)
        return (args.list_name is None or (event or {}).get("list") == args.list_name) and first_seen(event)

    try:
        follow(settings.broker, settings.output_topic, emit, from_beginning=args.from_beginning,
               max_events=args.max, idle_timeout=args.timeout, on_waiting=lambda msg: say(PROG, msg),
               client_kwargs=kafka_python_kwargs(settings), only=only)
    except BrokerError as exc:
        raise Fail(str(exc)) from None
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # Output piped to e.g. `head`: stop quietly.
        with contextlib.suppress(Exception):
            sys.stdout = open("/dev/null", "w")  # noqa: SIM115
        return 0
    finally:
        for sig, handler in previous.items():
            with contextlib.suppress(Exception):
                signal.signal(sig, handler)
    return 0
