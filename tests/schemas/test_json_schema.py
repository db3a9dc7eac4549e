"""The published JSON Schemas agree with the validator.

For every JSON value, ``crime-report.schema.json`` (with format checking) validates it iff
``schemas.validate.validate`` accepts it, *up to* what a schema cannot express:

- ``unknown_offence_code`` (membership of the harm table in use) and ``future_timestamp``
  (the worker's clock): such events are schema-valid; here they count as "accepted";
- ``oversized``, ``not_utf8``, ``bad_json`` (incl. duplicate keys, NaN): they are about the
  message bytes, before there is a JSON value to check;
- strings holding lone surrogates (``"\\ud800"``): not valid Unicode, rejected by the
  validator as ``bad_field``; a schema assumes valid text;
- two documented divergences tested at the end: a space between date and time in ``at``
  (accepted by the validator; rejected by the ``date-time`` format) and a trailing newline
  (``$`` in Python's ``re`` matches before it, so the schema accepts what the validator rejects).
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from schemas.events import EVENT_TYPES, EXIT_REASONS
from schemas.harm_table import HarmEntry, HarmTable
from schemas.validate import (
    REJECTION_CODES,
    SCHEMA_EXPRESSIBLE_CODES,
    Rejected,
    dead_letter,
    event_to_dict,
    validate,
)

JSON_DIR = Path(__file__).resolve().parents[2] / "schemas" / "json"
NOT_SCHEMA_EXPRESSIBLE = ("unknown_offence_code", "future_timestamp")
TABLE = HarmTable([HarmEntry("019/08", "Rape", 182500, True), HarmEntry("105/01", "Common assault", 100, True)])
V = jsonschema.Draft202012Validator


def load(name):
    schema = json.loads((JSON_DIR / name).read_text(encoding="utf-8"))
    V.check_schema(schema)
    return V(schema, format_checker=V.FORMAT_CHECKER)


CRIME = load("crime-report.schema.json")
RANKING = load("harm-ranking.schema.json")
DLQ = load("dead-letter.schema.json")


def test_schema_files_are_draft_2020_12():
    for p in sorted(JSON_DIR.glob("*.json")):
        assert json.loads(p.read_text())["$schema"] == "https://json-schema.org/draft/2020-12/schema", p
    assert {p.name for p in JSON_DIR.glob("*.json")} == {"crime-report.schema.json", "harm-ranking.schema.json",
                                                         "dead-letter.schema.json"}


def test_date_time_format_is_asserted():
    # without a format checker that knows date-time, the "invalid date" rows below would not be checked
    assert not V.FORMAT_CHECKER.conforms("2025-02-30T10:00:00Z", "date-time")


def test_schema_type_discriminator_covers_event_types():
    schema = CRIME.schema
    consts = [b["properties"]["type"]["const"] for b in schema["oneOf"]]
    assert sorted(consts) == sorted(EVENT_TYPES) == sorted(schema["properties"]["type"]["enum"])


def agree(obj):
    """Assert schema and validator agree on obj; return the validator's result."""
    r = validate(json.dumps(obj, ensure_ascii=False).encode("utf-8"), TABLE)
    accepted = not isinstance(r, Rejected) or r.code in NOT_SCHEMA_EXPRESSIBLE
    errors = list(CRIME.iter_errors(obj))
    assert accepted == (not errors), (obj, r, [e.message for e in errors])
    if isinstance(r, Rejected) and not accepted:
        assert r.code in SCHEMA_EXPRESSIBLE_CODES
    return r


AT = "2025-03-01T10:00:00Z"
BASE = {
    "report.recorded": {"event_id": "e1", "type": "report.recorded", "at": AT, "crime_ref": "C1",
                        "offence_code": "019/08", "suspects": ["S1"], "victims": [{"id": "V1", "sex": "F"}]},
    "report.reclassified": {"event_id": "e2", "type": "report.reclassified", "at": AT, "crime_ref": "C1",
                            "offence_code": "105/01"},
    "report.cancelled": {"event_id": "e3", "type": "report.cancelled", "at": AT, "crime_ref": "C1"},
    "suspect.linked": {"event_id": "e4", "type": "suspect.linked", "at": AT, "crime_ref": "C1", "suspect_id": "S3"},
    "suspect.unlinked": {"event_id": "e5", "type": "suspect.unlinked", "at": AT, "crime_ref": "C1", "suspect_id": "S3"},
    "suspects.merged": {"event_id": "e6", "type": "suspects.merged", "at": AT, "suspect_id": "S2", "into": "S1"},
}


