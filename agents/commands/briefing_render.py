"""The briefing of SPEC §8 checked and rendered: as Markdown, or as one printable HTML page.

Pure functions of the §8 object: :func:`check_briefing` first, so an object that is not the §8
one gives a one-line :class:`BriefingError`, not a traceback or a page with holes. Every value is
escaped for what it is printed into. `harmrank briefing` fetches the object and calls these.
"""
from __future__ import annotations

import html
import re
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Optional

from schemas.validate import parse_timestamp

__all__ = ["REASONS", "BriefingError", "check_briefing", "format_score", "format_time", "render_html",
           "render_markdown"]

REASONS = {
    "displaced": "displaced: others overtook him",
    "expired": "expired: allegations aged out of the window",
    "corrected": "corrected: a cancel, reclassification or unlink lowered him",
    "merged": "merged: his record was merged into another",
}
_MEMBER = {"rank": "int", "suspect_id": "str", "score": "number", "allegations": "int", "victims": "int",
           "entered_at": "time", "new": "bool", "linked_offences": "int"}
_EXIT = {"suspect_id": "str", "at": "time", "reason": "str", "score": "number"}
_COUNTS = {"members": "int", "new": "int", "exited": "int", "eligible": "int"}
_KINDS = {"int": "an integer", "number": "a number", "bool": "true or false", "str": "a string",
          "time": "a time or null"}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_LARGEST = 10**15  # larger numbers (and inf, nan) are no score or count
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # every str.splitlines() break too
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&!#])")


class BriefingError(ValueError):
    """A briefing that cannot be fetched or is not the §8 object; the message is one line."""


# --------------------------------------------------------------------------- the §8 object

def check_briefing(obj: Any) -> dict:
    """The object if it has every field of SPEC §8 with its type, else BriefingError naming the first fault.

    ``as_of``, ``since`` and ``entered_at`` may be null (a worker that has seen no event yet).
    """
    if not isinstance(obj, dict):
        raise BriefingError("the briefing is not a JSON object")
    _check_fields(obj, {"list": "str", "as_of": "time", "since": "time"}, "")
    for key, fields in (("members", _MEMBER), ("exited", _EXIT)):
        rows = obj.get(key)
        if not isinstance(rows, list):
            raise BriefingError(f"the briefing's '{key}' is missing or not a list")
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                raise BriefingError(f"the briefing's '{key}[{index}]' is not an object")
            _check_fields(row, fields, f"{key}[{index}].")
    if not isinstance(obj.get("counts"), dict):
        raise BriefingError("the briefing's 'counts' is missing or not an object")
    _check_fields(obj["counts"], _COUNTS, "counts.")
    return obj


def _fits(kind: str, value: Any) -> bool:
    if kind in ("int", "number"):
        number = (int,) if kind == "int" else (int, float)
        return isinstance(value, number) and not isinstance(value, bool) and abs(value) <= _LARGEST
    return {"bool": isinstance(value, bool), "str": isinstance(value, str),
            "time": value is None or isinstance(value, str)}[kind]


def _check_fields(obj: dict, fields: dict[str, str], where: str) -> None:
    for name, kind in fields.items():
        if name not in obj:
            raise BriefingError(f"the briefing has no '{where}{name}'")
        if not _fits(kind, obj[name]):
            raise BriefingError(f"the briefing's '{where}{name}' is not {_KINDS[kind]}: "
                                f"{_printable(repr(obj[name]))[:60]}")


# --------------------------------------------------------------------------- values as text

def _printable(text: str) -> str:
    """Control characters (terminal escapes, newlines, U+2028/U+2029) shown as U+FFFD, so a value cannot act."""
    return _CONTROL.sub("\ufffd", text)


