"""Work round tansu's wrong end offsets, for Faust table recovery.

The local broker (tansu 0.6, memory engine) answers ListOffsets(LATEST) with
"base offset of the last record batch + 1" instead of the log end offset.  A
producer that batches (aiokafka does: Faust's changelog writes go out many
records per batch) therefore makes every end offset too small.  Faust uses the
end offset as the changelog *highwater* during recovery
(``Recovery._build_highwaters`` -> ``Consumer.highwaters`` ->
``AIOKafkaConsumerThread._highwaters`` -> ``AIOKafkaConsumer.end_offsets``), so
without a fix:

* a restart with the local RocksDB kept crashes with ``ConsistencyError: The
  persisted offset ... is higher than the last offset in that topic``;
* a restart after the local RocksDB was lost stops reading the changelog early
  and silently restores wrong (stale) table values.

The Fetch response's high watermark *is* right.  This module refines each end
offset from it: a throw-away consumer assigns the partitions, seeks each to
``max(approx - 1, 0)`` (the base offset of the last batch, so the fetch answers
at once with data) and reads ``highwater(tp)``.

It is for the local tansu only (`agents.compat.install` decides, with
`is_local_tansu`); ``HARMRANK_TANSU_FIX=1`` / ``=0`` forces that either way.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import time
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from aiokafka import AIOKafkaConsumer, TopicPartition

__all__ = ["ENV_VAR", "is_local_tansu", "install_tansu_end_offset_fix", "uninstall", "is_installed",
           "refine_end_offsets"]

log = logging.getLogger(__name__)

ENV_VAR = "HARMRANK_TANSU_FIX"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

_original_highwaters: Any = None  # AIOKafkaConsumerThread._highwaters before patching
_client_kwargs: dict = {}  # the security settings of the refining consumer (agents.kafka_clients)


# --------------------------------------------------------------------------- heuristic
def _hosts(bootstrap_servers: Union[str, Iterable[Any]]) -> list[str]:
    """Host names out of ``kafka://h:p;h2:p``, ``"h:p,h2:p"``, lists, yarl URLs."""
    items: list[str] = []
    if isinstance(bootstrap_servers, str):
        raw = [bootstrap_servers]
    else:
        raw = [str(x) for x in bootstrap_servers]
    for chunk in raw:
        for part in chunk.replace(";", ",").split(","):
            part = part.strip()
            if "://" in part:
                part = part.split("://", 1)[1]
            part = part.split("/", 1)[0]
            if not part:
                continue
            if part.startswith("["):  # [::1]:9092
                host = part[1:].split("]", 1)[0]
            elif part.count(":") == 1:
                host = part.split(":", 1)[0]
            else:  # bare host, or bare IPv6 without port
                host = part
            items.append(host)
    return items


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_local_tansu(
    bootstrap_servers: Union[str, Iterable[Any]],
    environ: Optional[Mapping[str, str]] = None,
) -> bool:
    """Should the end-offset fix be on for this broker?

    ``HARMRANK_TANSU_FIX`` = 1/0 (true/false, yes/no, on/off) decides if set;
    otherwise True when every bootstrap host is a loopback address (the local
    tansu is the only broker this project runs on loopback).
    """
    env = os.environ if environ is None else environ
    forced = env.get(ENV_VAR, "").strip().lower()
    if forced in _TRUE:
        return True
    if forced in _FALSE:
        return False
    if forced:
        raise ValueError(f"{ENV_VAR} must be 1 or 0, not {env[ENV_VAR]!r}")
    hosts = _hosts(bootstrap_servers)
    return bool(hosts) and all(_is_loopback(h) for h in hosts)


# --------------------------------------------------------------------------- the fix
async def refine_end_offsets(
    bootstrap_servers: Union[str, Sequence[str]],
    approx: Mapping[TopicPartition, Optional[int]],
    *,
    timeout: float = 10.0,
    **consumer_kwargs: Any,
) -> dict[TopicPartition, Optional[int]]:
    """Return the true log end offsets, refined from Fetch high watermarks.

    ``approx`` are ListOffsets(LATEST) answers (never larger than the truth on
    tansu).  A partition whose high watermark cannot be read within ``timeout``
    keeps its approximate value (and a warning is logged).
    """
    result: dict[TopicPartition, Optional[int]] = dict(approx)
    tps = [TopicPartition(tp.topic, tp.partition) for tp, v in approx.items() if v is not None]
    if not tps:
        return result
    kwargs: dict[str, Any] = dict(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
        request_timeout_ms=int(max(timeout, 1.0) * 1000) + 5000,
    )
    kwargs.update(consumer_kwargs)
    consumer = AIOKafkaConsumer(**kwargs)
    await consumer.start()
    try:
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, max(int(approx[tp]) - 1, 0))  # type: ignore[arg-type]
        deadline = time.monotonic() + timeout
        pending = set(tps)
        while pending and time.monotonic() < deadline:
            await consumer.getmany(*pending, timeout_ms=200, max_records=1)
            for tp in list(pending):
                hw = consumer.highwater(tp)
                if hw is not None:
                    pending.discard(tp)
                    result[tp] = max(int(hw), int(approx[tp]))  # type: ignore[arg-type]
        if pending:
            log.warning(
                "tansu end-offset fix: no high watermark within %.1fs for %s; "
                "keeping ListOffsets values", timeout, sorted(pending)
            )
    finally:
        await consumer.stop()
    changed = {tp: (approx[tp], result[tp]) for tp in tps if result[tp] != approx[tp]}
    if changed:
        log.info("tansu end-offset fix: refined %d end offset(s): %s", len(changed), changed)
    return result


async def _patched_highwaters(self: Any, partitions: Any) -> Mapping[Any, int]:
    """Replacement for ``AIOKafkaConsumerThread._highwaters`` (runs in the consumer thread)."""
    approx: Mapping[Any, int] = await _original_highwaters(self, partitions)
    if self.consumer.in_transaction:  # last_stable_offset path: not ListOffsets
        return approx
    consumer = self._ensure_consumer()
    bootstrap = getattr(consumer._client, "_bootstrap_servers", None)
    timeout = float(getattr(self.app.conf, "broker_request_timeout", 90.0)) / 3
    refined = await refine_end_offsets(bootstrap, dict(approx), timeout=min(timeout, 30.0), **_client_kwargs)
    # keep Faust's own TP objects as keys
    return {tp: refined.get(TopicPartition(tp.topic, tp.partition), v) for tp, v in approx.items()}


def install_tansu_end_offset_fix(client_kwargs: Optional[Mapping[str, Any]] = None) -> bool:
    """Patch Faust's aiokafka consumer so recovery sees true end offsets.

    ``client_kwargs`` (TLS / SASL) go to the consumer that reads the high
    watermarks. Idempotent; returns True if it patched now, False if already
    installed. Process-wide (class level); call before the worker starts.
    """
    global _original_highwaters, _client_kwargs
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    _client_kwargs = dict(client_kwargs or {})
    if _original_highwaters is not None:
        return False
    _original_highwaters = AIOKafkaConsumerThread._highwaters
    AIOKafkaConsumerThread._highwaters = _patched_highwaters  # type: ignore[method-assign]
    log.info("tansu end-offset fix installed")
    return True


def uninstall() -> None:
    """Undo :func:`install_tansu_end_offset_fix` (for tests)."""
    global _original_highwaters, _client_kwargs
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    if _original_highwaters is not None:
        AIOKafkaConsumerThread._highwaters = _original_highwaters  # type: ignore[method-assign]
        _original_highwaters = None
        _client_kwargs = {}


def is_installed() -> bool:
    return _original_highwaters is not None
