"""The lists file of SPEC §7: named rankings, each with its own offences, window and size.

``LISTS`` names a TOML file of ``[[list]]`` tables; without it there is one list, ``vawg``
(:func:`default_lists`). Every problem with a file raises :class:`ListsError`, whose message
names the file, the line and the reason, e.g. ``lists.toml line 7: top_n must be a positive
integer, got 0``, so that a worker refusing to start says where to look.

An escalation ``factor`` is kept exact (a :class:`fractions.Fraction` of its decimal text),
because the rule ``recent >= factor x earlier`` compares integer harm in hundredths of a day.
Beyond SPEC §7's table, so that no setting can overflow a date or a number: days are at most
MAX_DAYS, top_n at most MAX_TOP_N, a factor at most MAX_FACTOR with at most 12 decimals, and a
prefix is the beginning of a code ``NNN/NN`` (``"0"``, ``"008"``, ``"008/"``, ``"008/6"``, ``"008/66"``).
"""
from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional, Sequence, Union

__all__ = [
    "DEFAULT_LIST_NAME",
    "MAX_DAYS",
    "MAX_FACTOR",
    "MAX_TOP_N",
    "NAME_RE",
    "ListSpec",
    "ListsError",
    "counts_allegation",
    "default_lists",
    "fingerprint",
    "load_lists",
    "parse_lists",
    "rescore_cause",
]

#: The one list there is when no lists file is given.
DEFAULT_LIST_NAME = "vawg"
#: A list's name: what the API's ``?list=`` and the output events' ``list`` carry.
NAME_RE = re.compile(r"[a-z0-9-]{1,32}")
#: The longest window or recent part accepted (100 years): longer ones would take dates below year 1.
MAX_DAYS = 36_500
#: The largest list accepted: more than any force's suspects in a window, and within what a slice can take.
MAX_TOP_N = 1_000_000
#: The largest escalation factor accepted.
MAX_FACTOR = 1_000_000
#: An offence-code prefix: a beginning of ``NNN/NN``.
_PREFIX_RE = re.compile(r"[0-9]{1,3}|[0-9]{3}/[0-9]{0,2}")
_KEYS = ("name", "offences", "window_days", "min_allegations", "top_n", "recent_days", "factor")
_COUNTED = ("window_days", "min_allegations", "top_n", "recent_days")


class ListsError(ValueError):
    """A lists file that cannot be used; ``line`` and ``reason`` are also kept apart."""

    def __init__(self, source: str, line: int, reason: str):
        super().__init__(f"{source} line {line}: {reason}")
        self.source, self.line, self.reason = source, line, reason


@dataclass(frozen=True)
class ListSpec:
    """One list: which allegations count (``offences``: "vawg", "all" or a tuple of prefixes),
    its window, eligibility and size, and for an escalation list ``recent_days`` and ``factor``."""

    name: str
    offences: Union[str, tuple[str, ...]] = "vawg"
    window_days: int = 365
    min_allegations: int = 2
    top_n: int = 100
    recent_days: Optional[int] = None
    factor: Optional[Fraction] = None

    @property
    def escalation(self) -> bool:
        return self.recent_days is not None

    def counts(self, offence_code: str, vawg: bool) -> bool:
        """Whether this list counts an allegation of this offence code and VAWG flag."""
        return counts_allegation(self.offences, offence_code, vawg)

    def escalates(self, recent_cents: int, earlier_cents: int) -> bool:
        """The escalation test, exact: recent harm >= factor x the harm in the rest of the window
        (both in hundredths of a day). Always true for a list that is no escalation list."""
        factor = self.factor if self.factor is not None else Fraction(0)
        return recent_cents * factor.denominator >= factor.numerator * earlier_cents

    def settings_text(self) -> str:
        """The settings as one canonical line (what a fingerprint of a list without a file hashes)."""
        offences = self.offences if isinstance(self.offences, str) else ",".join(self.offences)
        return (f"name={self.name} offences={offences} window_days={self.window_days} "
                f"min_allegations={self.min_allegations} top_n={self.top_n} "
                f"recent_days={self.recent_days} factor={self.factor}")


