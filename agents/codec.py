"""The JSON of the worker's own bytes: its store values and the envelopes between its stages.

The same JSON as `json.dumps(value, separators=(",", ":"))` (byte for byte for
the values the stages write: lists, dicts with str keys, str, int, bool, None,
floats), written and read by orjson, which does it 10-20 times faster; JSON
encoding was a quarter of the worker's CPU. Input events are still parsed by
`schemas.validate` with the standard library, whose hooks catch what orjson
accepts silently (duplicate keys).
"""
from __future__ import annotations

import orjson

dumps = orjson.dumps  # value -> bytes
loads = orjson.loads  # bytes -> value
