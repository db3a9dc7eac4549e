"""Did the broker lose its data? Compare the broker's epoch with the one the local state belongs to.

The local tansu keeps topics in memory: restarted, it has no changelogs and no
committed offsets, while the worker's RocksDB still holds state and offsets
that point into topics that no longer exist. On its first start against a
broker the worker writes a random epoch id to the one-record topic
`harmrank-epoch` and into its data directory; at every later start it compares
the two, and if the broker's is gone or different, it says so and starts clean.

The epoch also names the layout of the state (`STATE_LAYOUT`: the shapes of the
values in the stages' tables). A broker whose changelogs hold another layout
cannot be read by this version: the worker refuses to start and says how to
begin again, rather than misread state. (An epoch record with no layout is
layout 1: a register without one key per suspect, a ledger record without its
running sums.)
"""
from __future__ import annotations

import logging
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Mapping, Optional

log = logging.getLogger("harmrank")

EPOCH_TOPIC = "harmrank-epoch"
EPOCH_FILE = "broker-epoch"
#: The layout of the values in the stages' tables; bumped whenever a change makes old state unreadable.
STATE_LAYOUT = 3


class LayoutMismatch(RuntimeError):
    """The broker holds harmrank state of a layout this version cannot read."""


def _format(epoch: str) -> str:
    return f"{epoch} layout={STATE_LAYOUT}"


def _parse(text: Optional[str]) -> tuple[Optional[str], int]:
    """(epoch id, layout) of an epoch record or file; a record without a layout is layout 1."""
    if text is None:
        return None, STATE_LAYOUT
    epoch, _, rest = text.strip().partition(" ")
    layout = 1
    if rest.startswith("layout="):
        try:
            layout = int(rest[len("layout="):])
        except ValueError:
            layout = 0
    return epoch, layout

def _state_dirs(data_dir: Path) -> list:
    """What Faust keeps under the data directory: `v<version>/` (tables with their offsets)."""
    return [p for p in data_dir.glob("v*") if p.is_dir()]


def _read_broker_epoch(servers: list[str], timeout: float = 3.0, **client_kwargs: Any) -> Optional[str]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False, group_id=None,
                             consumer_timeout_ms=int(timeout * 1000), **client_kwargs)
    try:
        if EPOCH_TOPIC not in consumer.topics():
            return None
        tp = TopicPartition(EPOCH_TOPIC, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        epoch = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=300)
            records = batch.get(tp, [])
            if records:
                epoch = records[-1].value.decode()
            high = consumer.highwater(tp)  # from the fetch itself: the local broker's ListOffsets can lag
            if high is not None and consumer.position(tp) >= high:
                break  # read to the end: no empty poll to wait for
            if not records and epoch is not None:
                break
        return epoch
    finally:
        consumer.close()


def _write_broker_epoch(servers: list[str], epoch: str, **client_kwargs: Any) -> None:
    from kafka import KafkaProducer

    from .kafka_admin import ensure_topics

    ensure_topics(servers, {EPOCH_TOPIC: 1}, **client_kwargs)
    producer = KafkaProducer(bootstrap_servers=servers, acks="all", **client_kwargs)
    try:
        producer.send(EPOCH_TOPIC, value=epoch.encode(), partition=0).get(timeout=10)
    finally:
        producer.close()


def has_state(data_dir: Path) -> bool:
    return bool(_state_dirs(data_dir))


def wipe_state(data_dir: Path) -> None:
    for d in _state_dirs(data_dir):
        shutil.rmtree(d, ignore_errors=True)


def reconcile(servers: list[str], data_dir: str, client_kwargs: Optional[Mapping[str, Any]] = None) -> str:
    """Make the local state agree with the broker; returns what was found, for the log.

    `client_kwargs` are kafka-python's security arguments (agents.kafka_clients).
    Raises LayoutMismatch when the broker's state is of another layout.
    """
    client_kwargs = dict(client_kwargs or {})
    path = Path(data_dir)
    path.mkdir(parents=True, exist_ok=True)
    local_file = path / EPOCH_FILE
    local, local_layout = _parse(local_file.read_text() if local_file.exists() else None)
    remote, remote_layout = _parse(_read_broker_epoch(servers, **client_kwargs))
    if remote is None:
        note = "new broker"
        if has_state(path):
            note = ("the broker has lost harmrank's topics (a restarted in-memory broker?): "
                    "discarding the local state and starting clean")
            wipe_state(path)
        remote = uuid.uuid4().hex
        _write_broker_epoch(servers, _format(remote), **client_kwargs)
    elif remote_layout != STATE_LAYOUT:
        raise LayoutMismatch(
            f"the broker holds harmrank state of layout {remote_layout}, written by another version of "
            f"harmrank; this one keeps layout {STATE_LAYOUT} and cannot read it. To start again: use a fresh "
            f"broker, or delete the harmrank-* topics and the consumer groups harmrank and harmrank-intake "
            f"(the ranking is then rebuilt from crime-reports)")
    elif local != remote or local_layout != STATE_LAYOUT:
        note = "state of another broker found: discarding it and starting clean" if has_state(path) else "first start"
        wipe_state(path)
    else:
        note = "resuming from local state"
    local_file.write_text(_format(remote) + "\n")
    return note
