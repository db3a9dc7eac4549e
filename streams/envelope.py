"""The messages between stages: one envelope per destination partition per batch, split by bytes.

Faust pays a fixed price for every message a stream hands an agent, so the
stages speak in envelopes: `{"items": [fact, ...], "t0": publish time, "as_of": clock}`,
each holding all the facts of a batch for one partition. An envelope is cut
when its JSON would pass `ENVELOPE_BYTES`, far below a producer's 1 MiB request
limit, so a report with hundreds of suspects and victims (whose facts fan out
to megabytes) travels as several envelopes instead of failing the batch. A
destination's envelopes go to one partition from one producer, in order; its
clock travels in the last one.

A fact is appended to its envelope's body as soon as it is encoded, never kept as
bytes of its own: orjson hands over each result in a buffer of at least 4 KiB, so
the tens of thousands of facts of a batch, each kept alone, would hold 4 KiB apiece
until the batch is sent (and more of them as more suspects are touched a batch).
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
        self._bodies: dict = {}  # (role, partition) -> [envelope body: encoded facts joined by commas, ...]
        self._clock: dict = {}  # (role, partition) -> as_of
        self._t0: dict = {}  # (role, partition) -> newest publish time of its facts
        self.singles: list = []  # Records sent as they are, before the envelopes

    def add(self, role: str, partition: int, fact: Any, t0: float = 0.0) -> None:
        dest = (role, partition)
        item = orjson.dumps(fact)
        bodies = self._bodies.get(dest)
        if bodies is None:
            bodies = self._bodies[dest] = [bytearray()]
        body = bodies[-1]
        if body and len(body) + 1 + len(item) > ENVELOPE_BYTES:  # a fact larger than that travels alone
            body = bytearray()
            bodies.append(body)
        if body:
            body += b","
        body += item
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
        for dest in sorted(set(self._bodies) | set(self._clock)):
            role, partition = dest
            for value in _envelopes(self._bodies.get(dest, [b""]), self._t0.get(dest, 0.0), self._clock.get(dest)):
                out.append(Record(role, partition, None, value))
        return out


def _envelopes(bodies: list, t0: float, as_of: Optional[int]) -> list:
    """An envelope for each body (facts joined by commas), the clock in the last."""
    tail = b',"t0":' + orjson.dumps(t0)
    out = [b'{"items":[' + body + b"]" + tail + b"}" for body in bodies[:-1]]
    last = b'{"items":[' + bodies[-1] + b"]" + tail
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
