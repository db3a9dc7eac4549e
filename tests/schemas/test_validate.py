"""schemas.validate: raw message -> event or stable rejection; never raises."""
from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from schemas.events import (
    US_PER_DAY,
    US_PER_SECOND,
    EVENT_TYPES,
    ReportCancelled,
    ReportReclassified,
    ReportRecorded,
    SuspectLinked,
    SuspectsMerged,
    SuspectUnlinked,
    Victim,
    datetime_to_us,
)
from schemas.harm_table import HarmEntry, HarmTable, load_harm_table
from schemas.validate import (
    MAX_ID_CHARS,
    MAX_MESSAGE_BYTES,
    REJECTION_CODES,
    SCHEMA_EXPRESSIBLE_CODES,
    Rejected,
    dead_letter,
    decode_payload_for_dlq,
    event_to_dict,
    event_to_json,
    parse_timestamp,
    validate,
)
from schemas.validate import _accept_fast, _validate_every_rule  # the fast path and the reference

TABLE = HarmTable([HarmEntry("019/08", "Rape", 182500, True), HarmEntry("105/01", "Common assault", 100, True),
                   HarmEntry("092/30", "Supply class A", 54750, False)], source="test")
AT = "2025-03-01T10:00:00+00:00"
AT_US = datetime_to_us(dt.datetime(2025, 3, 1, 10, tzinfo=dt.timezone.utc))

BASE = {
    "report.recorded": {"event_id": "e1", "type": "report.recorded", "at": AT, "crime_ref": "C1",
                        "offence_code": "019/08", "suspects": ["S1", "S2"],
                        "victims": [{"id": "V1", "sex": "F"}, {"id": "V2", "sex": "U"}]},
    "report.reclassified": {"event_id": "e2", "type": "report.reclassified", "at": AT, "crime_ref": "C1",
                            "offence_code": "105/01"},
    "report.cancelled": {"event_id": "e3", "type": "report.cancelled", "at": AT, "crime_ref": "C1"},
    "suspect.linked": {"event_id": "e4", "type": "suspect.linked", "at": AT, "crime_ref": "C1", "suspect_id": "S3"},
    "suspect.unlinked": {"event_id": "e5", "type": "suspect.unlinked", "at": AT, "crime_ref": "C1", "suspect_id": "S3"},
    "suspects.merged": {"event_id": "e6", "type": "suspects.merged", "at": AT, "suspect_id": "S2", "into": "S1"},
}
REQUIRED = {
    "report.recorded": ["event_id", "type", "at", "crime_ref", "offence_code", "suspects", "victims"],
    "report.reclassified": ["event_id", "type", "at", "crime_ref", "offence_code"],
    "report.cancelled": ["event_id", "type", "at", "crime_ref"],
    "suspect.linked": ["event_id", "type", "at", "crime_ref", "suspect_id"],
    "suspect.unlinked": ["event_id", "type", "at", "crime_ref", "suspect_id"],
    "suspects.merged": ["event_id", "type", "at", "suspect_id", "into"],
}
ID_FIELDS = {t: [f for f in req if f in ("event_id", "crime_ref", "suspect_id", "into")] for t, req in REQUIRED.items()}


def v(obj, **kw):
    raw = obj if isinstance(obj, (bytes, str)) else json.dumps(obj)
    return validate(raw, kw.pop("table", TABLE), **kw)


def rejected(obj, code, **kw) -> Rejected:
    r = v(obj, **kw)
    assert isinstance(r, Rejected), r
    assert r.code == code, r
    assert r.reason == f"{r.code}: {r.detail}"
    return r


def with_(etype, **changes):
    d = dict(BASE[etype])
    d.update(changes)
    return d


def without(etype, field):
    d = dict(BASE[etype])
    del d[field]
    return d


# --------------------------------------------------------------------------- accepted

def test_report_recorded():
    assert v(BASE["report.recorded"]) == ReportRecorded(
        event_id="e1", at=AT_US, crime_ref="C1", offence_code="019/08", suspects=("S1", "S2"),
        victims=(Victim("V1", "F"), Victim("V2", "U")), vawg=None)


def test_each_type_parses_to_its_class():
    classes = {"report.recorded": ReportRecorded, "report.reclassified": ReportReclassified,
               "report.cancelled": ReportCancelled, "suspect.linked": SuspectLinked,
               "suspect.unlinked": SuspectUnlinked, "suspects.merged": SuspectsMerged}
    assert set(classes) == set(EVENT_TYPES)
    for etype, obj in BASE.items():
        ev = v(obj)
        assert type(ev) is classes[etype]
        assert ev.event_id == obj["event_id"] and ev.at == AT_US


