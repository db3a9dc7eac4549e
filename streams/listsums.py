"""Each list's standing of a suspect as running sums over his allegations (SPEC §1, §7).

A list counts some of his allegations (its `offences`). A counted allegation is
in the list's *scored part* while `as_of - span < recorded_at` (span: the recent
days of an escalation list, else its window), and, for an escalation list only,
in its *earlier part* while it is in the window but no longer recent. A
suspect's record keeps one `sums` per list, `[score, count, newest,
{victim: count}, earlier score]`, over the allegations in each part, as exact
integers (hundredths of a day); the ledger moves an allegation between parts as
the clock crosses `recorded_at + span` and `recorded_at + window`.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

from schemas.events import US_PER_DAY
from schemas.lists import ListSpec, counts_allegation

from .messages import Summary

_tuple_new = tuple.__new__

OUT, SCORED, EARLIER = 0, 1, 2  # the part of a list an allegation is in
# Allegation record: [code, cents, vawg, recorded_at, [victim ids]]
_CODE, _CENTS, _VAWG, _RECORDED, _VICTIMS = range(5)
# One list's sums: [score, count, newest recorded_at, {victim id: count}, earlier score]
_SCORE, _COUNT, _NEWEST, _VICTIM_COUNTS, _EARLIER = range(5)


class ListRule(NamedTuple):
    """A list's settings as the ledger applies them (spans in microseconds)."""

    name: str
    offences: object  # "vawg", "all" or a tuple of code prefixes
    span_us: int  # the scored part: recent days of an escalation list, else the window
    window_us: int
    escalation: bool
    min_allegations: int
    top_n: int
    spec: ListSpec


def rules_of(specs: Sequence[ListSpec]) -> tuple[ListRule, ...]:
    return tuple(ListRule(s.name, s.offences, (s.recent_days or s.window_days) * US_PER_DAY,
                          s.window_days * US_PER_DAY, s.escalation, s.min_allegations, s.top_n, s)
                 for s in specs)


def new_sums() -> list:
    return [0, 0, 0, {}, 0]


def part(rule: ListRule, a: list, clock: int) -> int:
    """Which part of the list the allegation record is in at `clock`."""
    t = a[_RECORDED]
    if t <= clock - rule.window_us or not counts_allegation(rule.offences, a[_CODE], a[_VAWG]):
        return OUT
    return SCORED if t > clock - rule.span_us else EARLIER


def add(sums: list, a: list, where: int) -> None:
    if where == SCORED:
        sums[_SCORE] += a[_CENTS]
        sums[_COUNT] += 1
        if a[_RECORDED] > sums[_NEWEST]:
            sums[_NEWEST] = a[_RECORDED]
        counts = sums[_VICTIM_COUNTS]
        for v in a[_VICTIMS]:
            counts[v] = counts.get(v, 0) + 1
    elif where == EARLIER:
        sums[_EARLIER] += a[_CENTS]


def remove(sums: list, a: list, where: int) -> bool:
    """Take the allegation out of its part; True when it was the newest scored one (to be found again)."""
    if where == SCORED:
        sums[_SCORE] -= a[_CENTS]
        sums[_COUNT] -= 1
        counts = sums[_VICTIM_COUNTS]
        for v in a[_VICTIMS]:
            if counts[v] == 1:
                del counts[v]
            else:
                counts[v] -= 1
        return a[_RECORDED] == sums[_NEWEST]
    if where == EARLIER:
        sums[_EARLIER] -= a[_CENTS]
    return False


def find_newest(rule: ListRule, sums: list, allegations: dict, clock: int) -> None:
    """Set the newest recorded_at among the scored part again (after the newest left it)."""
    newest = 0
    for a in allegations.values():
        if a[_RECORDED] > newest and part(rule, a, clock) == SCORED:
            newest = a[_RECORDED]
    sums[_NEWEST] = newest


def standing(sums: list) -> Summary:
    """The list's Summary of a suspect from his sums: O(1)."""
    return _tuple_new(Summary, (sums[_SCORE], sums[_COUNT], sums[_NEWEST], len(sums[_VICTIM_COUNTS])))


def eligible(rule: ListRule, sums: list) -> bool:
    """At least min_allegations in the scored part; an escalation list also needs recent >= factor x earlier."""
    if sums[_COUNT] < rule.min_allegations:
        return False
    return not rule.escalation or rule.spec.escalates(sums[_SCORE], sums[_EARLIER])


def sums_afresh(rule: ListRule, allegations: dict, clock: int) -> list:
    """A list's sums computed from nothing, for checks and explanations."""
    sums = new_sums()
    for a in allegations.values():
        add(sums, a, part(rule, a, clock))
    return sums


def earlier_score(sums: list) -> int:
    return sums[_EARLIER]


def linked_count(rule: ListRule, allegations: dict, clock: int) -> int:
    """How many of his allegations in the list's window it does not count (his linked offences for it)."""
    cutoff = clock - rule.window_us
    return sum(1 for a in allegations.values()
               if a[_RECORDED] > cutoff and not counts_allegation(rule.offences, a[_CODE], a[_VAWG]))


def key_of(suspect: str, sums: list) -> tuple:
    """rank_key of his standing."""
    return (-sums[_SCORE], -sums[_COUNT], -sums[_NEWEST], suspect)


def sum_records_afresh(store, rules: Sequence[ListRule], clock: int) -> tuple[int, dict]:
    """Sum every suspect record ("p:<suspect>": [[sums], {crime_ref: allegation}]) of a ledger store afresh
    for `rules`; returns (suspects tracked, {list: suspects eligible})."""
    tracked, counts = 0, {rule.name: 0 for rule in rules}
    for key, rec in list(store.scan("p:")):
        rec[0] = [sums_afresh(rule, rec[1], clock) for rule in rules]
        store[key] = rec
        tracked += 1
        for rule, sums in zip(rules, rec[0]):
            counts[rule.name] += eligible(rule, sums)
    return tracked, counts
