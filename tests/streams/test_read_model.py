"""The ledger's read model (what the API shows of a suspect) against the independent lists oracle.

`Ledger.explain(suspect, list)`, `counts` and `linked_offences` must say, for every list,
his standing, his allegations in the window (oldest first, then by crime_ref), which of them
the list counts and how many it does not, and for an escalation list the harm of the rest of
the window; `record_standings` reads each list's standing from a record.
"""
from __future__ import annotations

import random

import pytest

from schemas.lists import parse_lists
from streams.ledger import record_standings
from streams.pipeline import Pipeline
from tests.streams.helpers import DAY, HARM, T0, cancelled, linked, merged, recorded, reclassified, unlinked
from tests.streams.oracle import Oracle
from tests.streams.oracle_lists import ListsOracle, counted

LISTS = parse_lists("""
[[list]]
name = "vawg"
window_days = 20

[[list]]
name = "assault"
offences = ["008/", "105/"]
window_days = 10
min_allegations = 1

[[list]]
name = "rising"
window_days = 20
recent_days = 5
factor = 1.5
""", "lists.toml")


def feed(seed: int) -> list:
    rng = random.Random(seed)
    events, at, refs = [], T0, []
    for k in range(120):
        at += rng.randrange(DAY // 2) if rng.random() < 0.8 else 0  # some reports recorded at one time
        roll = rng.random()
        if roll < 0.6 or not refs:
            refs.append(f"C{k}")
            events.append(recorded(f"C{k}", rng.choice(list(HARM.rows)), [f"S{rng.randrange(8)}"], at,
                                   victims=((f"V{rng.randrange(5)}", rng.choice("FFM")),)))
        elif roll < 0.7:
            events.append(reclassified(rng.choice(refs), rng.choice(list(HARM.rows)), at))
        elif roll < 0.8:
            events.append(linked(rng.choice(refs), f"S{rng.randrange(8)}", at))
        elif roll < 0.87:
            events.append(unlinked(rng.choice(refs), f"S{rng.randrange(8)}", at))
        elif roll < 0.94:
            events.append(cancelled(rng.choice(refs), at))
        else:
            events.append(merged(f"S{rng.randrange(8)}", f"S{rng.randrange(8)}", at))
    return events


@pytest.mark.parametrize("seed", range(6))
def test_each_suspects_standing_and_allegations_in_every_list(seed):
    pipe = Pipeline(HARM, lists=LISTS)
    oracle = ListsOracle(Oracle(HARM.oracle_view(), window_days=20), LISTS)
    for ev in feed(seed):
        pipe.apply(ev)
        oracle.oracle.apply(ev)
    as_of = oracle.oracle.as_of
    window = {}  # suspect -> {crime_ref: (code, vawg)} in the ledger's (the longest) window
    for s, ref, code, _, vawg, _, _ in oracle.allegations(as_of, 20):
        window.setdefault(s, {})[ref] = (code, vawg)
    for s in sorted({f"S{i}" for i in range(8)} | set(window)):
        standings = record_standings(pipe.ledger.store.get("p:" + s))
        for i, spec in enumerate(LISTS):
            want = oracle.standings(spec.name).get(s)
            explained = pipe.ledger.explain(s, spec.name)
            if s not in window:
                assert explained is None and standings == [], (s, spec.name)
                continue
            got = (explained.summary.score, explained.summary.allegations, explained.summary.newest,
                   explained.summary.victims, explained.eligible)
            assert got == (() if want is None else (int(want[0] * 100), *want[1:])) or (
                want is None and got[1] == 0 and not got[4]), (s, spec.name, got, want)
            assert tuple(standings[i]) == got[:4], (s, spec.name)
            assert explained.earlier_score == int(oracle.earlier(spec.name, s) * 100), (s, spec.name)
            assert [ref for ref, _ in explained.allegations] == sorted(
                window[s], key=lambda r: (oracle.oracle.reports[r]["recorded_at"], r))
            assert pipe.ledger.counts(s, spec.name) == {
                ref: counted(spec, code, vawg) for ref, (code, vawg) in window[s].items()}
            assert pipe.ledger.linked_offences(s, spec.name) == oracle.linked_offences(spec.name, s), (s, spec.name)


def test_linked_offences_leave_a_shorter_list_window_exactly_at_its_edge():
    """SPEC §1: an allegation is in a window while as_of - window_days < recorded_at; the assault list's
    10 days end inside the ledger's 20, so the ledger still holds the allegation that left it."""
    pipe = Pipeline(HARM, lists=LISTS)
    oracle = ListsOracle(Oracle(HARM.oracle_view(), window_days=20), LISTS)
    steps = [recorded("C1", "019/08", ["S1"], T0), recorded("C2", "008/06", ["S1"], T0 + 10 * DAY - 1),
             recorded("C3", "008/06", ["S1"], T0 + 10 * DAY)]
    seen = []
    for ev in steps:
        pipe.apply(ev)
        oracle.oracle.apply(ev)
        seen.append(pipe.ledger.linked_offences("S1", "assault"))
        assert seen[-1] == oracle.linked_offences("assault", "S1")
    assert seen == [1, 1, 0]