def test_fields_of_each_type():
    assert v(BASE["report.reclassified"]) == ReportReclassified("e2", AT_US, "C1", "105/01", None)
    assert v(BASE["report.cancelled"]) == ReportCancelled("e3", AT_US, "C1")
    assert v(BASE["suspect.linked"]) == SuspectLinked("e4", AT_US, "C1", "S3")
    assert v(BASE["suspect.unlinked"]) == SuspectUnlinked("e5", AT_US, "C1", "S3")
    assert v(BASE["suspects.merged"]) == SuspectsMerged("e6", AT_US, "S2", "S1")


@pytest.mark.parametrize("etype", ["report.recorded", "report.reclassified"])
@pytest.mark.parametrize("flag", [True, False])
def test_vawg_flag(etype, flag):
    assert v(with_(etype, vawg=flag)).vawg is flag


def test_empty_suspects_and_victims_and_duplicates_kept():
    ev = v(with_("report.recorded", suspects=[], victims=[]))
    assert ev.suspects == () and ev.victims == ()
    ev = v(with_("report.recorded", suspects=["S1", "S1", "S2"], victims=[{"id": "V", "sex": "M"}] * 2))
    assert ev.suspects == ("S1", "S1", "S2")
    assert ev.victims == (Victim("V", "M"), Victim("V", "M"))


def test_unknown_extra_fields_ignored():
    obj = with_("report.cancelled", extra={"x": [1, 2]}, offence_code="nonsense", vawg=None, suspects=5)
    assert v(obj) == ReportCancelled("e3", AT_US, "C1")
    obj = with_("report.recorded", victims=[{"id": "V1", "sex": "F", "age": 30}])
    assert v(obj).victims == (Victim("V1", "F"),)


def test_str_bytes_bytearray_memoryview_inputs():
    raw = json.dumps(BASE["report.cancelled"])
    expected = ReportCancelled("e3", AT_US, "C1")
    for r in (raw, raw.encode(), bytearray(raw.encode()), memoryview(raw.encode())):
        assert validate(r, TABLE) == expected


def test_unicode_ids():
    obj = with_("suspects.merged", suspect_id="Zoë-😀", into="渡辺")
    ev = v(json.dumps(obj, ensure_ascii=False).encode("utf-8"))
    assert ev.suspect_id == "Zoë-😀" and ev.into == "渡辺"


def test_id_length_limits():
    assert v(with_("report.cancelled", event_id="x" * 128)).event_id == "x" * 128
    assert v(with_("report.cancelled", crime_ref="é" * 128)).crime_ref == "é" * 128  # characters, not bytes
    rejected(with_("report.cancelled", event_id="x" * 129), "bad_field")


def test_shipped_table_codes():
    shipped = load_harm_table()
    assert isinstance(validate(json.dumps(with_("report.recorded", offence_code="008/77")), shipped), ReportRecorded)
    r = validate(json.dumps(with_("report.recorded", offence_code="999/98")), shipped)
    assert r == Rejected("unknown_offence_code", "offence_code 999/98 is not in the harm table")


# --------------------------------------------------------------------------- timestamps

@pytest.mark.parametrize("text,expected", [
    ("2025-03-01T10:00:00Z", AT_US),
    ("2025-03-01T10:00:00z", AT_US),
    ("2025-03-01t10:00:00Z", AT_US),
    ("2025-03-01 10:00:00Z", AT_US),
    ("2025-03-01T10:00:00+00:00", AT_US),
    ("2025-03-01T10:00:00-00:00", AT_US),
    ("2025-03-01T11:30:00+01:30", AT_US),
    ("2025-03-01T05:00:00-05:00", AT_US),
    ("2025-03-01T10:00:00.5Z", AT_US + 500_000),
    ("2025-03-01T10:00:00.000001Z", AT_US + 1),
    ("2025-03-01T10:00:00.1234569Z", AT_US + 123_456),  # truncated to microseconds
    ("2024-02-29T00:00:00Z", datetime_to_us(dt.datetime(2024, 2, 29, tzinfo=dt.timezone.utc))),
    ("1970-01-01T00:00:00Z", 0),
    ("1969-12-31T23:59:59Z", -US_PER_SECOND),
    ("0001-01-01T00:00:00+23:59", datetime_to_us(dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc)) - (23 * 60 + 59) * 60 * US_PER_SECOND),
    ("9999-12-31T23:59:59.999999-23:59", datetime_to_us(dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone.utc)) + (23 * 60 + 59) * 60 * US_PER_SECOND),
])
def test_timestamps_accepted(text, expected):
    assert parse_timestamp(text) == expected
    assert v(with_("report.cancelled", at=text)).at == expected


