"""TopBook: bounded and unbounded books agree with a naive sort under random updates.

The book's answers (members in order, entered / exited per update, is_member,
rank of members, threshold) are compared after every update with a plain dict
sorted afresh; a bounded book refills from that same dict, as the ledger
refills from its store.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.book import TopBook

IDS = [f"S{i}" for i in range(12)]

updates = st.lists(
    st.tuples(st.sampled_from(IDS), st.one_of(st.none(), st.tuples(st.integers(-6, 0), st.integers(-3, 0)))),
    min_size=1, max_size=120)


def run(n, capacity, seq):
    truth: dict = {}
    book = TopBook(n, capacity, (lambda: list(truth.values())) if capacity else None)
    members: set = set()
    for ident, value in seq:
        key = None if value is None else (*value, ident)
        if key is None:
            truth.pop(ident, None)
        else:
            truth[ident] = key
        entered, exited = book.update(ident, key)
        want = sorted(truth.values())[:n]
        assert book.top() == want
        assert book.members() == [k[-1] for k in want]
        assert set(entered).isdisjoint(exited)
        assert not (set(entered) & members), "entered twice"
        assert set(exited) <= members, "exited without entry"
        members = (members | set(entered)) - set(exited)
        assert members == {k[-1] for k in want}
        for i in IDS:
            assert book.is_member(i) == (i in members)
        for rank, k in enumerate(want, start=1):
            assert book.rank(k[-1]) == rank
        assert book.threshold() == (want[n - 1] if len(want) >= n else None)
        if capacity:
            assert len(book) <= capacity
    return book


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 4), updates)
def test_unbounded_book_equals_sort(n, seq):
    run(n, None, seq)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 4), st.integers(0, 4), updates)
def test_bounded_book_equals_unbounded(n, extra, seq):
    bounded = run(n, n + extra, seq)
    unbounded = run(n, None, seq)
    assert bounded.top() == unbounded.top()


def test_bounded_book_refills_from_source():
    truth = {f"S{i}": (-i, f"S{i}") for i in range(10)}  # S9 best
    book = TopBook(2, 3, lambda: list(truth.values()))
    book.rebuild(truth.values())
    assert book.truncated and len(book) == 3 and book.members() == ["S9", "S8"]
    for ident in ["S9", "S8"]:  # both members leave: only S7 is held, so it must refill
        del truth[ident]
        book.update(ident, None)
    assert book.members() == ["S7", "S6"]
    assert book.refills >= 2


def test_many_updates_far_from_top_keep_heap_small():
    book = TopBook(3)
    for round_ in range(50):
        for i in range(100):
            book.update(f"S{i}", (-(i * 7 + round_) % 101, f"S{i}"))
    assert len(book) == 100
    assert len(book._rest) <= 2 * (len(book) - 3) + 64  # stale heap copies are swept


def test_keys_that_only_get_worse_are_not_pushed_and_still_promote_in_order():
    book = TopBook(2)
    for i in range(20):
        book.update(f"S{i}", (-100 - i, f"S{i}"))  # S19 best, then S18, ...
    assert book.members() == ["S19", "S18"]
    pushed = len(book._rest)
    for i in range(2, 18):  # everyone waiting gets worse, in an order unlike the old one
        book.update(f"S{i}", (-(i * 7) % 23, f"S{i}"))
    assert len(book._rest) == pushed, "a worse key was pushed"
    assert book.update("S19", None) == (["S1"], ["S19"])
    assert book.update("S18", None) == (["S0"], ["S18"])
    # the heap's copies are all better than the keys now: the true best waiting must come up
    waiting = sorted([(-101, "S1"), (-100, "S0")] + [(-(i * 7) % 23, f"S{i}") for i in range(2, 18)])
    assert book.top() == waiting[:2]
    book.update("S1", None)
    book.update("S0", None)
    assert book.top() == waiting[2:4]


def test_constructor_checks():
    with pytest.raises(ValueError):
        TopBook(0)
    with pytest.raises(ValueError):
        TopBook(3, 2, lambda: [])
    with pytest.raises(ValueError):
        TopBook(3, 5)


def test_bounded_rebuild_holds_only_its_capacity_while_the_entries_go_by():
    """A rebuild over a store of many suspects takes memory for the capacity, not for all of them."""
    live = [0, 0]  # idents alive now, most alive at once

    class Ident(str):
        def __new__(cls, value):
            live[0] += 1
            live[1] = max(live[1], live[0])
            return super().__new__(cls, value)

        def __del__(self):
            live[0] -= 1

    entries = [(-i % 97, f"S{i}") for i in range(10_000)]
    book = TopBook(3, 10, lambda: iter(()))
    book.rebuild((score, Ident(ident)) for score, ident in entries)
    assert live[1] <= 10 + 1 + 2  # the capacity, the floor, and the entries in flight (not 10,000)
    assert book.truncated and book.members() == [ident for _, ident in sorted(entries)[:3]]
    assert book.top(10) == sorted(entries)[:10]
