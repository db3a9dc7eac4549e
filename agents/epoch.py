"""Did the broker lose its data? Compare the broker's epoch with the one the local state belongs to.

The local tansu keeps topics in memory: restarted, it has no changelogs and no
committed offsets, while the worker's RocksDB still holds state and offsets
that point into topics that no longer exist. On its first start against a
broker the worker writes a random epoch id to the one-record topic
`harmrank-epoch` and into its data directory; at every later start it compares
the two, and if the broker's is gone or different, it says so and starts clean.
"""
from __future__ import annotations

import logging
import shutil
import time
import uuid
from pathlib import Path
from typing import Optional

log = logging.getLogger("harmrank")

EPOCH_TOPIC = "harmrank-epoch"
EPOCH_FILE = "broker-epoch"

def _state_dirs(data_dir: Path) -> list:
    """What Faust keeps under the data directory: `v<version>/` (tables with their offsets)."""
    return [p for p in data_dir.glob("v*") if p.is_dir()]


def _read_broker_epoch(servers: list[str], timeout: float = 3.0) -> Optional[str]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False, group_id=None,
                             consumer_timeout_ms=int(timeout * 1000))
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
            elif epoch is not None:
                break
        return epoch
    finally:
        consumer.close()


def _write_broker_epoch(servers: list[str], epoch: str) -> None:
    from kafka import KafkaProducer

    from .broker import ensure_topics

    ensure_topics(servers, {EPOCH_TOPIC: 1})
    producer = KafkaProducer(bootstrap_servers=servers, acks="all")
    try:
        producer.send(EPOCH_TOPIC, value=epoch.encode(), partition=0).get(timeout=10)
    finally:
        producer.close()


def has_state(data_dir: Path) -> bool:
    return bool(_state_dirs(data_dir))


def wipe_state(data_dir: Path) -> None:
    for d in _state_dirs(data_dir):
        shutil.rmtree(d, ignore_errors=True)


def reconcile(servers: list[str], data_dir: str) -> str:
    """Make the local state agree with the broker; returns what was found, for the log."""
    path = Path(data_dir)
    path.mkdir(parents=True, exist_ok=True)
    local_file = path / EPOCH_FILE
    local = local_file.read_text().strip() if local_file.exists() else None
    remote = _read_broker_epoch(servers)
    if remote is None:
        note = "new broker"
        if has_state(path):
            note = ("the broker has lost harmrank's topics (a restarted in-memory broker?): "
                    "discarding the local state and starting clean")
            wipe_state(path)
        remote = uuid.uuid4().hex
        _write_broker_epoch(servers, remote)
    elif local != remote:
        note = "state of another broker found: discarding it and starting clean" if has_state(path) else "first start"
        wipe_state(path)
    else:
        note = "resuming from local state"
    local_file.write_text(remote + "\n")
    return note