@pytest.mark.parametrize("text", [
    "2025-03-01T10:00:00",          # naive
    "2025-03-01 10:00:00",          # naive
    "2025-03-01",                    # date only
    "2025-03-01T10:00Z",             # no seconds
    "2025-03-01T10:00:00+0000",      # offset without colon
    "2025-03-01T10:00:00+00",        # short offset
    "2025-03-01T10:00:00 Z",
    "2025-02-30T10:00:00Z",          # no such day
    "2023-02-29T10:00:00Z",          # not a leap year
    "2025-13-01T10:00:00Z",
    "2025-00-01T10:00:00Z",
    "2025-03-01T24:00:00Z",
    "2025-03-01T10:60:00Z",
    "2025-03-01T23:59:60Z",          # leap second
    "2025-03-01T10:00:00+24:00",
    "2025-03-01T10:00:00+01:60",
    "0000-01-01T00:00:00Z",
    "2025-03-01T10:00:00.Z",
    "+2025-03-01T10:00:00Z",
    "2025-3-1T10:00:00Z",
    "\u0662025-03-01T10:00:00Z",     # Arabic-Indic digit
    "2025-03-01T10:00:00Z\n",
    " 2025-03-01T10:00:00Z",
    "",
    "yesterday",
    "1740823200",
])
def test_timestamps_rejected(text):
    with pytest.raises(ValueError):
        parse_timestamp(text)
    r = rejected(with_("report.cancelled", at=text), "bad_timestamp")
    assert r.detail.startswith("at ")


@pytest.mark.parametrize("value", [1740823200, 1.5, True, None, [], {}])
def test_timestamp_wrong_json_type_is_bad_field(value):
    r = rejected(with_("report.cancelled", at=value), "bad_field")
    assert r.detail.startswith("at must be a string")


def test_future_timestamp():
    now = AT_US - US_PER_DAY
    assert isinstance(v(BASE["report.cancelled"], now_us=now), ReportCancelled)  # exactly one day ahead: fine
    r = rejected(BASE["report.cancelled"], "future_timestamp", now_us=now - 1)
    assert "more than one day" in r.detail
    assert isinstance(v(BASE["report.cancelled"]), ReportCancelled)  # no clock, no check
    assert isinstance(v(BASE["report.cancelled"], now_us=AT_US + 10**12), ReportCancelled)  # the past is fine


def test_future_checked_before_offence_code():
    rejected(with_("report.recorded", offence_code="999/99"), "future_timestamp", now_us=0)


# --------------------------------------------------------------------------- rejections

def test_rejection_codes_tuple():
    assert REJECTION_CODES == ("not_utf8", "oversized", "bad_json", "not_object", "unknown_type", "missing_field",
                               "bad_field", "bad_timestamp", "future_timestamp", "unknown_offence_code")
    assert set(SCHEMA_EXPRESSIBLE_CODES) < set(REJECTION_CODES)
    for c in REJECTION_CODES:
        assert c.isidentifier() and c == c.lower()


@pytest.mark.parametrize("raw", [b"\xff", b'{"event_id": "\xe9"}', b"\xc3", b"\xed\xa0\x80", "\ud800"])
def test_not_utf8(raw):
    rejected(raw, "not_utf8")


def test_oversized():
    obj = with_("report.cancelled", pad="x")
    base = len(json.dumps(obj))
    obj["pad"] = "x" * (MAX_MESSAGE_BYTES - base + 1)
    raw = json.dumps(obj).encode()
    assert len(raw) == MAX_MESSAGE_BYTES
    assert isinstance(v(raw), ReportCancelled)
    obj["pad"] += "x"
    r = rejected(json.dumps(obj).encode(), "oversized")
    assert str(MAX_MESSAGE_BYTES) in r.detail
    rejected(b"\xff" * (MAX_MESSAGE_BYTES + 1), "oversized")  # size is checked first
    rejected(json.dumps(BASE["report.cancelled"]), "oversized", max_bytes=10)
    # a str is measured in UTF-8 bytes
    rejected("é" * 6, "oversized", max_bytes=11)


@pytest.mark.parametrize("raw", [b"", b"   ", b"{", b"{'a': 1}", b'{"a": 1,}', b"NaN", b'{"a": NaN}',
                                 b'{"a": Infinity}', b'{"a": -Infinity}', b"nul", b'{"a":1}{"b":2}',
                                 b'\xef\xbb\xbf{"a": 1}', b'{"type": "report.cancelled", "type": "x"}',
                                 b"[" * 100_000])
def test_bad_json(raw):
    rejected(raw, "bad_json", max_bytes=len(raw) + 1)


def test_deep_nesting_never_raises():
    raw = b'{"a":' * 30000 + b"1" + b"}" * 30000
    assert isinstance(validate(raw, TABLE, max_bytes=len(raw)), Rejected)


@pytest.mark.parametrize("raw", [b"null", b"1", b"1.5", b'"text"', b"true", b"[]", b"[{}]"])
def test_not_object(raw):
    rejected(raw, "not_object")


def test_none_and_other_python_values():
    assert validate(None, TABLE) == Rejected("bad_json", "message has no value")  # type: ignore[arg-type]
    assert isinstance(validate(12, TABLE), Rejected)  # type: ignore[arg-type]


