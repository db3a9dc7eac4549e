"""The harm table of SPEC §4: offence code -> days of harm (and title, VAWG flag).

A CSV with a header row holding at least ``offence_code`` and ``days``, optionally
``title`` and ``vawg``. Days are kept as exact integer hundredths (``days_cents``) so
that scores can be summed and un-summed without any rounding (SPEC §1: "scores are
exact"). The project's default table is ``schemas/data/harm-table.csv`` (see
``schemas/data/HARM-TABLE.md`` for where its values come from).

Every problem with a table file raises :class:`HarmTableError`, whose message names the
file, the line and what is wrong, e.g. ``harm-table.csv line 7: days '-3' is negative``.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Optional, Union

__all__ = [
    "DEFAULT_HARM_TABLE",
    "HarmEntry",
    "HarmTable",
    "HarmTableError",
    "OFFENCE_CODE_RE",
    "days_to_str",
    "harm_table_bytes",
    "load_harm_table",
    "parse_days",
    "parse_bool",
]

DEFAULT_HARM_TABLE = str(Path(__file__).parent / "data/harm-table.csv")

#: A Home Office classification, ``NNN/NN`` (ASCII digits only).
OFFENCE_CODE_RE = re.compile(r"^[0-9]{3}/[0-9]{2}$")

_NUMBER_RE = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


class HarmTableError(ValueError):
    """A harm table file that cannot be used; the message names file, line and problem."""


@dataclass(frozen=True)
class HarmEntry:
    code: str
    title: str
    days_cents: int  # days * 100, exact
    vawg: bool

    @property
    def days(self) -> Decimal:
        """The days as an exact Decimal (e.g. Decimal('182.5'))."""
        return Decimal(days_to_str(self.days_cents))

    @property
    def days_str(self) -> str:
        return days_to_str(self.days_cents)


def days_to_str(cents: int) -> str:
    """Render integer hundredths of a day exactly: 18250 -> '182.5', 182500 -> '1825', 25 -> '0.25'."""
    cents = int(cents)
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:02d}".rstrip("0")


def parse_days(text: str) -> int:
    """Parse a days value into integer hundredths; ValueError with a reason when it is not valid."""
    s = text.strip()
    if not s:
        raise ValueError("days is empty")
    if not _NUMBER_RE.match(s):
        try:
            d = Decimal(s)
        except (InvalidOperation, ValueError):
            raise ValueError(f"days {text!r} is not a number") from None
        if not d.is_finite():
            raise ValueError(f"days {text!r} is not a finite number")
        raise ValueError(f"days {text!r} is not a plain decimal number")
    d = Decimal(s)
    if d < 0:
        raise ValueError(f"days {text!r} is negative")
    cents = d * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"days {text!r} has more than two decimals")
    return int(cents)


def parse_bool(text: str) -> bool:
    """true/false, 1/0, yes/no (any case); empty means false. ValueError otherwise."""
    s = text.strip().lower()
    if s == "" or s in _FALSE:
        return False
    if s in _TRUE:
        return True
    raise ValueError(f"vawg {text!r} is not true/false")


class HarmTable:
    """Offence code -> :class:`HarmEntry`. Iterating yields the entries in file order."""

    def __init__(self, entries: Union[Iterable[HarmEntry], Mapping[str, HarmEntry]] = (), source: str = "<memory>"):
        if isinstance(entries, Mapping):
            entries = entries.values()
        self._entries: dict[str, HarmEntry] = {}
        for e in entries:
            if e.code in self._entries:
                raise HarmTableError(f"{source}: duplicate offence_code {e.code!r}")
            self._entries[e.code] = e
        self.source = str(source)
        self.vawg_codes: frozenset[str] = frozenset(c for c, e in self._entries.items() if e.vawg)

    def get(self, code: str) -> Optional[HarmEntry]:
        return self._entries.get(code)

    def __contains__(self, code: object) -> bool:
        return code in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[HarmEntry]:
        return iter(self._entries.values())

    def codes(self) -> list[str]:
        return list(self._entries)

    def __repr__(self) -> str:
        return f"HarmTable({len(self)} codes from {self.source})"


def load_harm_table(path: Union[str, Path, None] = None) -> HarmTable:
    """Read and check a harm table CSV (None: the shipped default). Raises HarmTableError."""
    path = DEFAULT_HARM_TABLE if path is None else path
    name = str(path)
    try:
        with open(path, "r", encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise HarmTableError(f"{name}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise HarmTableError(f"{name}: cannot read: {e.strerror or e}") from None
    return _parse(text, name)


def harm_table_bytes(path: Union[str, Path, None] = None) -> bytes:
    """The table file's bytes as they are (None: the shipped default), for the scoring fingerprint."""
    path = DEFAULT_HARM_TABLE if path is None else path
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise HarmTableError(f"{path}: cannot read: {e.strerror or e}") from None


def _parse(text: str, name: str) -> HarmTable:
    if not text.strip():
        raise HarmTableError(f"{name}: empty file (a header row with offence_code,days is required)")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header: Optional[list[str]] = None
        header_line = 0
        entries: list[HarmEntry] = []
        first_line: dict[str, int] = {}
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if header is None:
                header = [c.strip().lower() for c in row]
                header_line = line
                for col in ("offence_code", "days"):
                    if col not in header:
                        raise HarmTableError(f"{name} line {line}: header has no '{col}' column (found: {','.join(header)})")
                seen: set[str] = set()
                for col in header:
                    if col and col in seen:
                        raise HarmTableError(f"{name} line {line}: header repeats column '{col}'")
                    seen.add(col)
                idx = {col: i for i, col in enumerate(header)}
                continue
            if len(row) != len(header):
                raise HarmTableError(f"{name} line {line}: {len(row)} fields, but the header has {len(header)}")
            code = row[idx["offence_code"]].strip()
            if not code:
                raise HarmTableError(f"{name} line {line}: offence_code is empty")
            if not OFFENCE_CODE_RE.fullmatch(code):
                raise HarmTableError(f"{name} line {line}: offence_code {code!r} is not of the form NNN/NN")
            if code in first_line:
                raise HarmTableError(f"{name} line {line}: duplicate offence_code {code!r} (first on line {first_line[code]})")
            try:
                cents = parse_days(row[idx["days"]])
            except ValueError as e:
                raise HarmTableError(f"{name} line {line}: {e}") from None
            vawg = False
            if "vawg" in idx:
                try:
                    vawg = parse_bool(row[idx["vawg"]])
                except ValueError as e:
                    raise HarmTableError(f"{name} line {line}: {e}") from None
            title = row[idx["title"]].strip() if "title" in idx else ""
            first_line[code] = line
            entries.append(HarmEntry(code=code, title=title, days_cents=cents, vawg=vawg))
    except csv.Error as e:
        raise HarmTableError(f"{name} line {reader.line_num}: malformed CSV: {e}") from None
    if header is None:  # pragma: no cover - only blank lines, caught above
        raise HarmTableError(f"{name}: empty file")
    if not entries:
        raise HarmTableError(f"{name} line {header_line}: header but no offence rows")
    return HarmTable(entries, source=name)
