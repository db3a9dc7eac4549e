"""A ledger whose lists changed (another lists file at restart) sums its records afresh for the new lists."""
from __future__ import annotations

import random

from schemas.lists import parse_lists
from streams.ledger import Ledger
from streams.messages import Allegation, AllegationUpdate
from streams.store import DictStore
from tests.streams.helpers import CODES, DAY, HARM, T0

BEFORE = parse_lists('[[list]]\nname = "vawg"\nwindow_days = 9\n\n[[list]]\nname = "gone"\noffences = "all"\n')
AFTER = parse_lists('[[list]]\nname = "rising"\nwindow_days = 9\nrecent_days = 2\nfactor = 1\nmin_allegations = 1\n\n'
                    '[[list]]\nname = "vawg"\nwindow_days = 9\n')


def updates(seed: int) -> list:
    rng = random.Random(seed)
    out = []
    for k in range(200):
        code = rng.choice(CODES)
        entry = HARM.get(code)
        at = T0 + k * DAY // 10
        out.append(AllegationUpdate(f"S{rng.randrange(20)}", f"C{k}",
                                    Allegation(code, entry.days_cents, entry.vawg and rng.random() < 0.8, at,
                                               (f"V{rng.randrange(9)}",)), "added", f"E{k}", at))
    return out


def test_changed_lists_are_summed_afresh():
    store = DictStore()
    before = Ledger(store, lists=BEFORE, book_capacity=50)
    before.apply_many(updates(3))
    before.flush()
    assert store["stats"][1].keys() == {"vawg", "gone"}
    store["ann:vawg:S:9"] = [1, 1, 1, 1]  # a suspect id may hold the key's separator
    kept = dict(store.scan("ann:vawg:"))  # what was announced for a list that stays
    assert kept
    store["ann:gone:S1"] = [1, 1, 1, 1]
    changed = Ledger(store, lists=AFTER, book_capacity=50)
    fresh = Ledger(DictStore(), lists=AFTER, book_capacity=50)
    fresh.apply_many(updates(3))
    changed.books  # noqa: B018 (first use)
    for name in ("rising", "vawg"):
        for s in (f"S{i}" for i in range(20)):
            assert changed.summary(s, name) == fresh.summary(s, name)
        assert changed.stats(name) == fresh.stats(name)
        assert changed.book.members() == fresh.book.members()
        assert changed.books[1].members() == fresh.books[1].members()
    assert store.get("ann:gone:S1") is None
    assert dict(store.scan("ann:vawg:")) == kept