def test_unknown_type():
    r = rejected(with_("report.cancelled", type="report.deleted"), "unknown_type")
    assert "report.deleted" in r.detail
    rejected(with_("report.cancelled", type=""), "unknown_type")
    rejected(with_("report.cancelled", type="Report.Cancelled"), "unknown_type")


@pytest.mark.parametrize("value", [None, 1, True, ["report.cancelled"], {"t": 1}])
def test_type_not_string(value):
    r = rejected(with_("report.cancelled", type=value), "bad_field")
    assert r.detail.startswith("type ")


@pytest.mark.parametrize("etype,field", [(t, f) for t, fs in REQUIRED.items() for f in fs])
def test_missing_field(etype, field):
    r = rejected(without(etype, field), "missing_field")
    assert r.detail == f"{field} is required"


def test_missing_victim_fields():
    assert rejected(with_("report.recorded", victims=[{"sex": "F"}]), "missing_field").detail == "victims[0].id is required"
    assert rejected(with_("report.recorded", victims=[{"id": "V"}, {"id": "W"}]),
                    "missing_field").detail == "victims[0].sex is required"


@pytest.mark.parametrize("etype,field", [(t, f) for t, fs in ID_FIELDS.items() for f in fs])
@pytest.mark.parametrize("value", ["", "x" * 129, 1, 1.0, True, False, None, ["x"], {"x": 1}])
def test_bad_id_field(etype, field, value):
    r = rejected(with_(etype, **{field: value}), "bad_field")
    assert r.detail.startswith(field + " ")


@pytest.mark.parametrize("field", ["event_id", "crime_ref"])
def test_lone_surrogate_in_id(field):
    raw = json.dumps(BASE["report.cancelled"]).replace('"C1"', '"C\\ud800"').replace('"e3"', '"e\\udfff"')
    r = rejected(raw.encode(), "bad_field")
    assert "surrogate" in r.detail


@pytest.mark.parametrize("value", ["19/08", "019/8", "019-08", "01908", "019/08 ", " 019/08", "019/08\n", "abc/de",
                                   "\u0660\u0661\u0669/08", "", 19.08, 1908, True, None, ["019/08"]])
@pytest.mark.parametrize("etype", ["report.recorded", "report.reclassified"])
def test_bad_offence_code(etype, value):
    r = rejected(with_(etype, offence_code=value), "bad_field")
    assert r.detail.startswith("offence_code ")


@pytest.mark.parametrize("etype", ["report.recorded", "report.reclassified"])
def test_unknown_offence_code(etype):
    r = rejected(with_(etype, offence_code="999/99"), "unknown_offence_code")
    assert "999/99" in r.detail


@pytest.mark.parametrize("etype", ["report.recorded", "report.reclassified"])
@pytest.mark.parametrize("value", [None, 1, 0, "true", "false", [], {}])
def test_bad_vawg(etype, value):
    r = rejected(with_(etype, vawg=value), "bad_field")
    assert r.detail.startswith("vawg must be true or false")


@pytest.mark.parametrize("value,detail", [
    ("S1", "suspects must be an array, not string"),
    ({"S1": 1}, "suspects must be an array, not object"),
    (None, "suspects must be an array, not null"),
    (["S1", 2], "suspects[1] must be a string, not number"),
    (["S1", True], "suspects[1] must be a string, not boolean"),
    ([""], "suspects[0] must be 1..128 characters, got 0"),
    (["x" * 129], "suspects[0] must be 1..128 characters, got 129"),
    ([["S1"]], "suspects[0] must be a string, not array"),
])
def test_bad_suspects(value, detail):
    assert rejected(with_("report.recorded", suspects=value), "bad_field").detail == detail


@pytest.mark.parametrize("value,detail", [
    ({"id": "V", "sex": "F"}, "victims must be an array, not object"),
    ("V1", "victims must be an array, not string"),
    (["V1"], "victims[0] must be an object, not string"),
    ([None], "victims[0] must be an object, not null"),
    ([{"id": 1, "sex": "F"}], "victims[0].id must be a string, not number"),
    ([{"id": "", "sex": "F"}], "victims[0].id must be 1..128 characters, got 0"),
    ([{"id": "V", "sex": "f"}], 'victims[0].sex must be one of F, M, U, not "f"'),
    ([{"id": "V", "sex": "X"}], 'victims[0].sex must be one of F, M, U, not "X"'),
    ([{"id": "V", "sex": ""}], 'victims[0].sex must be one of F, M, U, not ""'),
    ([{"id": "V", "sex": None}], "victims[0].sex must be one of F, M, U, not null"),
    ([{"id": "V", "sex": True}], "victims[0].sex must be one of F, M, U, not true"),
    ([{"id": "V", "sex": ["F"]}], 'victims[0].sex must be one of F, M, U, not ["F"]'),
    ([{"id": "V", "sex": "F"}, {"id": "W", "sex": "Female"}], 'victims[1].sex must be one of F, M, U, not "Female"'),
])
def test_bad_victims(value, detail):
    assert rejected(with_("report.recorded", victims=value), "bad_field").detail == detail


