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
