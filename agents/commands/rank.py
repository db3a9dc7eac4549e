"""`harmrank rank FILE`: the batch reference ranking, printed as a table or JSON (SPEC §5)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Optional

from schemas.events import us_to_iso
from schemas.harm_table import HarmTableError, load_harm_table
from schemas.validate import parse_timestamp
from streams.batch import rank_lines, ranking_rows

from ..settings import add_common_args, help_text
from . import Fail, command, settings_of


@command("harmrank rank")
def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="harmrank rank",
                                     description="The ranking as of a time, from a JSON-lines file of input events.")
    parser.add_argument("file", help="JSON-lines file of input events ('-' = stdin)")
    parser.add_argument("--as-of", help="RFC 3339 time (default: the newest `at` of the accepted events)")
    parser.add_argument("--top", type=int, dest="top_n", metavar="N", help=help_text("top_n"))
    parser.add_argument("--list", dest="list_name", metavar="NAME",
                        help="the list to print (SPEC §7; default: the first list)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_common_args(parser, only=["window_days", "retention_days", "min_allegations", "harm_table", "lists"])
    args = parser.parse_args(argv)
    settings = settings_of(args)
    specs = settings.list_specs
    names = [spec.name for spec in specs]
    if args.list_name is not None and args.list_name not in names:
        raise Fail(f"no list {args.list_name!r} (the lists: {', '.join(names)})")
    chosen = names.index(args.list_name) if args.list_name is not None else 0
    if args.top_n is not None and settings.lists is not None:  # --top N: the first N of the list printed
        specs = (*specs[:chosen], dataclasses.replace(specs[chosen], top_n=settings.top_n), *specs[chosen + 1:])
    spec = specs[chosen]
    try:
        as_of = parse_timestamp(args.as_of) if args.as_of else None
    except ValueError as exc:
        raise Fail(str(exc)) from None
    try:
        harm = load_harm_table(settings.harm_table)
    except (HarmTableError, OSError) as exc:
        raise Fail(f"bad harm table: {exc}") from None

    def report(lineno: int, reason: str) -> None:
        print(f"line {lineno}: {reason}", file=sys.stderr)

    try:
        fh = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")
    except OSError as exc:
        raise Fail(f"cannot read {args.file}: {exc.strerror}") from None
    try:
        with fh:
            result = rank_lines(fh, harm, as_of=as_of, on_reject=report, retention_days=settings.retention_days,
                                lists=specs)
    except OSError as exc:
        raise Fail(f"error reading {args.file}: {exc}") from None
    rows = ranking_rows(result, spec.name)
    print(f"{result.lines} events: {result.accepted} accepted, {result.duplicates} duplicates, "
          f"{result.rejected} skipped" + (f", {result.after_as_of} after --as-of not applied"
                                          if result.after_as_of else ""), file=sys.stderr)
    try:
        if args.json:
            print(json.dumps(rows))
        else:
            as_of_text = us_to_iso(result.as_of) if result.as_of is not None else "-"
            print(f"{spec.name}: top {spec.top_n} as of {as_of_text}")
            print(f"{'rank':>4}  {'suspect':<20} {'score (days)':>12} {'allegations':>11} {'victims':>7}")
            for r in rows:
                print(f"{r['rank']:>4}  {r['suspect_id']:<20} {r['score']:>12} {r['allegations']:>11} "
                      f"{r['victims']:>7}")
    except BrokenPipeError:
        pass
    return 0