def test_check_order():
    # type problems come before field problems; fields in the fixed order event_id, at, ...
    rejected({"event_id": 1, "at": "x"}, "missing_field")
    rejected({"type": "nope", "event_id": 1}, "unknown_type")
    assert rejected(with_("report.recorded", event_id=1, at="x"), "bad_field").detail.startswith("event_id")
    rejected(with_("report.recorded", at="x", crime_ref=1), "bad_timestamp")
    # structural problems come before the harm-table lookup
    rejected(with_("report.recorded", offence_code="999/99", victims=[1]), "bad_field")


def test_every_rejection_code_is_reachable():
    examples = {
        "not_utf8": b"\xff",
        "oversized": b" " * (MAX_MESSAGE_BYTES + 1),
        "bad_json": b"{",
        "not_object": b"[]",
        "unknown_type": with_("report.cancelled", type="x"),
        "missing_field": without("report.cancelled", "crime_ref"),
        "bad_field": with_("report.cancelled", crime_ref=True),
        "bad_timestamp": with_("report.cancelled", at="2025-03-01T10:00:00"),
        "future_timestamp": BASE["report.cancelled"],
        "unknown_offence_code": with_("report.reclassified", offence_code="123/45"),
    }
    assert set(examples) == set(REJECTION_CODES)
    for code, raw in examples.items():
        rejected(raw, code, now_us=0 if code == "future_timestamp" else None)


def test_rejected_is_frozen_value():
    r = Rejected("bad_json", "x")
    assert r == Rejected("bad_json", "x") and r.reason == "bad_json: x"
    with pytest.raises(Exception):
        r.code = "other"  # type: ignore[misc]


# --------------------------------------------------------------------------- encoding

def test_event_to_dict_round_trip_each_type():
    for etype, obj in BASE.items():
        ev = v(obj)
        d = event_to_dict(ev)
        assert d["type"] == etype and d["at"] == "2025-03-01T10:00:00+00:00"
        assert d == {k: obj[k] for k in d}
        assert v(d) == ev
        assert validate(event_to_json(ev), TABLE) == ev


def test_event_to_dict_vawg_only_when_given():
    assert "vawg" not in event_to_dict(v(BASE["report.recorded"]))
    assert event_to_dict(v(with_("report.recorded", vawg=False)))["vawg"] is False
    assert event_to_dict(v(with_("report.reclassified", vawg=True)))["vawg"] is True


def test_event_to_dict_exact_shape():
    ev = ReportRecorded("e", 1, "C", "019/08", ("S",), (Victim("V", "F"),), True)
    assert event_to_dict(ev) == {"event_id": "e", "type": "report.recorded", "at": "1970-01-01T00:00:00.000001+00:00",
                                 "crime_ref": "C", "offence_code": "019/08", "suspects": ["S"],
                                 "victims": [{"id": "V", "sex": "F"}], "vawg": True}
    assert event_to_dict(SuspectsMerged("e", 0, "A", "B")) == {
        "event_id": "e", "type": "suspects.merged", "at": "1970-01-01T00:00:00+00:00", "suspect_id": "A", "into": "B"}


# --------------------------------------------------------------------------- dead letters

def test_decode_payload_for_dlq():
    assert decode_payload_for_dlq(b'{"a": "\xc3\xa9"}') == '{"a": "é"}'
    assert decode_payload_for_dlq(b"\xff\x00") == base64.b64encode(b"\xff\x00").decode("ascii") == "/wA="
    assert decode_payload_for_dlq("text") == "text"
    assert decode_payload_for_dlq(None) == ""
    assert decode_payload_for_dlq(bytearray(b"ab")) == "ab"


def test_dead_letter():
    raw = b"\xff"
    r = v(raw)
    d = dead_letter(r, "crime-reports", 3, 42, raw)
    assert d == {"reason": "not_utf8: invalid UTF-8 at byte 0", "topic": "crime-reports", "partition": 3,
                 "offset": 42, "payload": "/w=="}
    assert json.loads(json.dumps(d)) == d
    d = dead_letter("unknown_crime_ref: C9 is not recorded", "crime-reports", 0, 0, b'{"x":1}')
    assert d["reason"] == "unknown_crime_ref: C9 is not recorded" and d["payload"] == '{"x":1}'


# --------------------------------------------------------------------------- never raises (fuzz)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=8,
)
FIELDS = ["event_id", "type", "at", "crime_ref", "offence_code", "suspects", "victims", "vawg", "suspect_id", "into"]


def check_result(r, **kw):
    assert isinstance(r, Rejected) or type(r) in EVENT_TYPES.values()
    if isinstance(r, Rejected):
        assert r.code in REJECTION_CODES
        assert isinstance(r.detail, str) and r.detail


@settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_fuzz_bytes(raw):
    check_result(validate(raw, TABLE, now_us=AT_US))


