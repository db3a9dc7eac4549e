"""What the API answers (SPEC §6-§8), read through the core: lists, rankings, a suspect's standing, the briefing.

Every body is built from the stages' own objects (`Ranker`, `Ledger.explain`,
`streams.briefing`), never from storage keys. The views in `agents/web.py`
route a request to the worker that holds the state and call these.
"""
from __future__ import annotations

from typing import Callable, Optional

from schemas.events import US_PER_DAY, us_to_iso
from streams.briefing import briefing_body
from streams.ledger import Ledger
from streams.partitioning import partition_for
from streams.ranker import Ranker
from streams.register import resolve

from .compat import held_partitions
from .faust_store import PartitionStore
from .topology import Runtime


def lists_body(rt: Runtime) -> dict:
    """`GET /lists`: every list and its settings, the default first; `eligible_here` counts this worker's part."""
    out = []
    for spec in rt.settings.list_specs:
        out.append({"name": spec.name, "offences": spec.offences if isinstance(spec.offences, str)
                    else list(spec.offences), "window_days": spec.window_days,
                    "min_allegations": spec.min_allegations, "top_n": spec.top_n, "recent_days": spec.recent_days,
                    "factor": None if spec.factor is None else str(spec.factor),
                    "eligible_here": rt.ledger.stats(spec.name)[1]})
    return {"default": out[0]["name"], "lists": out}


def ranker_of(rt: Runtime, name: Optional[str]) -> Optional[Ranker]:
    """The held ranker of a list (None: the default list), or None when this worker does not hold it."""
    return rt.ranker.ranker_of(name) if rt.ranker_held else None


def ranking_body(rt: Runtime, name: Optional[str] = None) -> dict:
    """`GET /ranking[?list=NAME]`."""
    name = name or rt.settings.list_specs[0].name
    ranker = ranker_of(rt, name)
    entries = [] if ranker is None else [
        {"rank": rank, "suspect_id": suspect, "score": s.score / 100, "allegations": s.allegations,
         "victims": s.victims} for rank, suspect, s in ranker.ranking()]
    as_of = None if ranker is None or not ranker.as_of else us_to_iso(ranker.as_of)
    return {"list": name, "as_of": as_of, "entries": entries}


def canonical(app, suspect_id: str) -> str:
    """The id his record lives under now (merges), from any register partition this worker holds
    (every register partition keeps the whole alias forest)."""
    register_table = app.tables["register"]
    held = held_partitions(register_table)
    return resolve(PartitionStore(register_table, held[0]), suspect_id) if held else suspect_id


def ledger_of(app, rt: Runtime, suspect: str) -> Optional[Ledger]:
    """A reader of the ledger partition that holds him, if this worker holds it (else None)."""
    partition = partition_for(suspect, rt.settings.partitions)
    table = app.tables["ledger"]
    if partition not in held_partitions(table):
        return None
    return Ledger(PartitionStore(table, partition), lists=rt.settings.list_specs)


def suspect_body(app, rt: Runtime, suspect_id: str) -> Optional[dict]:
    """`GET /suspects/{id}`: his standing in every list and each allegation in the window, or None.

    The top-level score, allegations, eligibility, rank and `allegations` / `linked_offences`
    rows are the default list's; `lists` has his standing in each list, and each row names
    the lists that count it.
    """
    target = canonical(app, suspect_id)
    ledger = ledger_of(app, rt, target)
    explained = None if ledger is None else ledger.explain(target)
    if explained is None and target == suspect_id:
        return None
    specs = rt.settings.list_specs
    default = specs[0]
    counted = {spec.name: (ledger.counts(target, spec.name) if explained is not None else {}) for spec in specs}
    rows, linked = _allegation_rows(rt, explained, counted, default)
    standings = [_standing(rt, ledger, target, spec.name, explained is not None) for spec in specs]
    first = standings[0]
    next_exit = rows[0] if rows else None
    ranker = ranker_of(rt, None)
    return {
        "suspect_id": target, "merged_from": suspect_id if target != suspect_id else None,
        "list": default.name, "score": first["score"], "allegations_in_window": first["allegations"],
        "eligible": first["eligible"], "min_allegations": default.min_allegations, "rank": first["rank"],
        "victims": first["victims"], "allegations": rows, "linked_offences": linked, "lists": standings,
        "next_to_leave": None if next_exit is None else {
            "crime_ref": next_exit["crime_ref"], "at": next_exit["leaves_window_at"],
            "score_after": (int(round(first["score"] * 100)) - int(round(next_exit["days"] * 100))) / 100},
        "as_of": us_to_iso(ranker.as_of) if ranker is not None and ranker.as_of else None,
    }


def _allegation_rows(rt: Runtime, explained, counted: dict, default) -> tuple:
    """(the default list's counted allegations, the rest: his linked offences), oldest first."""
    rows, linked = [], []
    window_us = default.window_days * US_PER_DAY
    for crime_ref, a in (explained.allegations if explained is not None else []):
        entry = rt.harm.get(a.code)
        row = {"crime_ref": crime_ref, "offence_code": a.code, "title": entry.title if entry else "",
               "days": a.cents / 100, "recorded_at": us_to_iso(a.recorded_at), "vawg": a.vawg,
               "leaves_window_at": us_to_iso(a.recorded_at + window_us),
               "lists": [name for name, counts in counted.items() if counts.get(crime_ref)]}
        (rows if counted[default.name].get(crime_ref) else linked).append(row)
    return rows, linked


def _standing(rt: Runtime, ledger: Optional[Ledger], suspect: str, name: str, known: bool) -> dict:
    explained = ledger.explain(suspect, name) if known else None
    summary = explained.summary if explained is not None else None
    ranker = ranker_of(rt, name)
    rank = ranker.book.rank(suspect) if ranker is not None and ranker.book.is_member(suspect) else None
    return {"list": name, "score": 0.0 if summary is None else summary.score / 100,
            "allegations": 0 if summary is None else summary.allegations,
            "victims": 0 if summary is None else summary.victims,
            "eligible": bool(explained is not None and explained.eligible), "rank": rank,
            "linked_offences": ledger.linked_offences(suspect, name) if known else 0}


def briefing(rt: Runtime, name: str, since: Optional[int], eligible: int, linked: Callable[[str], int]) -> dict:
    """`GET /briefing?list=NAME&since=TS` from the held ranker of the list (SPEC §8)."""
    ranker = ranker_of(rt, name)
    assert ranker is not None  # the view routes the request to the worker that holds it
    return briefing_body(ranker, since, eligible, linked)