def w(etype, **changes):
    d = dict(BASE[etype])
    d.update(changes)
    return d


def wo(etype, field):
    d = dict(BASE[etype])
    del d[field]
    return d


VALID = [
    *BASE.values(),
    w("report.recorded", vawg=True), w("report.recorded", vawg=False), w("report.reclassified", vawg=True),
    w("report.recorded", suspects=[], victims=[]),
    w("report.recorded", suspects=["S1", "S1"], victims=[{"id": "V", "sex": "M", "age": 3}, {"id": "V", "sex": "U"}]),
    w("report.recorded", offence_code="999/99"),            # unknown_offence_code: schema-valid
    w("report.reclassified", offence_code="000/00"),
    w("report.cancelled", extra=1, offence_code="bad", vawg=None),  # extras ignored
    w("suspects.merged", crime_ref=5),
    w("report.cancelled", event_id="x" * 128, crime_ref="é" * 128),
    w("report.cancelled", at="2025-03-01t10:00:00z"),
    w("report.cancelled", at="2025-03-01T10:00:00.123456789+05:30"),
    w("report.cancelled", at="2024-02-29T23:59:59-23:59"),
    w("report.cancelled", at="9999-12-31T23:59:59Z"),
    w("report.cancelled", at="0001-01-01T00:00:00Z"),
]

INVALID = [
    # not_object
    ([], "not_object"), (None, "not_object"), (1, "not_object"), ("report.cancelled", "not_object"),
    ([BASE["report.cancelled"]], "not_object"), (True, "not_object"),
    # unknown_type
    (w("report.cancelled", type="report.deleted"), "unknown_type"), (w("report.cancelled", type=""), "unknown_type"),
    # missing_field
    *[(wo(t, f), "missing_field") for t, obj in BASE.items() for f in obj],
    (w("report.recorded", victims=[{"sex": "F"}]), "missing_field"),
    (w("report.recorded", victims=[{"id": "V"}]), "missing_field"),
    ({}, "missing_field"),
    # bad_field
    (w("report.cancelled", type=None), "bad_field"), (w("report.cancelled", type=1), "bad_field"),
    (w("report.cancelled", event_id=""), "bad_field"), (w("report.cancelled", event_id="x" * 129), "bad_field"),
    (w("report.cancelled", event_id=1), "bad_field"), (w("report.cancelled", crime_ref=True), "bad_field"),
    (w("report.cancelled", crime_ref=None), "bad_field"), (w("suspect.linked", suspect_id=["S"]), "bad_field"),
    (w("suspects.merged", into={}), "bad_field"), (w("suspects.merged", into=""), "bad_field"),
    (w("suspect.unlinked", suspect_id=1.5), "bad_field"),
    (w("report.recorded", offence_code="19/08"), "bad_field"), (w("report.recorded", offence_code=1908), "bad_field"),
    (w("report.reclassified", offence_code="019-08"), "bad_field"),
    (w("report.reclassified", offence_code="\u0660\u0661\u0669/08"), "bad_field"),
    (w("report.recorded", suspects="S1"), "bad_field"), (w("report.recorded", suspects=[1]), "bad_field"),
    (w("report.recorded", suspects=[""]), "bad_field"), (w("report.recorded", victims={}), "bad_field"),
    (w("report.recorded", victims=["V"]), "bad_field"), (w("report.recorded", victims=[{"id": "V", "sex": "X"}]), "bad_field"),
    (w("report.recorded", victims=[{"id": "V", "sex": "f"}]), "bad_field"),
    (w("report.recorded", victims=[{"id": 7, "sex": "F"}]), "bad_field"),
    (w("report.recorded", vawg=None), "bad_field"), (w("report.recorded", vawg="true"), "bad_field"),
    (w("report.reclassified", vawg=1), "bad_field"), (w("report.cancelled", at=1740823200), "bad_field"),
    (w("report.cancelled", at=None), "bad_field"),
    # bad_timestamp
    (w("report.cancelled", at="2025-03-01T10:00:00"), "bad_timestamp"),
    (w("report.cancelled", at="2025-03-01"), "bad_timestamp"),
    (w("report.cancelled", at="2025-02-30T10:00:00Z"), "bad_timestamp"),
    (w("report.cancelled", at="2023-02-29T10:00:00Z"), "bad_timestamp"),
    (w("report.cancelled", at="2025-03-01T24:00:00Z"), "bad_timestamp"),
    (w("report.cancelled", at="2025-03-01T23:59:60Z"), "bad_timestamp"),
    (w("report.cancelled", at="2025-03-01T10:00:00+24:00"), "bad_timestamp"),
    (w("report.cancelled", at="2025-03-01T10:00:00+0100"), "bad_timestamp"),
    (w("report.cancelled", at="0000-01-01T00:00:00Z"), "bad_timestamp"),
    (w("report.cancelled", at="yesterday"), "bad_timestamp"),
    (w("report.cancelled", at=""), "bad_timestamp"),
]


