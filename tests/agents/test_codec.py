"""agents.codec writes the same JSON the standard library writes, for the values the stages store and send."""
from __future__ import annotations

import json

import pytest

from agents import codec

VALUES = [
    ["S1", "CR1", ["008/06", 2500, True, 1_700_000_000_123_456, ["V1", "V2"]], "added", "e-1", 1_700_000_000_000_000],
    {"CR1": ["019/08", 182500, True, 1, []], "CR2": ["105/01", 0, False, 2, ["V9"]]},
    {"items": [{"ev": ["report.cancelled", "e2", 5, "CR9"], "raw": "{\"a\": \"\\u00e9\"}", "src": ["t", 0, 7]}],
     "t0": 1796174644.736552, "as_of": 1796174644736552},
    ["Ünïcödé ✓ 𝄞", None, False, 0, -1, 12.5, 2419.0, 0.01],
    [[]], {}, "", 2 ** 62,
]


@pytest.mark.parametrize("value", VALUES)
def test_same_bytes_as_the_standard_library(value):
    assert codec.dumps(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize("value", VALUES)
def test_round_trip(value):
    assert codec.loads(codec.dumps(value)) == value
    assert codec.loads(json.dumps(value).encode()) == value  # reads what the standard library wrote (older state)


def test_values_kept_cost_their_size():
    """A batch keeps every value it writes until the write is sent: each must hold its own bytes, not the
    4 KiB buffer orjson hands its result over in."""
    import tracemalloc

    value = VALUES[0]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [codec.dumps(value) for _ in range(10_000)]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 10_000 * (len(kept[0]) + 100)  # bytes object header and list slot; 4 KiB each would be 40 MB
