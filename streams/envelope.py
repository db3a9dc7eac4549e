"""The messages between stages: one envelope per destination partition per batch, split by bytes.

Faust pays a fixed price for every message a stream hands an agent, so the
stages speak in envelopes: `{"items": [fact, ...], "t0": publish time, "as_of": clock}`,
each holding all the facts of a batch for one partition. An envelope is cut
when its JSON would pass `ENVELOPE_BYTES`, far below a producer's 1 MiB request
limit, so a report with hundreds of suspects and victims (whose facts fan out
to megabytes) travels as several envelopes instead of failing the batch. A
destination's envelopes go to one partition from one producer, in order; its
clock travels in the last one.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional

import orjson

#: The most bytes of facts an envelope holds (a single fact larger than this travels alone).
ENVELOPE_BYTES = 256 * 1024


class Record(NamedTuple):
    """One message a stage sends: to the topic of `role`, a partition (None: the key decides), key, value."""

    role: str
    partition: Optional[int]
    key: Optional[bytes]
    value: bytes


class Outbox:
    """A batch's outgoing messages: facts grouped by (role, partition), and records sent as they are."""

    def __init__(self) -> None:
        self._items: dict = {}  # (role, partition) -> [encoded fact, ...]
        self._clock: dict = {}  # (role, partition) -> as_of
        self._t0: dict = {}  # (role, partition) -> newest publish time of its facts
        self.singles: list = []  # Records sent as they are, before the envelopes

    def add(self, role: str, partition: int, fact: Any, t0: float = 0.0) -> None:
        dest = (role, partition)
        self._items.setdefault(dest, []).append(orjson.dumps(fact))
        if t0 > self._t0.get(dest, 0.0):
            self._t0[dest] = t0

    def clock(self, role: str, partition: int, as_of: int) -> None:
        dest = (role, partition)
        if as_of > self._clock.get(dest, 0):
            self._clock[dest] = as_of

    def send(self, role: str, key: Optional[bytes], value: bytes, partition: Optional[int] = None) -> None:
        self.singles.append(Record(role, partition, key, value))

    def records(self) -> list:
        """The singles, then each destination's envelopes in order."""
        out = list(self.singles)
        for dest in sorted(set(self._items) | set(self._clock)):
            role, partition = dest
            for value in _envelopes(self._items.get(dest, []), self._t0.get(dest, 0.0), self._clock.get(dest)):
                out.append(Record(role, partition, None, value))
        return out


def _envelopes(items: list, t0: float, as_of: Optional[int]) -> list:
    """The encoded facts cut into envelopes of at most ENVELOPE_BYTES of facts; the clock in the last."""
    chunks: list = []
    chunk: list = []
    size = 0
    for item in items:
        if chunk and size + len(item) > ENVELOPE_BYTES:
            chunks.append(chunk)
            chunk, size = [], 0
        chunk.append(item)
        size += len(item) + 1
    chunks.append(chunk)
    tail = b',"t0":' + orjson.dumps(t0)
    out = [b'{"items":[' + b",".join(c) + b"]" + tail + b"}" for c in chunks[:-1]]
    last = b'{"items":[' + b",".join(chunks[-1]) + b"]" + tail
    if as_of is not None:
        last += b',"as_of":' + orjson.dumps(as_of)
    out.append(last + b"}")
    return out


class Envelope(NamedTuple):
    items: list
    t0: float
    as_of: Optional[int]


def open_envelope(value: bytes) -> Envelope:
    body = orjson.loads(value)
    return Envelope(body["items"], body.get("t0", 0.0), body.get("as_of"))
