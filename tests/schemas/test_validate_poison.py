"""`validate` on poison input (SPEC §9): the widest valid report, huge, deep and random messages.

Whatever arrives gets an answer, and the answer names the first rule broken: size before
anything is decoded, then UTF-8, then JSON (nesting too deep is ``bad_json``), then fields.
"""
from __future__ import annotations

import json
import random

import pytest

from schemas.events import ReportRecorded
from schemas.harm_table import HarmEntry, HarmTable
from schemas.validate import MAX_ID_CHARS, MAX_MESSAGE_BYTES, REJECTION_CODES, Rejected, validate
from schemas.validate import _accept_fast, _validate_every_rule  # the fast path and the reference

TABLE = HarmTable([HarmEntry("019/08", "Rape", 182500, True)], source="test")
AT = "2025-03-01T10:00:00+00:00"
DEPTH = 150_000
REPORT = {"event_id": "e1", "type": "report.recorded", "at": AT, "crime_ref": "C1", "offence_code": "019/08",
          "suspects": [], "victims": []}


def widest_report(people: int = 700) -> bytes:
    """A valid report naming ``people`` suspects and ``people`` victims, its ids as long as 64 KiB allows."""
    def raw(width: int) -> bytes:
        suspects = [f"S{i:0{width - 1}d}" for i in range(people)]
        victims = [{"id": f"V{i:0{width - 1}d}", "sex": "F"} for i in range(people)]
        return json.dumps({**REPORT, "suspects": suspects, "victims": victims}, separators=(",", ":")).encode()

    width = 4
    while width < MAX_ID_CHARS and len(raw(width + 1)) <= MAX_MESSAGE_BYTES:
        width += 1
    return raw(width)


def rejection(raw, **kw) -> Rejected:
    result = validate(raw, TABLE, **kw)
    assert isinstance(result, Rejected), result
    assert result.code in REJECTION_CODES and result.detail and "unexpected" not in result.detail, result
    return result


def test_the_widest_valid_report_is_accepted_by_both_paths():
    raw = widest_report()
    assert MAX_MESSAGE_BYTES - 1400 < len(raw) <= MAX_MESSAGE_BYTES
    event = validate(raw, TABLE)
    assert isinstance(event, ReportRecorded) and len(event.suspects) == len(event.victims) == 700
    assert _accept_fast(raw, TABLE, None) == event == _validate_every_rule(raw, TABLE, None, MAX_MESSAGE_BYTES)


NESTINGS = {
    "arrays": b"[" * DEPTH + b"]" * DEPTH,
    "objects": b'{"a":' * DEPTH + b"1" + b"}" * DEPTH,
    "unclosed": b"[" * DEPTH,
    "mixed": b'[{"a":' * (DEPTH // 2) + b"0" + b"}]" * (DEPTH // 2),
}


@pytest.mark.parametrize("name", sorted(NESTINGS))
def test_150000_levels_are_oversized_before_they_are_parsed(name):
    raw = NESTINGS[name]
    r = rejection(raw)
    assert (r.code, r.detail) == ("oversized", f"{len(raw)} bytes, more than {MAX_MESSAGE_BYTES}")


@pytest.mark.parametrize("name", sorted(NESTINGS))
def test_150000_levels_allowed_in_are_bad_json_nested_too_deeply(name):
    raw = NESTINGS[name]
    r = rejection(raw, max_bytes=len(raw))
    assert (r.code, r.detail) == ("bad_json", "nested too deeply")


def test_nesting_as_deep_as_64_kib_allows_is_bad_json():
    for raw in (b"[" * MAX_MESSAGE_BYTES, b'{"a":' * (MAX_MESSAGE_BYTES // 6) + b"1" + b"}" * (MAX_MESSAGE_BYTES // 6)):
        assert len(raw) <= MAX_MESSAGE_BYTES
        assert rejection(raw).reason == "bad_json: nested too deeply"


@pytest.mark.parametrize("depth", [100, 900, 5000])
@pytest.mark.parametrize("field,reason", [
    ("type", "bad_field: type must be a string, not array"),
    ("event_id", "bad_field: event_id must be a string, not array"),
    ("suspects", None), ("victims", None), ("vawg", "bad_field: vawg must be true or false, not array"),
])
def test_nesting_inside_a_field_names_the_field(depth, field, reason):
    """Within the parser's reach the field is named; deeper, the JSON is refused as too deep."""
    nested = "[" * depth + "]" * depth
    text = json.dumps({**REPORT, field: "@"}).replace('"@"', nested)
    r = rejection(text.encode())
    if depth > 1000:
        assert r.reason == "bad_json: nested too deeply"
    elif reason is not None:
        assert r.reason == reason
    else:
        assert r.reason.startswith(f"bad_field: {field}[0] must be"), r


def test_nested_victim_sex_is_named():
    nested = "[" * 900 + "]" * 900
    text = json.dumps({**REPORT, "victims": [{"id": "V1", "sex": "@"}]}).replace('"@"', nested)
    assert rejection(text.encode()).reason.startswith("bad_field: victims[0].sex must be one of F, M, U, not [[[")


def huge_messages() -> dict:
    return {
        "880 KB of garbage": b"garbage! {not json ]" * 44_000,
        "840 KB of \\u0001 escapes": b'{"event_id":"' + b"\\u0001" * 140_000 + b'"}',
        "600 KB of random bytes": random.Random(600).randbytes(600_000),
        "10 MB of spaces": b" " * 10_000_000,
    }


@pytest.mark.parametrize("name", sorted(huge_messages()))
@pytest.mark.parametrize("form", [bytes, bytearray, memoryview, str])
def test_a_huge_message_is_oversized_whatever_its_bytes(name, form):
    raw = huge_messages()[name]
    message = raw.decode("latin-1") if form is str else form(raw)
    size = len(message.encode("utf-8")) if form is str else len(raw)
    assert rejection(message).reason == f"oversized: {size} bytes, more than {MAX_MESSAGE_BYTES}"


def test_huge_messages_let_in_get_the_reason_of_the_rule_they_break():
    messages = huge_messages()
    random_bytes = messages["600 KB of random bytes"]
    try:
        random_bytes.decode("utf-8")
    except UnicodeDecodeError as e:
        first_bad = e.start
    assert rejection(random_bytes, max_bytes=10**7).reason == f"not_utf8: invalid UTF-8 at byte {first_bad}"
    assert rejection(messages["880 KB of garbage"], max_bytes=10**7).code == "bad_json"
    assert rejection(messages["10 MB of spaces"], max_bytes=10**7).code == "bad_json"
    escapes = json.dumps({**REPORT, "event_id": "\x01" * 140_000}).encode()
    assert b"\\u0001" * 140_000 in escapes
    assert rejection(escapes, max_bytes=10**7).reason == \
        f"bad_field: event_id must be 1..{MAX_ID_CHARS} characters, got 140000"


def test_control_characters_are_counted_as_characters_not_escapes():
    """An id of 128 U+0001 is 768 bytes of escapes and valid; 129 is one character too many."""
    ok = json.dumps({**REPORT, "crime_ref": "\x01" * MAX_ID_CHARS}).encode()
    assert isinstance(validate(ok, TABLE), ReportRecorded)
    long = json.dumps({**REPORT, "crime_ref": "\x01" * (MAX_ID_CHARS + 1)}).encode()
    assert rejection(long).reason == f"bad_field: crime_ref must be 1..{MAX_ID_CHARS} characters, got 129"