@settings(deadline=None, max_examples=200)
@given(st.text(max_size=200))
def test_fuzz_text(raw):
    check_result(validate(raw, TABLE))


@settings(deadline=None, max_examples=100)
@given(json_values)
def test_fuzz_json_values(value):
    check_result(validate(json.dumps(value), TABLE))


@settings(deadline=None, max_examples=80)
@given(st.sampled_from(sorted(BASE)), st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=4),
       st.lists(st.sampled_from(FIELDS), max_size=3), st.none() | st.integers(min_value=-2**62, max_value=2**62))
def test_fuzz_mutated_events(etype, replace, drop, now):
    obj = dict(BASE[etype])
    obj.update(replace)
    for f in drop:
        obj.pop(f, None)
    r = validate(json.dumps(obj), TABLE, now_us=now)
    check_result(r)
    if not isinstance(r, Rejected):
        assert v(event_to_dict(r)) == r


@settings(deadline=None, max_examples=100)
@given(st.sampled_from(sorted(BASE)), st.integers(min_value=0, max_value=len(json.dumps(BASE["report.recorded"]))),
       st.binary(max_size=3))
def test_fuzz_corrupted_bytes(etype, pos, junk):
    raw = json.dumps(BASE[etype]).encode()
    check_result(validate(raw[:pos] + junk + raw[pos:], TABLE))


@settings(deadline=None, max_examples=100)
@given(st.datetimes(min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 1, 1), timezones=st.just(dt.timezone.utc)),
       st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59), st.sampled_from("Tt "))
def test_timestamp_round_trip(when, offset_min, sep):
    local = when.astimezone(dt.timezone(dt.timedelta(minutes=offset_min)))
    text = local.isoformat(sep=sep, timespec="microseconds")
    assert parse_timestamp(text) == datetime_to_us(when)


# --------------------------------------------------------------------------- the fast path
#
# validate() first tries _accept_fast, which may only ever accept, and only what the reference
# (_validate_every_rule) returns for the same message: these tests hold the two side by side.


def agree(raw: bytes, now=None, table=TABLE):
    """The fast path declines (None) or returns exactly the reference's event; returns the fast answer."""
    fast = _accept_fast(raw, table, now)
    reference = _validate_every_rule(raw, table, now, MAX_MESSAGE_BYTES)
    if fast is not None:
        assert fast == reference and type(fast) is type(reference), (raw, fast, reference)
    assert validate(raw, table, now_us=now) == reference
    return fast


def test_fast_path_takes_every_base_event_in_every_layout():
    for etype, obj in BASE.items():
        for text in (json.dumps(obj, separators=(",", ":")), json.dumps(obj), json.dumps(obj, indent=2)):
            assert agree(text.encode()) is not None, (etype, text)


def test_fast_path_takes_a_simulated_feed_and_agrees_on_every_line():
    from streams.simulate import dumps as sim_dumps, generate

    table = load_harm_table()
    lines = [sim_dumps(e).encode() for e in generate(seed=5, events=3000)]
    taken = sum(agree(line, table=table) is not None for line in lines)
    assert taken >= 0.95 * len(lines), taken


@pytest.mark.parametrize("raw", [
    b'{"event_id":"e1","event_id":"e2","type":"report.cancelled","at":"2025-03-01T10:00:00Z","crime_ref":"C1"}',
    b'{"event_id": "e1", "type": "report.cancelled", "at": "2025-03-01T10:00:00Z", "crime_ref": "C1", "crime_ref": "C2"}',
    b'{"event_id":"e1","type":"report.cancelled","at":"2025-03-01T10:00:00Z","crime_ref":"C1","x":{"a":1,"a":2}}',
    b'{"event_id":"e1","type":"report.cancelled","at":"2025-03-01T10:00:00Z","crime_ref":"C1","x":[{"b:":1, "b:":1}]}',
])
def test_fast_path_declines_duplicate_keys_the_reference_rejects(raw):
    assert agree(raw) is None
    assert rejected(raw, "bad_json").detail.startswith("duplicate key")