@pytest.mark.parametrize("obj", VALID)
def test_valid_examples(obj):
    r = agree(obj)
    assert not isinstance(r, Rejected) or r.code == "unknown_offence_code"


@pytest.mark.parametrize("obj,code", INVALID)
def test_invalid_examples(obj, code):
    r = agree(obj)
    assert isinstance(r, Rejected) and r.code == code


def test_every_schema_expressible_code_is_in_the_table():
    assert {code for _, code in INVALID} == set(SCHEMA_EXPRESSIBLE_CODES)
    assert set(SCHEMA_EXPRESSIBLE_CODES) | set(NOT_SCHEMA_EXPRESSIBLE) | {"oversized", "not_utf8", "bad_json"} \
        == set(REJECTION_CODES)


def test_documented_divergences():
    space = w("report.cancelled", at="2025-03-01 10:00:00Z")
    assert not isinstance(validate(json.dumps(space), TABLE), Rejected)
    assert not CRIME.is_valid(space)  # format date-time wants T
    newline = w("report.cancelled", at="2025-03-01T10:00:00Z\n")
    assert validate(json.dumps(newline), TABLE).code == "bad_timestamp"
    surrogate = json.loads('{"event_id": "e\\ud800", "type": "report.cancelled", "at": "%s", "crime_ref": "C"}' % AT)
    assert validate(json.dumps(surrogate), TABLE).code == "bad_field"


# --------------------------------------------------------------------------- generated events

ids = st.text(min_size=1, max_size=6) | st.text(min_size=126, max_size=128)
codes = st.sampled_from(["019/08", "105/01"]) | st.from_regex(r"\A[0-9]{3}/[0-9]{2}\Z")
offsets = st.sampled_from(["Z", "z", "+00:00", "-00:00", "+05:30", "-23:59", "+23:59", "-08:00"])


@st.composite
def timestamps(draw):
    d = draw(st.dates(min_value=__import__("datetime").date(1, 1, 1)))
    t = draw(st.times())
    frac = draw(st.sampled_from(["", ".0", ".5", ".123456", ".123456789"]))
    return f"{d.isoformat()}{draw(st.sampled_from('Tt'))}{t.strftime('%H:%M:%S')}{frac}{draw(offsets)}"


victims = st.fixed_dictionaries({"id": ids, "sex": st.sampled_from(["F", "M", "U"])})
maybe_vawg = st.fixed_dictionaries({}, optional={"vawg": st.booleans()})


def common(etype):
    return st.fixed_dictionaries({"event_id": ids, "type": st.just(etype), "at": timestamps()})


def merged(*parts):
    return st.tuples(*parts).map(lambda ds: {k: v for d in ds for k, v in d.items()})


events = st.one_of(
    merged(common("report.recorded"), st.fixed_dictionaries({
        "crime_ref": ids, "offence_code": codes, "suspects": st.lists(ids, max_size=3),
        "victims": st.lists(victims, max_size=3)}), maybe_vawg),
    merged(common("report.reclassified"), st.fixed_dictionaries({"crime_ref": ids, "offence_code": codes}), maybe_vawg),
    merged(common("report.cancelled"), st.fixed_dictionaries({"crime_ref": ids})),
    merged(common("suspect.linked"), st.fixed_dictionaries({"crime_ref": ids, "suspect_id": ids})),
    merged(common("suspect.unlinked"), st.fixed_dictionaries({"crime_ref": ids, "suspect_id": ids})),
    merged(common("suspects.merged"), st.fixed_dictionaries({"suspect_id": ids, "into": ids})),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12) | codes | timestamps() | st.sampled_from(["F", "M", "U", "", "report.cancelled"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["id", "sex", "x"]), children, max_size=3),
    max_leaves=6,
)
FIELDS = ["event_id", "type", "at", "crime_ref", "offence_code", "suspects", "victims", "vawg", "suspect_id", "into"]


