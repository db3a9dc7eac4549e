"""streams.envelope.Outbox: how a batch's facts are cut into envelopes, and what holding them costs."""
from __future__ import annotations

import json
import random
import tracemalloc

import pytest

from streams.envelope import ENVELOPE_BYTES, Outbox, open_envelope


def expected_envelopes(facts: list, t0: float, as_of) -> list:
    """The cut, written out plainly: facts in order, a new envelope when the next would pass ENVELOPE_BYTES of
    facts (commas counted), a fact larger than that alone; the clock in the last envelope."""
    chunks, chunk, size = [], [], 0  # size: the bytes of the chunk's facts joined by commas
    for fact in facts:
        n = len(json.dumps(fact, separators=(",", ":")).encode())
        if chunk and size + 1 + n > ENVELOPE_BYTES:
            chunks.append(chunk)
            chunk, size = [], 0
        size += n + (1 if chunk else 0)
        chunk.append(fact)
    chunks.append(chunk)
    return [(c, t0, as_of if i == len(chunks) - 1 else None) for i, c in enumerate(chunks)]


@pytest.mark.parametrize("seed", range(12))
def test_facts_are_cut_into_envelopes_by_bytes_in_order(seed):
    rng = random.Random(seed)
    outbox, facts = Outbox(), {}
    for _ in range(rng.randint(0, 400)):
        dest = ("ledger", rng.randint(0, 2))
        fact = {"s": "x" * rng.choice([1, 50, 3000, 60_000, ENVELOPE_BYTES, 2 * ENVELOPE_BYTES]), "n": rng.randint(0, 9)}
        outbox.add(*dest, fact, t0=1.5)
        facts.setdefault(dest, []).append(fact)
    clocked = ("ledger", 3)  # a destination with a clock and no facts gets one envelope with the clock
    outbox.clock(*clocked, 17)
    got: dict = {}
    for record in outbox.records():
        env = open_envelope(record.value)
        got.setdefault((record.role, record.partition), []).append((env.items, env.t0, env.as_of))
    assert got[clocked] == [([], 0.0, 17)]
    for dest, theirs in facts.items():
        assert got[dest] == expected_envelopes(theirs, 1.5, None)


def test_holding_a_batch_of_facts_costs_their_size_not_a_buffer_each():
    """orjson hands each result over in a buffer of at least 4 KiB: the outbox must not keep them one by one."""
    facts = [{"suspect": f"S{i}", "crime_ref": f"CR-{i}", "why": "reported", "at": 1767225600000000 + i}
             for i in range(20_000)]
    encoded = sum(len(json.dumps(f, separators=(",", ":"))) + 1 for f in facts)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        outbox = Outbox()
        for i, fact in enumerate(facts):
            outbox.add("ledger", i % 4, fact)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 2 * encoded  # the facts' bytes and growth room; 4 KiB a fact would be 80 MiB
    assert sum(len(open_envelope(r.value).items) for r in outbox.records()) == len(facts)