@pytest.mark.parametrize("raw", [
    b'{"event_id":"e\\u0031","type":"report.cancelled","at":"2025-03-01T10:00:00Z","crime_ref":"C1"}',  # escape
    b'{"event_id":"e1","type":"report.cancelled","at":"0999-03-01T10:00:00Z","crime_ref":"C1"}',  # year < 1000
    b'{"event_id":"e1","type":"report.cancelled","at":"9000-03-01T10:00:00Z","crime_ref":"C1"}',  # year > 8999
    b'{"event_id":"e1","type":"report.cancelled","at":"2025-02-29T10:00:00Z","crime_ref":"C1"}',  # no such day
    b'{"event_id":"e1","type":"report.cancelled","at":"2025-03-01T10:00:60Z","crime_ref":"C1"}',  # leap second
    b'{"event_id":"e1","type":"report.cancelled","at":"2025-03-01T10:00:00+24:00","crime_ref":"C1"}',
    b'{"event_id":"e1","type":"report.cancelled","at":"2025-03-01T10:00:00","crime_ref":"C1"}',  # no offset
    b'{"event_id":"e1","type":"report.cancelled","at":"2025-03-01T10:00:00Z","crime_ref":"C1","n":NaN}',
    b'{"event_id":"e1","type":"report.cancelled","at":"2025-03-01T10:00:00Z","crime_ref":"C1","n":1e400}',
    b'{"event_id":"","type":"report.cancelled","at":"2025-03-01T10:00:00Z","crime_ref":"C1"}',
    b'{"event_id":"e1","type":"report.recorded","at":"2025-03-01T10:00:00Z","crime_ref":"C1","offence_code":"999/99",'
    b'"suspects":[],"victims":[]}',  # unknown offence code
    b'{"event_id":"e1","type":"report.recorded","at":"2025-03-01T10:00:00Z","crime_ref":"C1","offence_code":"019/08",'
    b'"suspects":[],"victims":[{"id":"V1","sex":"X"}]}',  # a victim sex
    b'{"event_id":"e1","type":"report.recorded","at":"2025-03-01T10:00:00Z","crime_ref":"C1","offence_code":"019/08",'
    b'"suspects":[],"victims":[{"id":"V1","sex":"F"}],"vawg":null}',  # vawg null
    b'{"event_id":"e1","type":"report.recorded","at":"2025-03-01T10:00:00Z","crime_ref":"C1","offence_code":"019/08",'
    b'"suspects":[],"victims":[{"id":"V1","sex":"F"}],"vawg":1}',  # vawg 1
    b'{"event_id":"e1","type":"report.recorded","at":"2025-03-01T10:00:00Z","crime_ref":"C1","offence_code":"019/08",'
    b'"suspects":[""],"victims":[]}',  # an empty suspect id
    b'{"event_id":"e1","type":"report.recorded","at":"2025-03-01T10:00:00Z","crime_ref":"C1","offence_code":"019/08",'
    b'"suspects":["S1",2],"victims":[]}',  # a suspect id not a string
    b'{"event_id":"e1","type":"report.recorded","at":"2025-03-01T10:00:00Z","crime_ref":"C1","offence_code":"019/08",'
    b'"suspects":[],"victims":[1]}',  # a victim not an object
    b'{"event_id":"e1","type":"report.recorded","at":"2025-03-01T10:00:00Z","crime_ref":"C1","offence_code":"019/08",'
    b'"suspects":[],"victims":[{"id":"V1"}]}',  # a victim without sex
    b'{"event_id":"e1","type":"report.recorded","at":"2025-03-01T10:00:00Z","crime_ref":"C1","offence_code":"019/08",'
    b'"suspects":[],"victims":[{"sex":"F"}]}',  # a victim without id
    b'{"event_id":"e1","type":"report.recorded","at":"2025-03-01T10:00:00Z","crime_ref":"C1","offence_code":"019/08",'
    b'"suspects":{},"victims":[]}',  # suspects not a list
    b'{"event_id":"e1","type":"report.recorded","at":"2025-03-01T10:00:00Z","crime_ref":"C1","offence_code":"019/08",'
    b'"suspects":[],"victims":{}}',  # victims not a list
    b'{"event_id":"e1","type":"report.recorded","at":"2025-03-01T10:00:00Z","crime_ref":"C1","offence_code":"19/08",'
    b'"suspects":[],"victims":[]}',  # a malformed offence code
    b'{"event_id":"e1","type":"report.reclassified","at":"2025-03-01T10:00:00Z","crime_ref":"C1","offence_code":"019/8"}',
    b'{"event_id":"e1","type":"suspects.merged","at":"2025-03-01T10:00:00Z","suspect_id":"S1","into":""}',
    b'{"event_id":"e1","type":"suspects.merged","at":"2025-03-01T10:00:00Z","suspect_id":"","into":"S1"}',
    b'{"event_id":"e1","type":"suspect.linked","at":"2025-03-01T10:00:00Z","crime_ref":"C1","suspect_id":7}',
    b'{"event_id":"e1","type":"report.cancelled","at":"2025-03-01T10:00:00Z","crime_ref":"C1","type":"x"}',
    b'{"event_id":"' + b'e' * (MAX_ID_CHARS + 1) + b'","type":"report.cancelled","at":"2025-03-01T10:00:00Z","crime_ref":"C1"}',
    b'{"event_id":"e1","type":"report.cancelled","at":"2025-03-01T10:00:00Z","crime_ref":"' + 'é'.encode() * (MAX_ID_CHARS + 1)
    + b'"}',
    b'[1]', b'{}', b'\xef\xbb\xbf{}', b'\xff',
    # nested deeper than orjson writes back (it reads it): the reference takes it, or says too deep
    b'{"event_id":"e1","type":"report.cancelled","at":"2025-03-01T10:00:00Z","crime_ref":"C1","n":'
    + b'[' * 254 + b']' * 254 + b'}',
    b'{"event_id":"e1","type":"report.cancelled","at":"2025-03-01T10:00:00Z","crime_ref":"C1","n":'
    + b'[' * 1010 + b']' * 1010 + b'}',
])
def test_fast_path_declines_what_it_cannot_vouch_for(raw):
    assert agree(raw) is None


