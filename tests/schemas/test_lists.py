"""The lists file (schemas.lists): every rule with the line it names, defaults, the predicate, the fingerprint."""
from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings, strategies as st

from schemas.harm_table import DEFAULT_HARM_TABLE, HarmTableError, harm_table_bytes
from schemas.lists import (
    ListSpec,
    ListsError,
    counts_allegation,
    default_lists,
    fingerprint,
    load_lists,
    parse_lists,
    rescore_cause,
)

THREE_LISTS = """\
# the force's lists
[[list]]
name = "vawg"

[[list]]
name = "violence"
offences = ["008/", "019/"]
window_days = 730
min_allegations = 3
top_n = 50

[[list]]
name = "escalating"
offences = "all"
recent_days = 90
factor = 1.5
"""


def error_of(text: str) -> ListsError:
    with pytest.raises(ListsError) as info:
        parse_lists(text, "lists.toml")
    return info.value


# --------------------------------------------------------------------------- a good file

def test_three_lists_parse_with_their_settings_and_defaults():
    vawg, violence, escalating = parse_lists(THREE_LISTS)
    assert vawg == ListSpec(name="vawg", offences="vawg", window_days=365, min_allegations=2, top_n=100)
    assert not vawg.escalation
    assert violence == ListSpec(name="violence", offences=("008/", "019/"), window_days=730, min_allegations=3,
                                top_n=50)
    assert escalating.offences == "all" and escalating.escalation
    assert (escalating.recent_days, escalating.window_days) == (90, 365)
    assert escalating.factor == Fraction(3, 2) and isinstance(escalating.factor, Fraction)


def test_specs_are_immutable():
    spec = parse_lists(THREE_LISTS)[0]
    with pytest.raises(AttributeError):
        spec.top_n = 5  # type: ignore[misc]


@pytest.mark.parametrize("text,exact", [("0.1", Fraction(1, 10)), ("1.1", Fraction(11, 10)), ("2", Fraction(2)),
                                        ("0.000000000001", Fraction(1, 10**12)), ("1.50", Fraction(3, 2)),
                                        ("1.2e1", Fraction(12)), ("1000000", Fraction(10**6)),
                                        ("1.100000000000000000000", Fraction(11, 10))])
def test_factor_is_exact_from_its_decimal_text(text, exact):
    spec, = parse_lists(f'[[list]]\nname = "e"\nrecent_days = 30\nfactor = {text}\n')
    assert spec.factor == exact


def test_inline_tables_and_quoted_keys_are_the_same_lists():
    text = 'list = [{name = "a", top_n = 3}, {"name" = "b", offences = ["105/"]}]\n'
    assert parse_lists(text) == (ListSpec(name="a", top_n=3), ListSpec(name="b", offences=("105/",)))


def test_duplicate_prefixes_are_kept_once_in_order():
    spec, = parse_lists('[[list]]\nname = "a"\noffences = ["019/", "008/", "019/"]\n')
    assert spec.offences == ("019/", "008/")


def test_load_lists_reads_a_file(tmp_path):
    path = tmp_path / "lists.toml"
    path.write_text(THREE_LISTS)
    assert load_lists(path) == parse_lists(THREE_LISTS)


def test_a_bom_is_allowed(tmp_path):
    path = tmp_path / "lists.toml"
    path.write_bytes(b"\xef\xbb\xbf" + THREE_LISTS.encode())
    assert [s.name for s in load_lists(path)] == ["vawg", "violence", "escalating"]


# --------------------------------------------------------------------------- rules, each naming its line

