"""Derive the shipped harm table from the Cambridge Crime Harm Index 2020 values sheet.

    python -m schemas.build_harm_table [SRC] [OUT]

SRC defaults to ``shared/data/cchi-2020-values.csv`` next to the project checkout, OUT to
``schemas/data/harm-table.csv``. The rules below are documented in
``schemas/data/HARM-TABLE.md``; keep the two in step.

1. Offence code: the ``HOME_OFFICE_CLASSIFICATION`` column, stripped. A value already of
   the form ``NNN/NN`` is used as is. Otherwise its digits are taken; exactly five digits
   become ``NNN/NN`` (``00200`` -> ``002/00``) provided they agree with the row's
   ``HO_CODE``/``HO_SUB_CODE`` columns when those are numbers; any other value drops the
   row (reported on stderr).
2. Several rows per code: rows that are *variants* of the offence are set aside when at
   least one plain row remains: titles naming "Assault Police", "Multiple Undefined
   Offenders", "(outcomes only)", or starting "Attempted". Among the rows left, the
   lowest CCHI value is taken: that is the CCHI's own rule (the starting point of the
   least serious category for a first offender).
3. Title: the shortest of the FULL_OFFENCE_TITLE / SHORT_TITLE texts of the rows left
   that carry the chosen value (ties: file order, full title first), whitespace collapsed.
4. VAWG: see :func:`row_is_vawg`; a code is VAWG when any of its rows left by rule 2 is.
5. Additions not in the 2020 sheet: :data:`ADDITIONS` (non-fatal strangulation 008/77).
"""
from __future__ import annotations

import csv
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

from schemas.harm_table import OFFENCE_CODE_RE, days_to_str, parse_days

DEFAULT_SRC = Path(__file__).resolve().parents[2] / "shared/data/cchi-2020-values.csv"
DEFAULT_OUT = Path(__file__).resolve().parent / "data/harm-table.csv"

HEADER = ("offence_code", "days", "title", "vawg")

# --- rule 2: variant rows -------------------------------------------------------------
_VARIANT_RE = re.compile(r"assault\s+police|multiple\s+undefined\s+offenders|\(outcomes\s+only\)|^\s*attempted\b", re.I)

# --- rule 4: VAWG ----------------------------------------------------------------------
VAWG_GROUPS = frozenset({"SEXUAL OFFENCES"})
#: Violence against the person counts, except these sub-sub-groups (assaults on
#: constables; deaths and injuries caused by driving) ...
VAP_GROUP = "VIOLENCE AGAINST THE PERSON"
VAP_EXCLUDED_SUB_SUB_GROUPS = frozenset({
    "ASSAULT WITH INJURY ON A CONSTABLE",
    "ASSAULT WITHOUT INJURY ON A CONSTABLE",
    "CAUSING DEATH BY AGG VEHICLE TAKING",
    "DEATH BY CARELESS OR INCON DRIVING",
    "DEATH BY DRIVING UNLI, DISQ OR UNINS",
    "DEATH OR SER INJ BY DANGEROUS DRIVING",
})
#: ... and titles about dogs and driving (dangerous dogs, furious driving, road users),
#: assaults on officers and workers in the execution of their duty, resisting
#: apprehension, assisting an offender, and safety at children's entertainments.
VAP_EXCLUDED_TITLE_RE = re.compile(
    r"\bdogs?\b|\bdriving\b|road-users|constable|emergency worker|\bofficer\b"
    r"|designated or accredited person|resist(?:ing)? apprehension|assisting offender|entertainment",
    re.I,
)
#: Outside those groups: harassment/stalking-type public order offences ...
HARASSMENT_GROUPS = frozenset({"PUBLIC ORDER OFFENCES", "NON-NOTIFIABLE"})
HARASSMENT_TITLE_RE = re.compile(r"harassment|stalking", re.I)
#: ... breaches of protective orders, and the exploitation of prostitution.
PROTECTIVE_ORDER_TITLE_RE = re.compile(r"non-molestation|marriage protection|restraining order|forced marriage|genital mutilation", re.I)
VAWG_SUB_SUB_GROUPS = frozenset({"EXPLOITATION OF PROSTITUTION"})


@dataclass(frozen=True)
class SourceRow:
    line: int           # 1-based line of the record's end in the source CSV
    raw_code: str
    code: Optional[str]  # normalised, or None when the row is dropped
    days_cents: int
    full_title: str
    short_title: str
    group: str
    sub_group: str
    sub_sub_group: str

    @property
    def titles(self) -> str:
        return f"{self.full_title} | {self.short_title}"


@dataclass(frozen=True)
class OutRow:
    code: str
    days_cents: int
    title: str
    vawg: bool

    def as_csv(self) -> tuple[str, str, str, str]:
        return (self.code, days_to_str(self.days_cents), self.title, "true" if self.vawg else "false")


#: Offences the 2020 sheet does not have. See HARM-TABLE.md for the sources.
ADDITIONS: tuple[OutRow, ...] = (
    OutRow(code="008/77", days_cents=36500, title="Non-fatal strangulation or suffocation", vawg=True),
)


