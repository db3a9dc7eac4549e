"""The dead letter of SPEC §3 and §9: a rejected message, its reason and where it was read.

A letter carries the whole payload (the text, or its base64 when it is not UTF-8) while
its JSON stays within :data:`DEAD_LETTER_MAX_BYTES`. Past that it could be refused by the
broker (a producer sends at most 1 MiB a request, and a control character grows six times
when JSON escapes it), so it keeps the first :data:`PAYLOAD_HEAD_BYTES` bytes of the
payload and adds ``payload_sha256`` (of the whole payload) and ``payload_bytes`` (its
length). Text is cut at a character boundary, never inside a UTF-8 sequence. JSON escapes
take at most six bytes for each byte of UTF-8, so no letter's JSON passes about 400 KiB
(a head of control characters), well under the producer's limit.

``schemas.validate`` re-exports both functions: the worker builds its letters from there.
"""
from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Union

__all__ = ["DEAD_LETTER_MAX_BYTES", "PAYLOAD_HEAD_BYTES", "MAX_REASON_CHARS", "decode_payload_for_dlq", "dead_letter"]

DEAD_LETTER_MAX_BYTES = 256 * 1024
PAYLOAD_HEAD_BYTES = 64 * 1024
MAX_REASON_CHARS = 1024
# The longest JSON escape of one character: a surrogate pair, \\uXXXX\\uXXXX.
_ESCAPE_BYTES = 12
# The JSON of a letter besides its payload: keys, topic, numbers, reason.
_FRAME_BYTES = 512 + _ESCAPE_BYTES * MAX_REASON_CHARS

Payload = Union[bytes, bytearray, memoryview, str, None]


def decode_payload_for_dlq(raw: Payload) -> str:
    """The message text when it is UTF-8, else its base64 (ASCII). None -> ''."""
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    data = bytes(raw)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii")


def _payload_bytes(raw: Payload) -> bytes:
    """The payload as bytes (a str as UTF-8; a lone surrogate kept, as it cannot be text)."""
    if raw is None:
        return b""
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogatepass")
    return bytes(raw)


def _is_utf8(raw: Payload, data: bytes) -> bool:
    if isinstance(raw, str):
        try:
            raw.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _head(data: bytes, as_text: bool) -> str:
    """The first PAYLOAD_HEAD_BYTES of ``data``: text ending on a whole character, or base64."""
    if not as_text:
        return base64.b64encode(data[:PAYLOAD_HEAD_BYTES]).decode("ascii")
    end = PAYLOAD_HEAD_BYTES
    while end > 0 and end < len(data) and data[end] & 0xC0 == 0x80:  # a continuation byte: back to its lead
        end -= 1
    return data[:end].decode("utf-8")


def _fits(payload: str) -> bool:
    """Whether a letter with this payload stays within DEAD_LETTER_MAX_BYTES, however encoded."""
    if _ESCAPE_BYTES * len(payload) + _FRAME_BYTES <= DEAD_LETTER_MAX_BYTES:
        return True
    return len(json.dumps(payload)) + _FRAME_BYTES <= DEAD_LETTER_MAX_BYTES


def dead_letter(reason: Any, topic: str, partition: int, offset: int, raw: Payload) -> dict:
    """The dead-letter object; ``reason`` is text or a ``Rejected`` (its ``reason`` is used).

    The whole payload while the letter stays within DEAD_LETTER_MAX_BYTES of JSON, else
    its head with ``payload_sha256`` and ``payload_bytes`` of the whole (SPEC §9).
    """
    reason = str(reason if isinstance(reason, str) else reason.reason)[:MAX_REASON_CHARS]
    letter = {"reason": reason, "topic": str(topic), "partition": int(partition), "offset": int(offset)}
    payload = decode_payload_for_dlq(raw)
    if _fits(payload):
        letter["payload"] = payload
        return letter
    data = _payload_bytes(raw)
    letter["payload"] = _head(data, _is_utf8(raw, data))
    letter["payload_sha256"] = hashlib.sha256(data).hexdigest()
    letter["payload_bytes"] = len(data)
    return letter