def counts_allegation(offences: Union[str, tuple[str, ...]], offence_code: str, vawg: bool) -> bool:
    """Whether a list with these ``offences`` counts an allegation (SPEC §7); the rest are linked offences."""
    if offences == "vawg":
        return vawg
    if offences == "all":
        return True
    return offence_code.startswith(offences)


def default_lists(top_n: int = 100, window_days: int = 365, min_allegations: int = 2) -> tuple[ListSpec, ...]:
    """The one list ``vawg`` of SPEC §7, from the TOP_N, WINDOW_DAYS and MIN_ALLEGATIONS settings."""
    return (ListSpec(name=DEFAULT_LIST_NAME, offences="vawg", window_days=window_days,
                     min_allegations=min_allegations, top_n=top_n),)


def fingerprint(harm_table: bytes, lists_file: Optional[bytes], specs: Sequence[ListSpec] = ()) -> str:
    """The sha256 hex of what scoring depends on: the harm table's bytes and the lists file's bytes,
    or, when there is no lists file (``lists_file`` None), the settings of ``specs`` (the default list).

    A worker compares it with the one it kept to notice a changed table or file (SPEC §9).
    """
    if lists_file is None:
        lists_part = b"default-lists\n" + "\n".join(spec.settings_text() for spec in specs).encode()
    else:
        lists_part = b"lists-file\n" + lists_file
    digest = hashlib.sha256()
    for part in (b"harm-table\n" + harm_table, lists_part):
        digest.update(b"%d\n" % len(part))
        digest.update(part)
    return digest.hexdigest()


def rescore_cause(fingerprint_hex: str) -> str:
    """The ``cause`` of the ranking events a rescore emits: ``rescore:<first 12 hex>``."""
    return "rescore:" + fingerprint_hex[:12]