BAD = [
    # (text, line, words in the reason)
    ('[[list]]\nname = "a"\ntop_n = 0\n', 3, "top_n must be a positive integer, got 0"),
    ('[[list]]\nname = "a"\n\nwindow_days = -5\n', 4, "window_days must be a positive integer, got -5"),
    ('[[list]]\nname = "a"\nmin_allegations = 1.5\n', 3, "min_allegations must be a positive integer, got 1.5"),
    ('[[list]]\nname = "a"\ntop_n = true\n', 3, "top_n must be a positive integer, got true"),
    ('[[list]]\nname = "a"\ntop_n = "10"\n', 3, "top_n must be a positive integer, got '10'"),
    ('[[list]]\nname = "a"\nwindow_days = 36501\n', 3, "window_days must be at most 36500"),
    ('[[list]]\nname = "a"\ntop_n = 1000001\n', 3, "top_n must be at most 1000000"),
    ('[[list]]\nname = "a"\nrecent_days = 30\n', 3, "recent_days needs factor"),
    ('[[list]]\nname = "a"\n\nfactor = 2\n', 4, "factor needs recent_days"),
    ('[[list]]\nname = "a"\nrecent_days = 365\nfactor = 2\n', 3,
     "recent_days (365) must be less than window_days (365)"),
    ('[[list]]\nname = "a"\nwindow_days = 30\nfactor = 2\nrecent_days = 60\n', 5,
     "recent_days (60) must be less than window_days (30)"),
    ('[[list]]\nname = "a"\nrecent_days = 0\nfactor = 2\n', 3, "recent_days must be a positive integer, got 0"),
    ('[[list]]\nname = "a"\nrecent_days = 3\nfactor = 0\n', 4, "factor must be a positive number"),
    ('[[list]]\nname = "a"\nrecent_days = 3\nfactor = -1.5\n', 4, "got -1.5"),
    ('[[list]]\nname = "a"\nrecent_days = 3\nfactor = -0.0\n', 4, "factor must be a positive number"),
    ('[[list]]\nname = "a"\nrecent_days = 3\nfactor = inf\n', 4, "got inf"),
    ('[[list]]\nname = "a"\nrecent_days = 3\nfactor = nan\n', 4, "got nan"),
    ('[[list]]\nname = "a"\nrecent_days = 3\nfactor = "1.5"\n', 4, "factor must be a positive number"),
    ('[[list]]\nname = "a"\nrecent_days = 3\nfactor = 1e7\n', 4, "up to 1000000"),
    ('[[list]]\nname = "a"\nrecent_days = 3\nfactor = 0.0000000000001\n', 4, "at most 12 decimals"),
    ('[[list]]\nname = "a"\nrecent_days = 3\nfactor = 1e-99999999\n', 4, "at most 12 decimals"),
    ('[[list]]\nname = "a"\nrecent_days = 3\nfactor = 1.' + "1" * 60 + "\n", 4, "at most 12 decimals"),
    ('[[list]]\nname = "Vawg"\n', 2, "name must be 1 to 32 of a-z, 0-9 and '-', got 'Vawg'"),
    ('[[list]]\nname = ""\n', 2, "name must be 1 to 32"),
    ('[[list]]\nname = "' + "a" * 33 + '"\n', 2, "name must be 1 to 32"),
    ('[[list]]\nname = "a b"\n', 2, "got 'a b'"),
    ('[[list]]\nname = 7\n', 2, "got 7"),
    ('[[list]]\ntop_n = 3\n', 1, "this [[list]] has no name"),
    ('[[list]]\nname = "a"\n\n[[list]]\nname = "b"\n\n[[list]]\ntop_n = 1\nname = "a"\n', 9,
     "name 'a' is used twice (first on line 2)"),
    ('[[list]]\nname = "a"\ntopn = 3\n', 3, "unknown key 'topn' (known: name, offences,"),
    ('[[list]]\nname = "a"\n"window days" = 3\n', 3, "unknown key 'window days'"),
    ('[[list]]\nname = "a"\nextra.deep = 3\n', 3, "unknown key 'extra'"),
    ('[[list]]\nname = "a"\n\n[list.extra]\nx = 1\n', 4, "unknown key 'extra'"),
    ('[[list]]\nname = "a"\n[[list.extra]]\nx = 1\n', 3, "unknown key 'extra'"),
    ('top_n = 3\n[[list]]\nname = "a"\n', 1, "unknown key 'top_n' (the file holds only [[list]] tables)"),
    ('[[list]]\nname = "a"\n[settings]\nx = 1\n', 3, "unknown key 'settings'"),
    ("", 1, "no [[list]] tables"),
    ("# nothing but a comment\n", 1, "no [[list]] tables"),
    ('list = []\n', 1, "no [[list]] tables"),
    ('\n[list]\nname = "a"\n', 2, "'list' must be [[list]] tables"),
    ('list = 3\n', 1, "'list' must be [[list]] tables"),
    ('\nlist = [1, 2]\n', 2, "'list' must hold tables"),
    ('[[list]]\nname = "a"\noffences = "rape"\n', 3, "offences must be \"vawg\", \"all\" or a list"),
    ('[[list]]\nname = "a"\noffences = []\n', 3, "non-empty list of offence-code prefixes"),
    ('[[list]]\nname = "a"\noffences = 8\n', 3, "got 8"),
    ('[[list]]\nname = "a"\noffences = [8]\n', 3, "offence-code prefix 8 is not the beginning of a code"),
    ('[[list]]\nname = "a"\noffences = ["008/", ""]\n', 3, "prefix '' is not"),
    ('[[list]]\nname = "a"\noffences = [\n  "008/",\n  "8x",\n]\n', 3, "prefix '8x' is not"),
    ('[[list]]\nname = "a"\noffences = ["008/066"]\n', 3, "prefix '008/066' is not"),
    ('[[list]]\nname = "a"\noffences = ["0080"]\n', 3, "prefix '0080' is not"),
    ('[[list]]\nname = "a"\noffences = ["vawg"]\n', 3, "prefix 'vawg' is not"),
    ('[[list]]\nname = "a"\noffences = """\\\n    all"""\n\n[[list]]\nname = "c"\ntop_n = 0\n', 8,
     "top_n must be a positive integer"),
    ('[[list]]\nname = "a"\ndoc = """\n[[list]]\n"""\n', 3, "unknown key 'doc'"),
]


