"""Raw Kafka message -> input event of SPEC §2, or a stable rejection.

``validate`` never raises: whatever the bytes, it returns an event dataclass of
``schemas.events`` or a :class:`Rejected` whose ``code`` is one of
:data:`REJECTION_CODES` (they are Prometheus label values: do not rename them).

Checks run in this order, and the first failure is the answer:

1. ``oversized`` (more than ``max_bytes`` bytes), ``not_utf8``, ``bad_json`` (including
   NaN/Infinity, duplicate keys, nesting too deep), ``not_object``;
2. ``type``: ``missing_field`` / ``bad_field`` (not a string) / ``unknown_type``;
3. each field of the type in a fixed order (``event_id``, ``at``, then the type's own):
   ``missing_field``, ``bad_field`` (wrong JSON type, length, pattern; the detail names
   the field), ``bad_timestamp`` (``at`` is a string but not an RFC 3339 timestamp with
   an offset, or not a real date/time);
4. ``future_timestamp`` (only when ``now_us`` is given: ``at`` more than one day ahead);
5. ``unknown_offence_code`` (well-formed code not in the harm table).

Steps 1 (after parsing) to 3 are what ``schemas/json/crime-report.schema.json``
expresses; steps 4 and 5 depend on the clock and the harm table. One more rule the
schema cannot state: text must be valid Unicode (a JSON ``\\ud800`` escape is a lone
surrogate, rejected as ``bad_field``), since ids end up as UTF-8 keys.

``at`` accepts ``T``, ``t`` or a space between date and time, ``Z``/``z`` or ``±HH:MM``,
and any number of fractional digits (truncated to microseconds). Leap seconds (``:60``)
are rejected: Python time cannot represent them.

A fast path (``_accept_fast``, below) takes the well-formed messages first; it only ever
accepts, and only what the rules above accept, so rejections and their wording come from
the one place that states them.
"""
from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass
from typing import Any, Optional, Union

import orjson

from schemas.events import (
    US_PER_DAY,
    EVENT_TYPES,
    InputEvent,
    ReportCancelled,
    ReportReclassified,
    ReportRecorded,
    SuspectLinked,
    SuspectsMerged,
    SuspectUnlinked,
    Victim,
    datetime_to_us,
    us_to_iso,
)
from schemas.dead_letters import dead_letter, decode_payload_for_dlq  # re-exported: the worker's dead letters
from schemas.harm_table import HarmTable

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_ID_CHARS",
    "REJECTION_CODES",
    "SCHEMA_EXPRESSIBLE_CODES",
    "Rejected",
    "validate",
    "parse_timestamp",
    "event_to_dict",
    "event_to_json",
    "decode_payload_for_dlq",
    "dead_letter",
]

MAX_MESSAGE_BYTES = 65536
MAX_ID_CHARS = 128
VICTIM_SEXES = ("F", "M", "U")

REJECTION_CODES: tuple[str, ...] = (
    "not_utf8",
    "oversized",
    "bad_json",
    "not_object",
    "unknown_type",
    "missing_field",
    "bad_field",
    "bad_timestamp",
    "future_timestamp",
    "unknown_offence_code",
)
#: Codes for which "the JSON value fails crime-report.schema.json" is the whole story.
SCHEMA_EXPRESSIBLE_CODES: tuple[str, ...] = ("not_object", "unknown_type", "missing_field", "bad_field", "bad_timestamp")

_UTC = _dt.timezone.utc
_OFFENCE_CODE_RE = re.compile(r"^[0-9]{3}/[0-9]{2}$")
# The parts of an RFC 3339 timestamp, the whole pattern and the fast path's lookups alike
# (groups: year, month, day; hour, minute, second; fraction, Z, offset sign, hours, minutes).
_DATE_PART = r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
_TIME_PART = r"([0-9]{2}):([0-9]{2}):([0-9]{2})"
_SUFFIX_PART = r"(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
_TIMESTAMP_RE = re.compile(f"^{_DATE_PART}[Tt ]{_TIME_PART}{_SUFFIX_PART}$")


@dataclass(frozen=True)
class Rejected:
    code: str
    detail: str

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.detail}"


class _Reject(Exception):
    def __init__(self, code: str, detail: str):
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


def _short(value: Any, limit: int = 40) -> str:
    try:
        text = json.dumps(value, ensure_ascii=True)
    except Exception:  # pragma: no cover - values come from json.loads
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__  # pragma: no cover