def _int_or_none(s: str) -> Optional[int]:
    s = (s or "").strip()
    return int(s) if re.fullmatch(r"[0-9]+", s) else None


def normalise_code(raw: str, ho_code: str = "", ho_sub_code: str = "") -> Optional[str]:
    """Rule 1. Returns ``NNN/NN`` or None (row to be dropped)."""
    s = (raw or "").strip()
    if OFFENCE_CODE_RE.fullmatch(s):
        return s
    digits = re.sub(r"[^0-9]", "", s)
    if len(digits) != 5:
        return None
    code = f"{digits[:3]}/{digits[3:]}"
    main, sub = _int_or_none(ho_code), _int_or_none(ho_sub_code)
    if main is not None and sub is not None and code != f"{main:03d}/{sub:02d}":
        return None
    return code


def _clean(s: str) -> str:
    return re.sub(r"\s+", " ", (s or "")).strip()


def read_source(path: Path | str, warn=None) -> list[SourceRow]:
    """All rows of the CCHI values sheet, with normalised codes (None: dropped)."""
    rows: list[SourceRow] = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        for rec in reader:
            raw = rec.get("HOME_OFFICE_CLASSIFICATION") or ""
            code = normalise_code(raw, rec.get("HO_CODE", ""), rec.get("HO_SUB_CODE", ""))
            if code is None and warn:
                warn(f"{path} line {reader.line_num}: offence code {raw!r} cannot be normalised; row dropped")
            rows.append(SourceRow(
                line=reader.line_num,
                raw_code=raw,
                code=code,
                days_cents=parse_days(rec["CCHI Score"]),
                full_title=_clean(rec.get("FULL_OFFENCE_TITLE", "")),
                short_title=_clean(rec.get("SHORT_TITLE", "")),
                group=_clean(rec.get("GROUP", "")).upper(),
                sub_group=_clean(rec.get("SUB_GROUP", "")).upper(),
                sub_sub_group=_clean(rec.get("SUB_SUB_GROUP", "")).upper(),
            ))
    return rows


def is_variant(row: SourceRow) -> bool:
    return bool(_VARIANT_RE.search(row.full_title) or _VARIANT_RE.search(row.short_title))


def plain_rows(rows: Sequence[SourceRow]) -> list[SourceRow]:
    """Rule 2, first step: drop variant rows, unless that would leave none."""
    plain = [r for r in rows if not is_variant(r)]
    return plain or list(rows)


def choose_days(rows: Sequence[SourceRow]) -> int:
    """Rule 2: the lowest value among the plain rows."""
    return min(r.days_cents for r in plain_rows(rows))


def choose_title(rows: Sequence[SourceRow]) -> str:
    """Rule 3."""
    cents = choose_days(rows)
    best: Optional[str] = None
    for r in plain_rows(rows):
        if r.days_cents != cents:
            continue
        for t in (r.full_title, r.short_title):
            t = t.rstrip(". ")
            if t and (best is None or len(t) < len(best)):
                best = t
    return best or ""


def row_is_vawg(row: SourceRow) -> bool:
    """Rule 4 for one source row."""
    if row.group in VAWG_GROUPS:
        return True
    if row.group == VAP_GROUP:
        if row.sub_sub_group in VAP_EXCLUDED_SUB_SUB_GROUPS:
            return False
        if VAP_EXCLUDED_TITLE_RE.search(row.titles):
            return False
        return True
    if row.group in HARASSMENT_GROUPS and HARASSMENT_TITLE_RE.search(row.titles):
        return True
    if PROTECTIVE_ORDER_TITLE_RE.search(row.titles):
        return True
    if row.sub_sub_group in VAWG_SUB_SUB_GROUPS:
        return True
    return False


def code_is_vawg(rows: Sequence[SourceRow]) -> bool:
    return any(row_is_vawg(r) for r in plain_rows(rows))


def build(rows: Iterable[SourceRow], additions: Iterable[OutRow] = ADDITIONS) -> list[OutRow]:
    """Group the source rows by code and apply rules 2-5; sorted by code."""
    by_code: dict[str, list[SourceRow]] = {}
    for r in rows:
        if r.code is not None:
            by_code.setdefault(r.code, []).append(r)
    out = {
        code: OutRow(code=code, days_cents=choose_days(rs), title=choose_title(rs), vawg=code_is_vawg(rs))
        for code, rs in by_code.items()
    }
    for add in additions:
        if add.code in out:
            raise ValueError(f"addition {add.code} is already in the source table")
        out[add.code] = add
    return [out[c] for c in sorted(out)]


def write(rows: Iterable[OutRow], out: Path | str) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(HEADER)
        for r in rows:
            w.writerow(r.as_csv())


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 2 or any(a in ("-h", "--help") for a in args):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    src = Path(args[0]) if args else DEFAULT_SRC
    out = Path(args[1]) if len(args) > 1 else DEFAULT_OUT
    warn = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    rows = build(read_source(src, warn=warn))
    write(rows, out)
    print(f"{out}: {len(rows)} offence codes, {sum(r.vawg for r in rows)} VAWG", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
