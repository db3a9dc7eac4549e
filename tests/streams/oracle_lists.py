"""An independent, from-scratch reference of SPEC §7's lists, over the replayed state of `Oracle`.

It composes `tests/streams/oracle.py` (which replays the events) and computes each
list's ranking afresh at an as_of: which allegations the list counts (VAWG, all,
or code prefixes), its window, and for an escalation list the recent part and
the test recent >= factor x earlier in exact fractions. Written without the core
(streams/) and without the counting rules of schemas/lists.py: only its ListSpec
settings are read.
"""
from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from schemas.events import US_PER_DAY

from .oracle import Oracle


def report_is_vawg(oracle: Oracle, rep: dict) -> bool:
    """SPEC §1: the event's vawg field when given, else a female victim and a VAWG offence code."""
    if rep["flag"] is not None:
        return rep["flag"]
    return oracle.harm[rep["code"]][1] and any(sex == "F" for _, sex in rep["victims"])


def counted(spec, code: str, vawg: bool) -> bool:
    if spec.offences == "vawg":
        return vawg
    if spec.offences == "all":
        return True
    return any(code.startswith(prefix) for prefix in spec.offences)


class ListsOracle:
    def __init__(self, oracle: Oracle, specs):
        self.oracle = oracle
        self.specs = {spec.name: spec for spec in specs}

    def allegations(self, as_of: int, window_days: int):
        """(suspect, crime_ref, code, days, vawg, recorded_at, victim ids) of every allegation in the window."""
        o = self.oracle
        for ref, rep in o.reports.items():
            if rep["cancelled"] or not (as_of - window_days * US_PER_DAY < rep["recorded_at"] <= as_of):
                continue
            vawg = report_is_vawg(o, rep)
            for s in {o.resolve(x) for x in rep["suspects"]}:
                yield s, ref, rep["code"], o.harm[rep["code"]][0], vawg, rep["recorded_at"], {v for v, _ in rep["victims"]}

    def standings(self, name: str, as_of=None) -> dict:
        """suspect -> (score Decimal, allegations, newest, victims, eligible) in the list at as_of."""
        spec = self.specs[name]
        as_of = self.oracle.as_of if as_of is None else as_of
        if as_of is None:
            return {}
        recent_us = (spec.recent_days or spec.window_days) * US_PER_DAY
        acc: dict = {}
        for s, _, code, days, vawg, t, victims in self.allegations(as_of, spec.window_days):
            if not counted(spec, code, vawg):
                continue
            score, n, newest, vs, earlier = acc.get(s, (Decimal(0), 0, 0, set(), Decimal(0)))
            if t > as_of - recent_us:
                acc[s] = (score + days, n + 1, max(newest, t), vs | victims, earlier)
            else:
                acc[s] = (score, n, newest, vs, earlier + days)
        out = {}
        for s, (score, n, newest, vs, earlier) in acc.items():
            eligible = n >= spec.min_allegations
            if spec.recent_days is not None:
                eligible = eligible and Fraction(str(score)) >= Fraction(spec.factor) * Fraction(str(earlier))
            out[s] = (score, n, newest, len(vs), eligible)
        return out

    def earlier(self, name: str, suspect: str, as_of=None) -> Decimal:
        """An escalation list: the harm (days) of his counted allegations in the rest of the window, before
        the recent part (0 for any other list)."""
        spec = self.specs[name]
        as_of = self.oracle.as_of if as_of is None else as_of
        if spec.recent_days is None:
            return Decimal(0)
        recent_from = as_of - spec.recent_days * US_PER_DAY
        return sum((days for s, _, code, days, vawg, t, _ in self.allegations(as_of, spec.window_days)
                    if s == suspect and counted(spec, code, vawg) and t <= recent_from), Decimal(0))

    def ranking(self, name: str, as_of=None) -> list:
        """[(rank, suspect, score Decimal, allegations, newest, victims)] of the list's top N."""
        rows = [(s, sc, n, nw, v) for s, (sc, n, nw, v, ok) in self.standings(name, as_of).items() if ok]
        rows.sort(key=lambda r: (-r[1], -r[2], -r[3], r[0]))
        return [(i, *r) for i, r in enumerate(rows[: self.specs[name].top_n], start=1)]

    def linked_offences(self, name: str, suspect: str, as_of=None) -> int:
        """His allegations in the list's window that the list does not count."""
        spec = self.specs[name]
        as_of = self.oracle.as_of if as_of is None else as_of
        return sum(1 for s, _, code, _, vawg, _, _ in self.allegations(as_of, spec.window_days)
                   if s == suspect and not counted(spec, code, vawg))

    def expected_events(self, name: str, before: list, after: list) -> set:
        """(type, suspect) of the events one change should emit: entered, exited, and updated for a member
        whose own score, allegations or victims changed (a rank move alone is not announced)."""
        was = {row[1]: (row[2], row[3], row[5]) for row in before}
        now = {row[1]: (row[2], row[3], row[5]) for row in after}
        return ({("ranking.entered", s) for s in now.keys() - was.keys()}
                | {("ranking.exited", s) for s in was.keys() - now.keys()}
                | {("ranking.updated", s) for s in now.keys() & was.keys() if now[s] != was[s]})