def parse_timestamp(text: str) -> int:
    """RFC 3339 timestamp with offset -> epoch microseconds; ValueError when not one."""
    m = _TIMESTAMP_RE.fullmatch(text)
    if not m:
        raise ValueError("not an RFC 3339 timestamp with offset (e.g. 2025-03-01T10:00:00Z)")
    year, month, day, hour, minute, second, frac, zulu, sign, oh, om = m.groups()
    micro = int((frac + "000000")[:6]) if frac else 0
    if zulu:
        tz = _UTC
    else:
        oh, om = int(oh), int(om)
        if oh > 23 or om > 59:
            raise ValueError(f"offset {sign}{oh:02d}:{om:02d} out of range")
        delta = _dt.timedelta(hours=oh, minutes=om)
        tz = _dt.timezone(-delta if sign == "-" else delta)
    try:
        value = _dt.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=tz)
    except ValueError as e:
        raise ValueError(f"not a valid date/time ({e})") from None
    return datetime_to_us(value)


class _Fields:
    """Typed access to the fields of one event object, raising _Reject."""

    def __init__(self, obj: dict):
        self.obj = obj

    def _get(self, name: str) -> Any:
        if name not in self.obj:
            raise _Reject("missing_field", f"{name} is required")
        return self.obj[name]

    @staticmethod
    def _check_id(name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise _Reject("bad_field", f"{name} must be a string, not {_json_type(value)}")
        if not 1 <= len(value) <= MAX_ID_CHARS:
            raise _Reject("bad_field", f"{name} must be 1..{MAX_ID_CHARS} characters, got {len(value)}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _Reject("bad_field", f"{name} is not valid Unicode (lone surrogate)") from None
        return value

    def id(self, name: str) -> str:
        return self._check_id(name, self._get(name))

    def at(self) -> int:
        value = self._get("at")
        if not isinstance(value, str):
            raise _Reject("bad_field", f"at must be a string, not {_json_type(value)}")
        try:
            return parse_timestamp(value)
        except ValueError as e:
            raise _Reject("bad_timestamp", f"at {_short(value)}: {e}") from None

    def offence_code(self) -> str:
        value = self._get("offence_code")
        if not isinstance(value, str):
            raise _Reject("bad_field", f"offence_code must be a string, not {_json_type(value)}")
        if not _OFFENCE_CODE_RE.fullmatch(value):
            raise _Reject("bad_field", f"offence_code {_short(value)} is not of the form NNN/NN")
        return value

    def vawg(self) -> Optional[bool]:
        if "vawg" not in self.obj:
            return None
        value = self.obj["vawg"]
        if not isinstance(value, bool):
            raise _Reject("bad_field", f"vawg must be true or false, not {_json_type(value)}")
        return value

    def suspects(self) -> tuple[str, ...]:
        value = self._get("suspects")
        if not isinstance(value, list):
            raise _Reject("bad_field", f"suspects must be an array, not {_json_type(value)}")
        return tuple(self._check_id(f"suspects[{i}]", v) for i, v in enumerate(value))

    def victims(self) -> tuple[Victim, ...]:
        value = self._get("victims")
        if not isinstance(value, list):
            raise _Reject("bad_field", f"victims must be an array, not {_json_type(value)}")
        out = []
        for i, v in enumerate(value):
            where = f"victims[{i}]"
            if not isinstance(v, dict):
                raise _Reject("bad_field", f"{where} must be an object, not {_json_type(v)}")
            if "id" not in v:
                raise _Reject("missing_field", f"{where}.id is required")
            vid = self._check_id(f"{where}.id", v["id"])
            if "sex" not in v:
                raise _Reject("missing_field", f"{where}.sex is required")
            sex = v["sex"]
            if not isinstance(sex, str) or sex not in VICTIM_SEXES:
                raise _Reject("bad_field", f"{where}.sex must be one of F, M, U, not {_short(sex)}")
            out.append(Victim(id=vid, sex=sex))
        return tuple(out)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _no_duplicates(pairs: list) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):  # rare: find the first repeated key for the reason
        seen = set()
        for k, _ in pairs:
            if k in seen:
                raise ValueError(f"duplicate key {_short(k)}")
            seen.add(k)
    return obj


# One decoder for every message (json.loads with options builds a new one per call).
_DECODER = json.JSONDecoder(parse_constant=_no_constants, object_pairs_hook=_no_duplicates)


def _build(obj: dict) -> InputEvent:
    f = _Fields(obj)
    if "type" not in obj:
        raise _Reject("missing_field", "type is required")
    etype = obj["type"]
    if not isinstance(etype, str):
        raise _Reject("bad_field", f"type must be a string, not {_json_type(etype)}")
    if etype not in EVENT_TYPES:
        raise _Reject("unknown_type", f"type {_short(etype)} is not one of {', '.join(EVENT_TYPES)}")
    event_id = f.id("event_id")
    at = f.at()
    if etype == ReportRecorded.type:
        return ReportRecorded(event_id=event_id, at=at, crime_ref=f.id("crime_ref"), offence_code=f.offence_code(),
                              suspects=f.suspects(), victims=f.victims(), vawg=f.vawg())
    if etype == ReportReclassified.type:
        return ReportReclassified(event_id=event_id, at=at, crime_ref=f.id("crime_ref"),
                                  offence_code=f.offence_code(), vawg=f.vawg())
    if etype == ReportCancelled.type:
        return ReportCancelled(event_id=event_id, at=at, crime_ref=f.id("crime_ref"))
    if etype == SuspectLinked.type:
        return SuspectLinked(event_id=event_id, at=at, crime_ref=f.id("crime_ref"), suspect_id=f.id("suspect_id"))
    if etype == SuspectUnlinked.type:
        return SuspectUnlinked(event_id=event_id, at=at, crime_ref=f.id("crime_ref"), suspect_id=f.id("suspect_id"))
    assert etype == SuspectsMerged.type
    return SuspectsMerged(event_id=event_id, at=at, suspect_id=f.id("suspect_id"), into=f.id("into"))


def _validate(raw: Any, harm_table: HarmTable, now_us: Optional[int], max_bytes: int) -> InputEvent:
    if raw is None:
        raise _Reject("bad_json", "message has no value")
    if isinstance(raw, str):
        try:
            data = raw.encode("utf-8")
        except UnicodeEncodeError as e:
            raise _Reject("not_utf8", f"text cannot be encoded as UTF-8 at character {e.start}") from None
    elif isinstance(raw, (bytes, bytearray, memoryview)):
        data = raw
    else:
        raise _Reject("bad_json", f"payload is {type(raw).__name__}, not bytes or text")
    size = memoryview(data).nbytes  # before any copy: a huge message costs no more than a small one
    if size > max_bytes:
        raise _Reject("oversized", f"{size} bytes, more than {max_bytes}")
    data = bytes(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _Reject("not_utf8", f"invalid UTF-8 at byte {e.start}") from None
    try:
        obj = _DECODER.decode(text)
    except RecursionError:
        raise _Reject("bad_json", "nested too deeply") from None
    except ValueError as e:  # JSONDecodeError is a ValueError
        raise _Reject("bad_json", str(e)[:200]) from None
    if not isinstance(obj, dict):
        raise _Reject("not_object", f"top-level JSON value is {_json_type(obj)}, not object")
    event = _build(obj)
    if now_us is not None and event.at > now_us + US_PER_DAY:
        raise _Reject("future_timestamp", f"at {us_to_iso(event.at)} is more than one day after {us_to_iso(now_us)}")
    code = getattr(event, "offence_code", None)
    if code is not None and code not in harm_table:
        raise _Reject("unknown_offence_code", f"offence_code {code} is not in the harm table")
    return event


# --- the fast path ---------------------------------------------------------------------
#
# Most messages are well formed, and the rules above are slow for them (the standard
# library's decoder with its hooks, a datetime per timestamp, a check object per event;
# docs/PERFORMANCE.md). `_accept_fast` answers with the event
# `_validate_every_rule` would return, or None for "ask it": rejections are worded there only.
# It declines whatever it cannot vouch for cheaply: escapes (a backslash), anything orjson
# refuses to read or to write back (nesting of 255 levels or more), years outside 1000..8999,
# any check that fails. The one thing orjson accepts that the rules do not is a duplicate key
# (orjson keeps the last). A message that is exactly orjson's serialization of what it parsed
# to has none (a dict serializes each key once). Any other message is counted: without
# escapes, every ':' byte is either a key's separator or a character inside a string, so it
# has no duplicate key exactly when its ':' bytes number the parsed keys plus the ':' in the
# parsed strings. tests/schemas/test_validate.py holds the two paths side by side, fuzzed.


def _colons(value: Any) -> int:
    """Keys plus ':' characters in the strings of a parsed JSON value."""
    cls = value.__class__
    if cls is str:
        return value.count(":")
    if cls is dict:
        n = len(value)
        for k, x in value.items():
            n += k.count(":") + _colons(x)
        return n
    if cls is list:
        n = 0
        for x in value:
            n += _colons(x)
        return n
    return 0


_DATE_RE = re.compile(_DATE_PART)
_TIME_RE = re.compile(_TIME_PART)
_SUFFIX_RE = re.compile(_SUFFIX_PART)
_MISSING = object()
_dates: dict[str, Optional[int]] = {}  # "YYYY-MM-DD" -> days from 1970-01-01, or None: not a date the fast path takes
_times: dict[str, Optional[int]] = {}  # "HH:MM:SS" -> seconds into the day, or None
_suffixes: dict[str, Optional[tuple]] = {}  # what follows the seconds (short ones) -> (microseconds, seconds to UTC)
_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()


def _remember(cache: dict, key: str, value: Any) -> Any:
    if len(cache) >= 100_000:  # bounded, whatever the input
        cache.clear()
    cache[key] = value
    return value


def _date(text: str) -> Optional[int]:
    m = _DATE_RE.fullmatch(text)
    if m is None or not 1000 <= int(m[1]) <= 8999:
        return None
    try:
        return _dt.date(int(m[1]), int(m[2]), int(m[3])).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None


def _time(text: str) -> Optional[int]:
    m = _TIME_RE.fullmatch(text)
    if m is None:
        return None
    h, mi, s = int(m[1]), int(m[2]), int(m[3])
    return None if h > 23 or mi > 59 or s > 59 else h * 3600 + mi * 60 + s


def _suffix(text: str) -> Optional[tuple]:
    m = _SUFFIX_RE.fullmatch(text)
    if m is None:
        return None
    frac, zulu, sign, oh, om = m.groups()
    micro = int((frac + "000000")[:6]) if frac else 0
    if zulu:
        return micro, 0
    oh, om = int(oh), int(om)
    if oh > 23 or om > 59:
        return None
    return micro, (oh * 3600 + om * 60) * (1 if sign == "-" else -1)


def _fast_timestamp(text: Any) -> Optional[int]:
    """parse_timestamp(text) for what it accepts in years 1000..8999, else None.

    Its three parts are looked up: a feed's dates, times of day and offsets repeat.
    """
    if text.__class__ is not str or len(text) < 20 or text[10] not in "Tt ":
        return None
    key = text[:10]
    days = _dates.get(key, _MISSING)
    if days is _MISSING:
        days = _remember(_dates, key, _date(key))
    key = text[11:19]
    seconds = _times.get(key, _MISSING)
    if seconds is _MISSING:
        seconds = _remember(_times, key, _time(key))
    key = text[19:]
    suffix = _suffixes.get(key, _MISSING)
    if suffix is _MISSING:
        suffix = _suffix(key)
        if len(key) <= 16:  # ".ffffff+HH:MM" at most: the cache stays small whatever the input
            _remember(_suffixes, key, suffix)
    if days is None or seconds is None or suffix is None:
        return None
    return (days * 86_400 + seconds + suffix[1]) * 1_000_000 + suffix[0]


def _fast_id(value: Any) -> bool:
    return value.__class__ is str and 0 < len(value) <= MAX_ID_CHARS


def _accept_fast(data: bytes, harm_table: HarmTable, now_us: Optional[int]) -> Optional[InputEvent]:
    """The event `_validate_every_rule(data)` returns, when it is cheap to be sure of it; otherwise None."""
    if b"\\" in data:
        return None
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if obj.__class__ is not dict:
        return None
    try:
        canonical = orjson.dumps(obj) == data
    except orjson.JSONEncodeError:  # nested 255 levels or more: orjson writes no such JSON
        return None
    if not canonical and data.count(b":") != _colons(obj):  # count the ':' (see above)
        return None  # a duplicate key (or a surprise): the reference says which
    get = obj.get
    event_id, etype, at = get("event_id"), get("type"), _fast_timestamp(get("at"))
    if at is None or not _fast_id(event_id) or (now_us is not None and at > now_us + US_PER_DAY):
        return None
    if etype == "report.recorded" or etype == "report.reclassified":
        crime_ref, code, vawg = get("crime_ref"), get("offence_code"), get("vawg", _MISSING)
        if not _fast_id(crime_ref) or code.__class__ is not str or not _OFFENCE_CODE_RE.fullmatch(code):
            return None
        if code not in harm_table:
            return None
        if vawg is _MISSING:
            vawg = None
        elif vawg.__class__ is not bool:
            return None
        if etype == "report.reclassified":
            return ReportReclassified(event_id, at, crime_ref, code, vawg)
        suspects, victims = get("suspects"), get("victims")
        if suspects.__class__ is not list or victims.__class__ is not list:
            return None
        for s in suspects:
            if not _fast_id(s):
                return None
        out = []
        for x in victims:
            if x.__class__ is not dict:
                return None
            vid, sex = x.get("id"), x.get("sex")
            if not _fast_id(vid) or sex.__class__ is not str or sex not in VICTIM_SEXES:
                return None
            out.append(Victim(vid, sex))
        return ReportRecorded(event_id, at, crime_ref, code, tuple(suspects), tuple(out), vawg)
    if etype == "report.cancelled":
        crime_ref = get("crime_ref")
        return ReportCancelled(event_id, at, crime_ref) if _fast_id(crime_ref) else None
    if etype == "suspect.linked" or etype == "suspect.unlinked":
        crime_ref, suspect = get("crime_ref"), get("suspect_id")
        if not (_fast_id(crime_ref) and _fast_id(suspect)):
            return None
        cls = SuspectLinked if etype == "suspect.linked" else SuspectUnlinked
        return cls(event_id, at, crime_ref, suspect)
    if etype == "suspects.merged":
        suspect, into = get("suspect_id"), get("into")
        return SuspectsMerged(event_id, at, suspect, into) if _fast_id(suspect) and _fast_id(into) else None
    return None


def validate(
    raw: Union[bytes, str],
    harm_table: HarmTable,
    now_us: Optional[int] = None,
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> Union[InputEvent, Rejected]:
    """One raw message -> an input event, or Rejected(code, detail). Never raises."""
    if raw.__class__ is bytes and len(raw) <= max_bytes:
        try:
            event = _accept_fast(raw, harm_table, now_us)
        except Exception:  # defence in depth (no input known to reach it): the reference answers
            event = None
        if event is not None:
            return event
    return _validate_every_rule(raw, harm_table, now_us, max_bytes)


def _validate_every_rule(raw: Any, harm_table: HarmTable, now_us: Optional[int],
                         max_bytes: int) -> Union[InputEvent, Rejected]:
    """`validate` without its fast path: the reference, which words every rejection."""
    try:
        return _validate(raw, harm_table, now_us, max_bytes)
    except _Reject as r:
        return Rejected(r.code, r.detail)
    except Exception as e:  # pragma: no cover - defence in depth: the contract is "never raises"
        return Rejected("bad_json", f"unexpected {type(e).__name__}: {str(e)[:200]}")


# --- encoding ------------------------------------------------------------------------

def event_to_dict(event: InputEvent) -> dict:
    """The SPEC §2 JSON object of an event (the inverse of ``validate``)."""
    d: dict[str, Any] = {"event_id": event.event_id, "type": event.type, "at": us_to_iso(event.at)}
    if isinstance(event, SuspectsMerged):
        d["suspect_id"] = event.suspect_id
        d["into"] = event.into
        return d
    d["crime_ref"] = event.crime_ref
    if isinstance(event, (ReportRecorded, ReportReclassified)):
        d["offence_code"] = event.offence_code
    if isinstance(event, ReportRecorded):
        d["suspects"] = list(event.suspects)
        d["victims"] = [{"id": v.id, "sex": v.sex} for v in event.victims]
    if isinstance(event, (ReportRecorded, ReportReclassified)) and event.vawg is not None:
        d["vawg"] = event.vawg
    if isinstance(event, (SuspectLinked, SuspectUnlinked)):
        d["suspect_id"] = event.suspect_id
    return d


def event_to_json(event: InputEvent) -> bytes:
    """Compact UTF-8 JSON of ``event_to_dict`` (what a publisher would send)."""
    return json.dumps(event_to_dict(event), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
