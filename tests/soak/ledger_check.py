"""Each suspect's ledger record on the worker (its changelog) beside the batch reference's.

A suspect's record holds his allegations (crime_ref -> code, harm, vawg, recorded_at,
victims) and each list's running sums kept beside them (score, allegations, newest,
victims). An allegation missing, stale or different on the worker is an input
event whose effect was lost; the same allegations with higher running sums is an
event counted twice (lower: one lost).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from agents.codec import loads
from streams.ledger import record_allegations, record_standings

SUSPECT_PREFIX = "p:"


@dataclass
class LedgerDiff:
    lost: int = 0
    twice: int = 0
    suspects: int = 0  # suspects compared
    examples: list = field(default_factory=list)  # (suspect, expected record, worker record), a few

    def note(self, suspect: str, expected, got) -> None:
        if len(self.examples) < 5:
            self.examples.append((suspect, expected, got))


def reference_records(result) -> dict:
    """suspect -> ledger record of `harmrank rank`'s one ledger partition (as the JSON the worker stores)."""
    store = result.driver.ledger.ledger(0).store
    return {key[len(SUSPECT_PREFIX):]: orjson.loads(orjson.dumps(rec)) for key, rec in store.scan(SUSPECT_PREFIX)}


def changelog_records(records) -> dict:
    """suspect -> newest ledger record in a changelog read from the beginning (a tombstone removes him)."""
    newest: dict = {}
    for r in records:
        key = r.key.decode()
        if key.startswith(SUSPECT_PREFIX):
            newest[key[len(SUSPECT_PREFIX):]] = None if r.value is None else loads(r.value)
    return {suspect: rec for suspect, rec in newest.items() if rec is not None}


def compare(expected: dict, got: dict) -> LedgerDiff:
    diff = LedgerDiff()
    for suspect in sorted(expected.keys() | got.keys()):
        e, g = expected.get(suspect), got.get(suspect)
        diff.suspects += 1
        want, have = record_allegations(e), record_allegations(g)
        wrong = sum(1 for ref, a in want.items() if have.get(ref) != a) + sum(1 for ref in have if ref not in want)
        if wrong:
            diff.lost += wrong
            diff.note(suspect, e, g)
        elif record_standings(e) != record_standings(g):
            (es, gs) = (record_standings(e) or [(0, 0, 0, 0)])[0], (record_standings(g) or [(0, 0, 0, 0)])[0]
            if (gs[0], gs[1]) > (es[0], es[1]):
                diff.twice += max(1, gs[1] - es[1])
            else:
                diff.lost += max(1, es[1] - gs[1])
            diff.note(suspect, e, g)
    return diff