def test_fast_path_caches_stay_small_whatever_the_timestamps():
    from schemas import validate as module

    before = len(module._suffixes)
    for i in range(50):
        assert module._fast_timestamp("2025-03-01T10:00:00." + "1" * (10_000 + i) + "Z") is not None
    assert len(module._suffixes) == before  # long fractions are not kept
    assert all(len(key) <= 16 for key in module._suffixes)


def test_fast_path_declines_a_malformed_code_even_if_a_table_holds_it():
    table = HarmTable([HarmEntry("19/08", "Rape", 182500, True)], source="test")
    raw = json.dumps(with_("report.reclassified", offence_code="19/08")).encode()
    assert agree(raw, table=table) is None
    assert rejected(raw, "bad_field", table=table)


def test_fast_path_takes_ids_of_the_longest_length():
    long_id = "😀" * MAX_ID_CHARS  # 128 characters, 512 bytes
    assert agree(json.dumps(with_("suspects.merged", into=long_id), ensure_ascii=False).encode()) is not None


def test_fast_path_declines_a_future_timestamp():
    raw = json.dumps(BASE["report.cancelled"]).encode()
    assert agree(raw, now=AT_US - US_PER_DAY) is not None  # exactly one day ahead: accepted
    assert agree(raw, now=AT_US - US_PER_DAY - 1) is None
    assert rejected(raw, "future_timestamp", now_us=AT_US - US_PER_DAY - 1)


ids = (st.text(alphabet=st.sampled_from("ab:é \U0001f600\\\"/"), min_size=0, max_size=6)
       | st.text(alphabet="ab", min_size=MAX_ID_CHARS - 1, max_size=MAX_ID_CHARS + 1) | st.integers())
victims = st.lists(st.fixed_dictionaries({"id": ids, "sex": st.sampled_from(["F", "M", "U", "X", ""])},
                                         optional={"extra": json_values}) | json_values, max_size=3)
timestamps = st.builds(
    lambda when, offset, sep, spec, zulu: (
        when.astimezone(dt.timezone(dt.timedelta(minutes=offset))).isoformat(sep=sep, timespec=spec)
        .replace("+00:00", zulu)),
    st.datetimes(min_value=dt.datetime(990, 1, 1), max_value=dt.datetime(9009, 1, 1), timezones=st.just(dt.timezone.utc)),
    st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59), st.sampled_from("Tt "),
    st.sampled_from(["seconds", "milliseconds", "microseconds"]), st.sampled_from(["+00:00", "Z", "z"]))


@settings(deadline=None, max_examples=400)
@given(st.sampled_from(sorted(BASE)), st.dictionaries(st.sampled_from(["event_id", "crime_ref", "suspect_id", "into"]), ids),
       timestamps | st.text(alphabet="0123456789-:TZ+. ", max_size=30),
       st.sampled_from(["absent", None, True, False, 1, "true"]),
       st.none() | st.lists(ids, max_size=3), st.none() | victims,
       st.sampled_from(["019/08", "092/30", "999/99", "19/08", "019/080", 19]),
       st.dictionaries(st.text(alphabet="ab:", max_size=3), json_values, max_size=2),
       st.sampled_from([(",", ":"), (", ", ": ")]), st.none() | st.sampled_from(FIELDS + ["a:"]),
       st.none() | st.integers(min_value=AT_US - 2 * US_PER_DAY, max_value=AT_US + US_PER_DAY))
def test_fast_path_agrees_with_the_reference_fuzzed(etype, id_values, at, vawg, suspects, victim_list, code, extra,
                                                    separators, repeat, now):
    """Near-valid messages: odd ids (':' and escapes in them, too long, not strings), any timestamp, odd
    suspects, victims, codes and vawg flags, extra fields, spacing, a repeated key."""
    obj = dict(BASE[etype], at=at, **{k: v for k, v in id_values.items() if k in BASE[etype]})
    if "offence_code" in obj:
        obj["offence_code"] = code
        if vawg != "absent":
            obj["vawg"] = vawg
    if suspects is not None and "suspects" in obj:
        obj["suspects"] = suspects
    if victim_list is not None and "victims" in obj:
        obj["victims"] = victim_list
    obj.update(extra)
    text = json.dumps(obj, separators=separators, ensure_ascii=False)
    if repeat is not None:  # the same key once more, as the last member
        text = text[:-1] + ("," if len(obj) else "") + json.dumps(repeat) + ":" + json.dumps(obj.get(repeat, 1)) + "}"
    agree(text.encode(), now=now)
