"""The JSON of the worker's own bytes: its store values and the envelopes between its stages.

The same JSON as `json.dumps(value, separators=(",", ":"))` for the values the
stages write (lists, dicts with str keys, str, int, bool, None, floats): byte
for byte, except that text outside ASCII is written as UTF-8 rather than as
`\\u` escapes. Written and read by orjson, for speed (the standard library's
encoder costs a large share of the worker's CPU: docs/PERFORMANCE.md). State
written by the standard library reads back the same. Input events are parsed
by `schemas.validate`, whose fast path uses orjson too but checks for the
duplicate keys orjson accepts silently, and leaves every rejection to the
standard library's decoder.
"""
from __future__ import annotations

import orjson

from streams.store import encode_value

dumps = encode_value  # value -> bytes, copied to their own size (orjson's buffer is 4 KiB at least)
loads = orjson.loads  # bytes -> value
