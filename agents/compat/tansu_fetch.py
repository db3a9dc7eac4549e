"""Work round tansu's fetch wait, for latency: a fetch is held for its whole max wait.

A Kafka broker answers a fetch as soon as `fetch.min.bytes` (1) of new data is
there, and holds an empty one for at most `fetch.max.wait.ms`. The local broker
(tansu 0.6, memory engine) holds every fetch that finds nothing for the whole
wait, even when records arrive meanwhile, so a record produced into an idle
partition waits out the fetch wait. Faust hard-codes 1,500 ms in its worker
consumer, and every stage hop of the worker is a fetch, so each hop could take
up to 1.5 s.

`install_fetch_wait(ms)` makes Faust's worker consumer use a short wait. The
price is polling: an idle worker asks for data `1000 / ms` times a second,
which costs CPU and slows a bulk replay (docs/PERFORMANCE.md). The wait trades
latency (each hop waits up to `ms`) for CPU; `HARMRANK_TANSU_FETCH_WAIT_MS`
sets it (100 suits replaying a large backlog). It is used only with the local
tansu: a real Kafka cluster answers as soon as data arrives, and Faust's wait stays.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Optional

log = logging.getLogger(__name__)

#: The fetch wait of the worker's consumer against the local tansu: the most a hop waits for data.
WORKER_FETCH_WAIT_MS = 10

ENV_VAR = "HARMRANK_TANSU_FETCH_WAIT_MS"

_original_create: Any = None  # AIOKafkaConsumerThread._create_worker_consumer before patching
_wait_ms: int = WORKER_FETCH_WAIT_MS


def wait_from_env(environ: Optional[Mapping[str, str]] = None) -> int:
    """The fetch wait in ms from `HARMRANK_TANSU_FETCH_WAIT_MS`, else the default; ValueError names the variable."""
    env = os.environ if environ is None else environ
    raw = env.get(ENV_VAR, "").strip()
    if not raw:
        return WORKER_FETCH_WAIT_MS
    try:
        ms = int(raw)
    except ValueError:
        ms = 0
    if not 1 <= ms <= 60_000:
        raise ValueError(f"{ENV_VAR} must be a whole number of milliseconds from 1 to 60000, got {raw!r}")
    return ms


def _patched_create_worker_consumer(self: Any, transport: Any) -> Any:
    consumer = _original_create(self, transport)
    consumer._fetch_max_wait_ms = _wait_ms  # read by AIOKafkaConsumer.start() when it makes its Fetcher
    return consumer


def install_fetch_wait(ms: int = WORKER_FETCH_WAIT_MS) -> bool:
    """Have Faust's worker consumer wait at most `ms` for data; returns False if already installed.

    Process-wide (class level); call before the worker starts.
    """
    global _original_create, _wait_ms
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    if ms < 1:
        raise ValueError("the fetch wait must be at least 1 ms")
    _wait_ms = ms
    if _original_create is not None:
        return False
    _original_create = AIOKafkaConsumerThread._create_worker_consumer
    AIOKafkaConsumerThread._create_worker_consumer = _patched_create_worker_consumer  # type: ignore[method-assign]
    log.info("local tansu broker: fetch wait %d ms (it holds a fetch for its whole wait)", ms)
    return True


def uninstall() -> None:
    """Undo :func:`install_fetch_wait` (for tests)."""
    global _original_create
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    if _original_create is not None:
        AIOKafkaConsumerThread._create_worker_consumer = _original_create  # type: ignore[method-assign]
        _original_create = None


def current_wait_ms() -> int:
    """The wait set by the last :func:`install_fetch_wait` (the intake's batch reader uses it too)."""
    return _wait_ms


def is_installed() -> bool:
    return _original_create is not None