@settings(deadline=None, max_examples=80, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_generated_valid_events(obj):
    r = agree(obj)
    assert not isinstance(r, Rejected) or r.code == "unknown_offence_code"
    if not isinstance(r, Rejected):
        assert validate(json.dumps(event_to_dict(r)), TABLE) == r
        assert CRIME.is_valid(event_to_dict(r))


@settings(deadline=None, max_examples=120, suppress_health_check=[HealthCheck.too_slow])
@given(events, st.sampled_from(FIELDS), json_values, st.booleans())
def test_generated_mutated_events(obj, field, value, drop):
    obj = dict(obj)
    if drop:
        obj.pop(field, None)
    else:
        obj[field] = value
    agree(obj)


# --------------------------------------------------------------------------- output schemas

def test_harm_ranking_examples_from_spec():
    entered = {"event_id": "x1", "type": "ranking.entered", "suspect_id": "S123", "rank": 17, "score": 2419.0,
               "allegations": 3, "victims": 2, "as_of": "2025-03-01T10:00:00+00:00", "cause": "e-42"}
    exited = {"event_id": "x2", "type": "ranking.exited", "suspect_id": "S9", "reason": "displaced", "score": 40.0,
              "allegations": 2, "victims": 1, "as_of": "2025-03-01T10:00:00+00:00",
              "cause": "clock:2025-03-01T10:00:00+00:00"}
    assert RANKING.is_valid(entered) and RANKING.is_valid(exited)
    for reason in EXIT_REASONS:
        assert RANKING.is_valid({**exited, "reason": reason})
    assert sorted(RANKING.schema["oneOf"][1]["properties"]["reason"]["enum"]) == sorted(EXIT_REASONS)
    bad = [
        {**entered, "rank": 0}, {**entered, "type": "ranking.exited"}, {**exited, "reason": "bored"},
        {k: v for k, v in entered.items() if k != "rank"}, {k: v for k, v in exited.items() if k != "reason"},
        {**entered, "score": -1}, {**entered, "allegations": 2.5}, {**entered, "as_of": "2025-03-01T10:00:00"},
        {**entered, "type": "ranking.moved"}, {k: v for k, v in entered.items() if k != "cause"},
    ]
    for b in bad:
        assert not RANKING.is_valid(b), b


@settings(deadline=None, max_examples=60)
@given(st.binary(max_size=64) | st.text(max_size=64).map(lambda s: s.encode()), st.sampled_from(REJECTION_CODES),
       st.integers(min_value=0, max_value=2**31), st.integers(min_value=0, max_value=2**62))
def test_dead_letters_match_schema(raw, code, partition, offset):
    d = dead_letter(Rejected(code, "detail"), "crime-reports", partition, offset, raw)
    assert DLQ.is_valid(d)
    assert DLQ.is_valid(json.loads(json.dumps(d)))
    try:
        assert d["payload"] == raw.decode("utf-8")
    except UnicodeDecodeError:
        assert base64.b64decode(d["payload"]) == raw


def test_dead_letter_schema_rejects():
    good = dead_letter("bad_json: x", "crime-reports", 0, 0, b"{")
    assert DLQ.is_valid(good)
    for k in good:
        assert not DLQ.is_valid({x: y for x, y in good.items() if x != k})
    assert not DLQ.is_valid({**good, "partition": -1})
    assert not DLQ.is_valid({**good, "payload": None})


@pytest.mark.parametrize("raw", [b"x" * 900_000, b"\x01" * 60_000, bytes(range(256)) * 3000, "é".encode() * 200_000])
def test_bounded_dead_letters_match_schema(raw):
    d = dead_letter(Rejected("oversized", "detail"), "crime-reports", 0, 9, raw)
    assert {"payload_sha256", "payload_bytes"} <= set(d)
    assert DLQ.is_valid(d)
    assert DLQ.is_valid(json.loads(json.dumps(d)))


def test_dead_letter_schema_rejects_a_half_bounded_letter():
    bounded = dead_letter("oversized: x", "crime-reports", 0, 0, b"x" * 900_000)
    assert DLQ.is_valid(bounded)
    assert not DLQ.is_valid({k: v for k, v in bounded.items() if k != "payload_sha256"})
    assert not DLQ.is_valid({k: v for k, v in bounded.items() if k != "payload_bytes"})
    assert not DLQ.is_valid({**bounded, "payload_sha256": bounded["payload_sha256"].upper()})
    assert not DLQ.is_valid({**bounded, "payload_sha256": bounded["payload_sha256"][:63]})
    assert not DLQ.is_valid({**bounded, "payload_bytes": -1})
    assert not DLQ.is_valid({**bounded, "payload_bytes": "900000"})
    assert not DLQ.is_valid({**bounded, "extra": 1})
