"""Precise example tests of rule details that the property tests reach too rarely.

Each pins one decision of the rule modules (found by mutation testing, see
docs/MUTATION.md): the JSON forms between stages, the stability of output
event ids, how far a bounded book trims.
"""
from __future__ import annotations

import hashlib
import json

from streams.book import TopBook
from streams.messages import (Allegation, AllegationUpdate, CandidateUpdate, Summary, allegation_update_from_json,
                              allegation_update_to_json, candidate_update_from_json, candidate_update_to_json)
from streams.ranker import output_event_id


def through_json(value):
    return json.loads(json.dumps(value))


def test_allegation_update_round_trips_through_json():
    for alleg in [Allegation("008/06", 18250, True, 1_735_689_600_000_001, ("V1", "V2")), None]:
        update = AllegationUpdate("S1", "C1", alleg, "corrected", "E7", 1_735_689_600_000_002)
        assert allegation_update_from_json(through_json(allegation_update_to_json(update))) == update


def test_candidate_update_round_trips_through_json():
    for summary in [Summary(18250, 2, 1_735_689_600_000_001, 3), None]:
        update = CandidateUpdate("S1", summary is not None, summary, "expired", "clock:2025-01-01T00:00:00+00:00")
        assert candidate_update_from_json(through_json(candidate_update_to_json(update))) == update


def test_output_event_id_is_the_canonical_json_digest():
    """Ids must not change between versions: a consumer drops re-sends across an upgrade and restart."""
    body = {"type": "ranking.exited", "suspect_id": "S9", "reason": "displaced", "score": 40.0}
    canonical = '{"reason":"displaced","score":40.0,"suspect_id":"S9","type":"ranking.exited"}'
    assert output_event_id(body) == hashlib.sha256(canonical.encode()).hexdigest()[:32]
    assert output_event_id(dict(reversed(body.items()))) == output_event_id(body)


def test_bounded_book_trims_halfway_down_to_n():
    """Over capacity, the waiting entries are cut to half the room between N and capacity."""
    entries = {f"S{i:02}": (i, f"S{i:02}") for i in range(11)}
    book = TopBook(2, 10, lambda: list(entries.values()))
    for key in entries.values():
        book.update(key[-1], key)
    assert book.truncated
    assert len(book) == 2 + (10 - 2) // 2
    assert book.members() == ["S00", "S01"]