@pytest.mark.parametrize("text,line,reason", BAD)
def test_each_rule_names_its_line_and_reason(text, line, reason):
    error = error_of(text)
    assert (error.line, error.source) == (line, "lists.toml"), str(error)
    assert reason in error.reason
    assert str(error).startswith(f"lists.toml line {line}: ")


@pytest.mark.parametrize("text,line,words", [
    ('[[list]]\nname = "a"\ntop_n = \n', 3, "not valid TOML: Invalid value"),
    ('[[list]]\nname = "a"\nname = "b"\n', 3, "not valid TOML: Cannot overwrite a value"),
    ('[[list]]\nname = "a\n', 2, "not valid TOML: Illegal character"),
    ('[[list]]\nname = "a"\noffences = """\n', 3, "not valid TOML"),
    ('\n\n[[list]\nname = "a"\n', 3, "not valid TOML"),
    ('[[list]]\nname = "a"\nx\n', 3, "not valid TOML"),
    ('[[list]]\nname = "a"\ntop_n = ' + "9" * 5000 + "\n", 3, "a number too long"),
    ('[[list]]\nname = "a"\n\noffences = ' + "[" * 5000 + "\n", 4, "nested too deep"),
])
def test_a_file_that_does_not_parse_names_its_line(text, line, words):
    error = error_of(text)
    assert error.line == line, str(error)
    assert words in error.reason


def test_unreadable_and_non_utf8_files(tmp_path):
    with pytest.raises(ListsError, match=r"missing.toml line 1: cannot read"):
        load_lists(tmp_path / "missing.toml")
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[[list]]\nname = "a"\n# caf\xe9\n')
    with pytest.raises(ListsError, match=r"latin1.toml line 3: not UTF-8"):
        load_lists(path)


@settings(deadline=None, max_examples=300)
@given(st.text(max_size=200))
def test_any_text_parses_or_raises_lists_error(text):
    try:
        specs = parse_lists(text)
    except ListsError as e:
        assert e.line >= 1 and e.reason
    else:
        assert specs and all(isinstance(s, ListSpec) for s in specs)


# --------------------------------------------------------------------------- defaults