def load_lists(path: Union[str, Path]) -> tuple[ListSpec, ...]:
    """Read and check a lists file. Raises ListsError (also when it cannot be read)."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ListsError(name, 1, f"cannot read: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ListsError(name, data[:e.start].count(b"\n") + 1, f"not UTF-8 text ({e.reason})") from None
    return parse_lists(text, name)


def parse_lists(text: str, source: str = "<lists>") -> tuple[ListSpec, ...]:
    """Parse and check the text of a lists file. Raises ListsError naming the line."""
    text = text.removeprefix("\ufeff")
    try:
        doc = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as e:
        line, reason = _decode_error_line(str(e), text)
        raise ListsError(source, line, f"not valid TOML: {reason}") from None
    except ValueError:  # an integer of thousands of digits
        raise ListsError(source, _first_line(text, _LONG_NUMBER_RE), "not valid TOML: a number too long") from None
    except RecursionError:
        raise ListsError(source, _nesting_line(text), "not valid TOML: arrays or tables nested too deep") from None
    lines = _KeyLines(text)
    for key in doc:
        if key != "list":
            raise ListsError(source, lines.top_level(key), f"unknown key {key!r} (the file holds only [[list]] tables)")
    tables = doc.get("list")
    if tables is None or tables == []:
        raise ListsError(source, lines.top_level("list"), "no [[list]] tables (at least one list is required)")
    if not isinstance(tables, list):
        raise ListsError(source, lines.top_level("list"), "'list' must be [[list]] tables, not a single value "
                                                          "or [list]")
    specs: list[ListSpec] = []
    first_line: dict[str, int] = {}
    for index, table in enumerate(tables):
        if not isinstance(table, dict):
            raise ListsError(source, lines.top_level("list"), "'list' must hold tables ([[list]])")
        try:
            spec = _spec(table)
        except _RuleBroken as e:
            raise ListsError(source, lines.key(index, e.key), e.reason) from None
        if spec.name in first_line:
            raise ListsError(source, lines.key(index, "name"),
                             f"name {spec.name!r} is used twice (first on line {first_line[spec.name]})")
        first_line[spec.name] = lines.key(index, "name")
        specs.append(spec)
    return tuple(specs)


class _RuleBroken(Exception):
    def __init__(self, key: Optional[str], reason: str):
        super().__init__(reason)
        self.key, self.reason = key, reason


def _spec(table: dict[str, Any]) -> ListSpec:
    """One [[list]] table as a ListSpec; _RuleBroken names the key at fault (None: the table)."""
    for key in table:
        if key not in _KEYS:
            raise _RuleBroken(key, f"unknown key {key!r} (known: {', '.join(_KEYS)})")
    if "name" not in table:
        raise _RuleBroken(None, "this [[list]] has no name")
    name = table["name"]
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise _RuleBroken("name", f"name must be 1 to 32 of a-z, 0-9 and '-', got {_show(name)}")
    values = {key: _positive_int(key, table[key]) for key in _COUNTED if key in table}
    if ("recent_days" in table) != ("factor" in table):
        given, missing = ("recent_days", "factor") if "recent_days" in table else ("factor", "recent_days")
        raise _RuleBroken(given, f"{given} needs {missing}: an escalation list has both")
    window_days = values.get("window_days", 365)
    for key, most in (("window_days", MAX_DAYS), ("recent_days", MAX_DAYS), ("top_n", MAX_TOP_N)):
        if values.get(key, 0) > most:
            raise _RuleBroken(key, f"{key} must be at most {most}, got {values[key]}")
    if "recent_days" in values and values["recent_days"] >= window_days:
        raise _RuleBroken("recent_days", f"recent_days ({values['recent_days']}) must be less than "
                                         f"window_days ({window_days})")
    factor = _factor(table["factor"]) if "factor" in table else None
    offences = _offences(table["offences"]) if "offences" in table else "vawg"
    return ListSpec(name=name, offences=offences, window_days=window_days,
                    min_allegations=values.get("min_allegations", 2), top_n=values.get("top_n", 100),
                    recent_days=values.get("recent_days"), factor=factor)


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _RuleBroken(key, f"{key} must be a positive integer, got {_show(value)}")
    return value


def _factor(value: Any) -> Fraction:
    """A positive number up to MAX_FACTOR with at most 12 decimals, exact: 1.5 is Fraction(3, 2)."""
    bad = f"factor must be a positive number up to {MAX_FACTOR}, got {_show(value)}"
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise _RuleBroken("factor", bad)
    if isinstance(value, Decimal) and not value.is_finite():
        raise _RuleBroken("factor", bad)
    if not 0 < value <= MAX_FACTOR:
        raise _RuleBroken("factor", bad)
    if isinstance(value, Decimal):
        sign, digits, exponent = value.as_tuple()
        text = "".join(map(str, digits))
        if len(text) > 40 or exponent + len(text) - len(text.rstrip("0")) < -12:
            raise _RuleBroken("factor", f"factor must have at most 12 decimals, got {_show(value)}")
    return Fraction(value)


def _offences(value: Any) -> Union[str, tuple[str, ...]]:
    if value in ("vawg", "all"):
        return value
    if isinstance(value, str):
        raise _RuleBroken("offences", f"offences must be \"vawg\", \"all\" or a list of offence-code prefixes, "
                                      f"got {_show(value)}")
    if not isinstance(value, list) or not value:
        raise _RuleBroken("offences", "offences must be \"vawg\", \"all\" or a non-empty list of offence-code "
                                      f"prefixes such as [\"008/\", \"019/\"], got {_show(value)}")
    for prefix in value:
        if not isinstance(prefix, str) or not _PREFIX_RE.fullmatch(prefix):
            raise _RuleBroken("offences", f"offence-code prefix {_show(prefix)} is not the beginning of a code "
                                          "NNN/NN (e.g. \"008/\", \"019/08\", \"10\")")
    return tuple(dict.fromkeys(value))


def _show(value: Any) -> str:
    """A value as the file would spell it, for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return str(value).lower().replace("infinity", "inf")
    if isinstance(value, dict):
        return "a table"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _decode_error_line(message: str, text: str) -> tuple[int, str]:
    """The line and the reason out of a tomllib message ("... (at line 3, column 5)")."""
    m = re.search(r" \(at line (\d+), column (\d+)\)$", message)
    if m:
        return int(m.group(1)), f"{message[:m.start()]} (column {m.group(2)})"
    m = re.search(r" \(at end of document\)$", message)
    if m:
        return max(1, len(text.splitlines())), f"{message[:m.start()]} (at the end of the file)"
    return 1, message