def format_score(score: float) -> str:
    """Harm days with thousands separators and at most two decimals: 2419.0 -> '2,419', 182.5 -> '182.5'."""
    exact = Decimal(repr(score)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    text = f"{exact:,.2f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_time(stamp: Optional[str], zone: bool = True) -> str:
    """'2025-03-01T11:00:00+01:00' -> '2025-03-01 10:00 UTC' (in UTC, to the minute); '-' for none.

    ``zone=False`` leaves ' UTC' off, for table columns whose heading says it.
    """
    if stamp is None:
        return "-"
    try:
        when = _EPOCH + timedelta(microseconds=parse_timestamp(stamp))
    except (ValueError, OverflowError):
        when = None
    if when is None:
        return _printable(stamp)
    return f"{when:%Y-%m-%d %H:%M}" + (" UTC" if zone else "")


def _reason(code: str) -> str:
    return REASONS.get(code, code)


# --------------------------------------------------------------------------- Markdown

def _md(value: Any) -> str:
    return _MD_SPECIAL.sub(r"\\\1", _printable(str(value)))


def render_markdown(briefing: dict) -> str:
    """The briefing as Markdown: heading, counts, the members table (new ones marked), the exits."""
    b = check_briefing(briefing)
    counts = b["counts"]
    out = [f"# Tasking briefing: list {_md(b['list'])}", "",
           f"Ranking as of {_md(format_time(b['as_of']))}; changes since {_md(format_time(b['since']))}.", "",
           f"**Members** {counts['members']} · **New since** {counts['new']} · "
           f"**Exited since** {counts['exited']} · **Eligible** {counts['eligible']}", "",
           f"## Members: {counts['members']} of {counts['eligible']} eligible", ""]
    if b["members"]:
        out += ["| Rank | Suspect | New | Harm (days) | Allegations | Victims | Linked offences | Listed since (UTC) |",
                "|---:|---|---|---:|---:|---:|---:|---|"]
        out += [f"| {m['rank']} | {_md(m['suspect_id'])} | {'**NEW**' if m['new'] else ''} | "
                f"{format_score(m['score'])} | {m['allegations']} | {m['victims']} | {m['linked_offences']} | "
                f"{_md(format_time(m['entered_at'], zone=False))} |" for m in b["members"]]
    else:
        out.append("No members.")
    out += ["", f"## Exited since {_md(format_time(b['since']))}", ""]
    if b["exited"]:
        out += ["| Suspect | Exited (UTC) | Reason | Harm at exit (days) |", "|---|---|---|---:|"]
        out += [f"| {_md(e['suspect_id'])} | {_md(format_time(e['at'], zone=False))} | {_md(_reason(e['reason']))} | "
                f"{format_score(e['score'])} |" for e in b["exited"]]
    else:
        out.append("No exits.")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- HTML

_CSS = """
@page { size: A4; margin: 14mm 12mm 14mm 12mm;
  @top-center { content: "OFFICIAL-SENSITIVE: PERSONAL DATA"; font: bold 8pt sans-serif; letter-spacing: .08em; }
  @bottom-right { content: "Page " counter(page) " of " counter(pages); font: 7.5pt sans-serif; color: #444; } }
@media print { .marking { display: none; } }
@media screen { body { margin: 8mm auto; } }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, Helvetica, sans-serif; font-size: 9.5pt;
       color: #111; margin: 0 auto; max-width: 186mm; line-height: 1.3; }
.marking { text-align: center; font-weight: bold; letter-spacing: .12em; font-size: 8.5pt;
           border-top: 2px solid #111; border-bottom: 2px solid #111; padding: 1mm 0; margin-bottom: 4mm; }
h1 { font-size: 16pt; margin: 0 0 1mm 0; }
h1 .list { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; background: #eef1f6;
           padding: 0 1.5mm; border-radius: 1mm; }
h2 { break-after: avoid; font-size: 11.5pt; margin: 6mm 0 2mm 0; padding-bottom: 1mm;
     border-bottom: 1px solid #1d3557; }
.period { color: #333; margin: 0 0 4mm 0; }
.counts { display: flex; gap: 3mm; margin: 0 0 2mm 0; }
.count { flex: 1; border: 1px solid #9aa5b5; border-radius: 1.5mm; padding: 2mm 3mm; background: #f4f6f9; }
.count b { display: block; font-size: 15pt; }
.count span { font-size: 8pt; text-transform: uppercase; letter-spacing: .05em; color: #333; }
.count.new { border-color: #b5651d; background: #fff4e5; }
table { width: 100%; border-collapse: collapse; }
thead { display: table-header-group; }
tr { break-inside: avoid; page-break-inside: avoid; }
th { text-align: left; font-size: 8pt; text-transform: uppercase; letter-spacing: .03em; color: #fff;
     background: #1d3557; padding: 1.4mm 2mm; }
td { padding: .9mm 2mm; border-bottom: 1px solid #d5dae1; vertical-align: top; }
td.when { white-space: nowrap; }
tbody tr:nth-child(even) td { background: #f7f8fa; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.id { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; font-weight: bold; }
tbody tr.new td { background: #fff4e5; }
tbody tr.new td:first-child { box-shadow: inset 1.2mm 0 0 #b5651d; }
.badge { display: inline-block; font-size: 7pt; font-weight: bold; letter-spacing: .06em; color: #fff;
         background: #b5651d; border-radius: .8mm; padding: .2mm 1.2mm; }
.none { color: #555; font-style: italic; }
.notes { margin-top: 6mm; font-size: 7.5pt; color: #444; border-top: 1px solid #d5dae1; padding-top: 2mm; }
.notes p { margin: 0 0 1mm 0; }
"""


def _h(value: Any) -> str:
    return html.escape(_printable(str(value)), quote=True)


def _css_string(text: str) -> str:
    """A CSS string literal of any text: all but letters, digits, space and '-:.' as hex escapes."""
    return '"' + "".join(c if c.isascii() and (c.isalnum() or c in " -:.") else f"\\{ord(c):06x} "
                         for c in _printable(text)) + '"'


def _member_rows(members: list[dict]) -> str:
    rows = []
    for m in members:
        badge = '<span class="badge">NEW</span>' if m["new"] else ""
        rows.append(f'<tr class="{"new" if m["new"] else "kept"}"><td class="num">{_h(m["rank"])}</td>'
                    f'<td class="id">{_h(m["suspect_id"])}</td><td>{badge}</td>'
                    f'<td class="num">{_h(format_score(m["score"]))}</td><td class="num">{_h(m["allegations"])}</td>'
                    f'<td class="num">{_h(m["victims"])}</td><td class="num">{_h(m["linked_offences"])}</td>'
                    f'<td class="when">{_h(format_time(m["entered_at"], zone=False))}</td></tr>')
    return "\n".join(rows) or '<tr><td colspan="8" class="none">No members.</td></tr>'


def _exit_rows(exited: list[dict]) -> str:
    rows = [f'<tr><td class="id">{_h(e["suspect_id"])}</td>'
            f'<td class="when">{_h(format_time(e["at"], zone=False))}</td><td>{_h(_reason(e["reason"]))}</td>'
            f'<td class="num">{_h(format_score(e["score"]))}</td></tr>' for e in exited]
    return "\n".join(rows) or '<tr><td colspan="4" class="none">No exits.</td></tr>'


def render_html(briefing: dict) -> str:
    """The briefing as one self-contained HTML page (inline CSS, no scripts, no external assets), for A4."""
    b = check_briefing(briefing)
    counts, as_of, since = b["counts"], _h(format_time(b["as_of"])), _h(format_time(b["since"]))
    footer = f"harmrank briefing: list {b['list']}, as of {format_time(b['as_of'])}"
    boxes = "".join(f'<div class="count{" new" if key == "new" else ""}"><b>{_h(counts[key])}</b>'
                    f'<span>{label}</span></div>'
                    for key, label in (("members", "Members"), ("new", "New since"), ("exited", "Exited since"),
                                       ("eligible", "Eligible")))
    return f"""<!DOCTYPE html>
<html lang="en-GB">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Tasking briefing: {_h(b["list"])} as of {as_of}</title>
<style>{_CSS}@page {{ @bottom-left {{ content: {_css_string(footer)}; font: 7.5pt sans-serif; color: #444; }} }}
</style>
</head>
<body>
<div class="marking">OFFICIAL-SENSITIVE: PERSONAL DATA</div>
<h1>Tasking briefing: list <span class="list">{_h(b["list"])}</span></h1>
<p class="period">Ranking as of <b>{as_of}</b>. Changes since <b>{since}</b>.</p>
<div class="counts">{boxes}</div>
<h2>Members: {_h(counts["members"])} of {_h(counts["eligible"])} eligible</h2>
<table>
<thead><tr><th class="num">Rank</th><th>Suspect</th><th></th><th class="num">Harm (days)</th>
<th class="num">Allegations</th><th class="num">Victims</th><th class="num">Linked offences</th>
<th>Listed since (UTC)</th></tr></thead>
<tbody>
{_member_rows(b["members"])}
</tbody>
</table>
<h2>Exited since {since}</h2>
<table>
<thead><tr><th>Suspect</th><th>Exited (UTC)</th><th>Reason</th><th class="num">Harm at exit (days)</th></tr></thead>
<tbody>
{_exit_rows(b["exited"])}
</tbody>
</table>
<div class="notes">
<p>Harm: the Cambridge Crime Harm Index days of the allegations this list counts in its window
(for an escalation list, in its recent part).
Linked offences: his allegations in the window that this list does not count.
NEW: entered the list after {since}.</p>
</div>
</body>
</html>
"""
