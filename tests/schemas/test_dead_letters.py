"""Dead letters stay within what the broker accepts, whatever the payload (SPEC §3, §9)."""
from __future__ import annotations

import base64
import hashlib
import json
import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from schemas.dead_letters import DEAD_LETTER_MAX_BYTES, MAX_REASON_CHARS, PAYLOAD_HEAD_BYTES, dead_letter
from schemas.validate import Rejected
from schemas.validate import dead_letter as dead_letter_of_validate

HEAD = PAYLOAD_HEAD_BYTES
PRODUCER_LIMIT = 1024 * 1024  # a Kafka producer's default max.request.size
# A bounded letter: a head of control characters (six bytes each, escaped) and the longest reason.
LONGEST_LETTER = 6 * HEAD + 12 * MAX_REASON_CHARS + 512


def encoded(letter: dict) -> bytes:
    """What the worker sends: the standard encoder, ASCII escapes, compact separators."""
    return json.dumps(letter, separators=(",", ":")).encode()


def letter(raw, reason="bad_json: x") -> dict:
    return dead_letter(reason, "crime-reports", 2, 7, raw)


def check_bounded(d: dict, data: bytes) -> None:
    """``d`` is the bounded letter of ``data``: its head, and the digest and length of the whole."""
    assert d["payload_sha256"] == hashlib.sha256(data).hexdigest()
    assert d["payload_bytes"] == len(data)
    assert len(encoded(d)) <= LONGEST_LETTER < PRODUCER_LIMIT // 2
    assert (d["reason"], d["topic"], d["partition"], d["offset"]) == ("bad_json: x", "crime-reports", 2, 7)


def test_validate_re_exports_the_bounded_letter():
    assert dead_letter_of_validate is dead_letter


def test_a_letter_within_the_bound_keeps_the_whole_payload():
    raw = b"x" * (DEAD_LETTER_MAX_BYTES - 20_000)
    d = letter(raw)
    assert d == {"reason": "bad_json: x", "topic": "crime-reports", "partition": 2, "offset": 7,
                 "payload": raw.decode()}
    assert len(encoded(d)) <= DEAD_LETTER_MAX_BYTES


def test_the_bound_is_on_the_encoded_json():
    """The largest ASCII payload kept whole, and one byte more: the head and the digest."""
    sizes = [n for n in range(DEAD_LETTER_MAX_BYTES - 16_000, DEAD_LETTER_MAX_BYTES, 97)
             if "payload_sha256" not in letter(b"y" * n)]
    n = max(sizes)
    while "payload_sha256" not in letter(b"y" * (n + 1)):
        n += 1
    assert len(encoded(letter(b"y" * n))) <= DEAD_LETTER_MAX_BYTES
    check_bounded(letter(b"y" * (n + 1)), b"y" * (n + 1))


def test_880_kb_of_text_keeps_its_first_64_kib():
    raw = b"garbage! {not json ]" * 44_000
    d = letter(raw)
    check_bounded(d, raw)
    assert d["payload"] == raw[:HEAD].decode()


def test_escape_text_keeps_its_first_64_kib_as_text():
    raw = b'{"event_id":"' + b"\\u0001" * 140_000 + b'"}'
    d = letter(raw)
    check_bounded(d, raw)
    assert d["payload"] == raw[:HEAD].decode()


def test_control_characters_grow_six_times_and_are_bounded():
    """60 KB of U+0001 is 360 KB of JSON: over the bound though under 64 KiB; 840 KB likewise."""
    for size in (60_000, 840_000):
        raw = b"\x01" * size
        d = letter(raw)
        check_bounded(d, raw)
        assert d["payload"] == raw[:HEAD].decode()
    assert len(json.dumps("\x01" * 10_000)) == 60_002


def test_random_bytes_keep_the_base64_of_their_first_64_kib():
    raw = random.Random(600).randbytes(600_000)
    d = letter(raw)
    check_bounded(d, raw)
    assert base64.b64decode(d["payload"], validate=True) == raw[:HEAD]


@pytest.mark.parametrize("width", [2, 3, 4])
@pytest.mark.parametrize("shift", [0, 1, 2, 3])
def test_text_is_never_cut_inside_a_character(width, shift):
    char = {2: "é", 3: "€", 4: "😀"}[width]
    text = "a" * shift + char * (300_000 // width)
    raw = text.encode()
    d = letter(raw)
    check_bounded(d, raw)
    kept = d["payload"].encode()
    assert raw.startswith(kept) and HEAD - width < len(kept) <= HEAD
    assert d["payload"] == text[:len(d["payload"])] and "\ufffd" not in d["payload"]


def test_text_given_as_str_is_its_utf8_bytes():
    text = "é" * 200_000
    assert letter(text) == letter(text.encode())


def test_a_lone_surrogate_is_not_text_so_its_bytes_go_as_base64():
    text = "\ud800" + "x" * 300_000
    data = text.encode("utf-8", "surrogatepass")
    d = letter(text)
    check_bounded(d, data)
    assert base64.b64decode(d["payload"]) == data[:HEAD]


def test_reason_from_rejected_and_bounded():
    d = dead_letter(Rejected("oversized", "900000 bytes, more than 65536"), "t", 0, 0, b"{}")
    assert d["reason"] == "oversized: 900000 bytes, more than 65536"
    d = dead_letter("unknown_crime_ref: " + "\U0001F600" * 5000, "t", 0, 0, b"\x01" * 900_000)
    assert len(d["reason"]) == MAX_REASON_CHARS and d["reason"].startswith("unknown_crime_ref: ")
    assert len(encoded(d)) <= LONGEST_LETTER


def test_no_payload_is_an_empty_text():
    assert letter(None)["payload"] == ""


@st.composite
def payloads(draw):
    """Payloads of 0..900 KB: repeats of a short random piece of bytes or text."""
    piece = draw(st.binary(min_size=1, max_size=40) | st.text(min_size=1, max_size=20).map(
        lambda t: t.encode("utf-8", "surrogatepass")))
    count = draw(st.integers(min_value=0, max_value=900_000 // len(piece)))
    return piece * count + draw(st.binary(max_size=3))


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(payloads())
def test_every_letter_fits_and_says_what_it_holds(raw):
    d = letter(raw)
    assert len(encoded(d)) <= (LONGEST_LETTER if "payload_sha256" in d else DEAD_LETTER_MAX_BYTES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if "payload_sha256" not in d:
        assert d["payload"] == (text if text is not None else base64.b64encode(raw).decode())
        return
    check_bounded(d, raw)
    if text is None:
        assert base64.b64decode(d["payload"]) == raw[:HEAD]
    else:
        assert raw.startswith(d["payload"].encode()) and len(d["payload"].encode()) >= min(len(raw), HEAD - 3)