_LONG_NUMBER_RE = re.compile(r"[0-9_]{1000,}")


def _first_line(text: str, pattern: re.Pattern) -> int:
    m = pattern.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else 1


def _nesting_line(text: str, limit: int = 100) -> int:
    """The first line where brackets and braces open more than ``limit`` deep."""
    depth = 0
    for number, line in enumerate(text.splitlines(), start=1):
        depth += line.count("[") + line.count("{") - line.count("]") - line.count("}")
        if depth > limit:
            return number
    return 1


_HEADER_RE = re.compile(r"\s*\[\[\s*(?:list|\"list\"|'list')\s*\]\]")
_SUBTABLE_RE = re.compile(r"\s*\[\[?\s*(?:list|\"list\"|'list')\s*\.\s*(\"[^\"]*\"|'[^']*'|[A-Za-z0-9_-]+)")
_KEY_RE = re.compile(r"\s*(\"[^\"]*\"|'[^']*'|[A-Za-z0-9_-]+)\s*[.=]")
_ANY_HEADER_RE = re.compile(r"\s*\[")


class _KeyLines:
    """Where keys are in the text: the line of each key of the n-th [[list]], and of top-level keys.

    The file has parsed already, so a line scan suffices; multi-line strings are stepped over.
    """

    def __init__(self, text: str):
        self.top: dict[str, int] = {}
        self.headers: list[int] = []
        self.keys: list[dict[str, int]] = []
        in_string: Optional[str] = None
        current: Optional[dict[str, int]] = self.top
        for number, line in enumerate(text.splitlines(), start=1):
            if in_string is not None:
                if line.count(in_string) % 2 == 1:
                    in_string = None
                continue
            current = self._scan(number, line, current)
            for quote in ('"""', "'''"):
                if line.count(quote) % 2 == 1:
                    in_string = quote
                    break

    def _scan(self, number: int, line: str, current: Optional[dict[str, int]]) -> Optional[dict[str, int]]:
        if _HEADER_RE.match(line):
            self.headers.append(number)
            self.keys.append({})
            return self.keys[-1]
        sub = _SUBTABLE_RE.match(line)
        if sub and self.keys:
            self.keys[-1].setdefault(sub.group(1).strip("\"'"), number)
            return None
        if _ANY_HEADER_RE.match(line):
            name = line.strip().strip("[]").split(".")[0].strip().strip("\"'")
            self.top.setdefault(name, number)
            return None
        key = _KEY_RE.match(line)
        if key and current is not None:
            current.setdefault(key.group(1).strip("\"'"), number)
        return current

    def top_level(self, key: str) -> int:
        return self.top.get(key, self.headers[0] if self.headers else 1)

    def key(self, index: int, key: Optional[str]) -> int:
        """The line of ``key`` in the index-th [[list]] (its header when not found, or ``key`` is None)."""
        if index >= len(self.headers):
            return self.top_level("list")
        found = self.keys[index].get(key) if key is not None else None
        return found if found is not None else self.headers[index]
