"""The Quix peer's own logic (no broker, no Quix): its standings and top N equal the batch reference."""
from __future__ import annotations

from schemas.harm_table import load_harm_table
from streams.batch import rank_lines, ranking_rows
from streams.simulate import dumps
from tests.bench.bench_peer import reports_only
from tests.bench.peer_quix import WINDOW_US, Book, allegations, update_standing


class DictState:
    """The two calls of a Quix State the peer uses, over a dict."""

    def __init__(self):
        self.data: dict = {}

    def get(self, key, default=None):
        return self.data.get(key, default)

    def set(self, key, value):
        self.data[key] = value


def replay(feed: list, top_n: int) -> tuple[Book, list]:
    """Both stages of the peer in one process, the membership kept from its events checked at each
    change against the book; (the book, the membership's size after each change)."""
    harm_table = load_harm_table()
    suspects: dict = {}
    tops: dict = {}
    book = Book(top_n=top_n)
    members: set = set()
    sizes = []
    for report in feed:
        for allegation in allegations(report, harm_table):
            state = suspects.setdefault(allegation["suspect_id"], DictState())
            standing = update_standing(allegation, state)
            if standing is None:
                continue
            for event in book.update(standing, tops.setdefault(standing["suspect_id"], DictState())):
                (members.discard if event["type"] == "ranking.exited" else members.add)(event["suspect_id"])
            sizes.append(len(members))
            assert members == {row["suspect_id"] for row in book.top()}
    return book, sizes


def test_the_peer_ranks_a_reports_only_feed_as_harmrank_rank_does():
    feed = list(reports_only(4000, 900, start="2025-01-01T00:00:00+00:00", days=300.0))
    for top_n in (10, 100):
        book, sizes = replay(feed, top_n)
        expected = ranking_rows(rank_lines((dumps(e) for e in feed), load_harm_table(), top_n=top_n))
        assert book.top() == expected
        assert len(expected) == top_n and max(sizes) == top_n


def test_a_suspects_window_is_365_days_back_from_his_newest_report():
    state = DictState()
    base = {"suspect_id": "S1", "cents": 1000, "vawg": True, "victims": ["V1"]}
    update_standing({**base, "crime_ref": "A", "recorded_us": 0}, state)
    standing = update_standing({**base, "crime_ref": "B", "recorded_us": WINDOW_US - 1}, state)
    assert (standing["score"], standing["allegations"]) == (2000, 2)
    standing = update_standing({**base, "crime_ref": "C", "recorded_us": WINDOW_US}, state)
    assert (standing["score"], standing["allegations"], standing["newest"]) == (2000, 2, WINDOW_US)
    assert sorted(state.get("allegations")) == ["B", "C"]