def test_default_lists_is_the_one_vawg_list_from_the_settings():
    assert default_lists() == (ListSpec(name="vawg", offences="vawg", window_days=365, min_allegations=2,
                                        top_n=100),)
    spec, = default_lists(top_n=10, window_days=30, min_allegations=3)
    assert (spec.name, spec.offences, spec.top_n, spec.window_days, spec.min_allegations) == ("vawg", "vawg", 10,
                                                                                              30, 3)
    assert not spec.escalation and spec.recent_days is None and spec.factor is None


# --------------------------------------------------------------------------- the predicate

@pytest.mark.parametrize("offences,code,vawg,counted", [
    ("vawg", "019/08", True, True), ("vawg", "019/08", False, False), ("vawg", "092/00", True, True),
    ("all", "092/00", False, True), ("all", "019/08", True, True),
    (("008/", "019/"), "008/06", False, True), (("008/", "019/"), "019/08", True, True),
    (("008/", "019/"), "105/01", True, False), (("008/", "019/"), "0080/1", False, False),
    (("00",), "008/06", False, True), (("00",), "010/00", False, False), (("008/66",), "008/06", True, False),
])
def test_which_allegations_a_list_counts(offences, code, vawg, counted):
    assert counts_allegation(offences, code, vawg) is counted
    assert ListSpec(name="x", offences=offences).counts(code, vawg) is counted


@settings(deadline=None, max_examples=300)
@given(st.integers(0, 10**9), st.integers(0, 10**9), st.integers(1, 10**6), st.integers(1, 10**6))
def test_escalation_compares_exactly(recent, earlier, numerator, denominator):
    spec = ListSpec(name="e", recent_days=30, factor=Fraction(numerator, denominator))
    assert spec.escalates(recent, earlier) is (Fraction(recent) >= Fraction(numerator, denominator) * earlier)


def test_escalation_at_the_boundary_of_a_decimal_factor():
    spec, = parse_lists('[[list]]\nname = "e"\nrecent_days = 30\nfactor = 1.1\n')
    assert spec.escalates(1100, 1000)  # exactly 1.1 x: a float 1.1 * 1000 would be 1100.0000000000002
    assert not spec.escalates(1099, 1000)


# --------------------------------------------------------------------------- the fingerprint

def test_fingerprint_changes_with_either_file_and_not_otherwise(tmp_path):
    table = harm_table_bytes()
    assert table == open(DEFAULT_HARM_TABLE, "rb").read()
    lists = THREE_LISTS.encode()
    base = fingerprint(table, lists)
    assert len(base) == 64 and int(base, 16) >= 0
    assert fingerprint(table, lists) == base
    assert fingerprint(bytes(table), bytes(lists), default_lists(top_n=5)) == base  # specs count only without a file
    changed_table = table.replace(b",", b", ", 1)
    assert fingerprint(changed_table, lists) != base
    assert fingerprint(table, lists + b"# a comment\n") != base
    assert fingerprint(table, lists.replace(b"1.5", b"1.6")) != base
    # where one file ends and the other begins is part of what is hashed
    assert fingerprint(table + lists[:1], lists[1:]) != base


def test_fingerprint_without_a_file_follows_the_default_list_settings():
    table = harm_table_bytes()
    base = fingerprint(table, None, default_lists())
    assert fingerprint(table, None, default_lists()) == base
    assert fingerprint(table, None, default_lists(top_n=99)) != base
    assert fingerprint(table, None, default_lists(window_days=364)) != base
    assert fingerprint(table, None, default_lists(min_allegations=3)) != base
    assert fingerprint(table + b"\n", None, default_lists()) != base
    assert fingerprint(table, b"", default_lists()) != base  # an empty file is not "no file"


def test_harm_table_bytes_of_a_given_file_and_a_missing_one(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"offence_code,days\r\n019/08,1825\r\n")
    assert harm_table_bytes(path) == b"offence_code,days\r\n019/08,1825\r\n"
    with pytest.raises(HarmTableError, match="cannot read"):
        harm_table_bytes(tmp_path / "nope.csv")


def test_rescore_cause_carries_the_first_12_hex():
    fp = fingerprint(b"a", b"b")
    assert rescore_cause(fp) == "rescore:" + fp[:12] and len(rescore_cause(fp)) == 20
