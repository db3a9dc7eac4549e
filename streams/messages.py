"""What the stages say to each other: absolute state, never deltas.

Every message between stages states how a thing *is now* (this allegation now
has harm X / is gone; this suspect's summary is now Y), so replaying a message
after a crash can never count anything twice. Messages are plain tuples and
lists so that they are cheap on the hot path and JSON-serialisable as they are
for the Kafka topics between stages.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

from schemas.lists import DEFAULT_LIST_NAME

# Why an allegation or a suspect's summary changed. The ranker turns the
# lowering ones into the `reason` of a `ranking.exited` event.
WHY_ADDED = "added"
WHY_CORRECTED = "corrected"
WHY_EXPIRED = "expired"
WHY_MERGED = "merged"
WHY_DISPLACED = "displaced"
LOWERING_WHYS = (WHY_CORRECTED, WHY_EXPIRED, WHY_MERGED)


class Allegation(NamedTuple):
    """One suspect on one report, as the ledger needs it to score and explain."""

    code: str
    cents: int  # harm in hundredths of a day
    vawg: bool
    recorded_at: int  # epoch microseconds
    victims: tuple[str, ...]


class AllegationUpdate(NamedTuple):
    """Register -> ledger: allegation (suspect, crime_ref) is now `allegation`, or gone (None)."""

    suspect: str
    crime_ref: str
    allegation: Optional[Allegation]
    why: str
    cause: str  # event_id of the input event behind it
    at: int  # `at` of that event: the ledger's clock moves with it


class Summary(NamedTuple):
    """A suspect's standing in the window: what ranks him."""

    score: int  # hundredths of a day
    allegations: int  # VAWG allegations in the window
    newest: int  # newest recorded_at among them (epoch us)
    victims: int  # distinct victim ids on them


class CandidateUpdate(NamedTuple):
    """Ledger -> ranker: suspect is now in (candidate) or out of his partition's local top N of a list.

    `summary` is his standing now (None once he has no allegation left in the
    window); the ranker shows it in the exit event of one who leaves.
    """

    suspect: str
    candidate: bool
    summary: Optional[Summary]
    why: str
    cause: str
    list_name: str = DEFAULT_LIST_NAME  # the list whose local top N it is


def rank_key(suspect: str, summary: Summary) -> tuple:
    """Sort key of SPEC §1's total order: score, allegations, newest (all high first), id."""
    return (-summary.score, -summary.allegations, -summary.newest, suspect)


# --- JSON forms for the topics between stages ---------------------------------

def allegation_update_to_json(u: AllegationUpdate) -> list:
    a = u.allegation
    return [u.suspect, u.crime_ref, None if a is None else [a.code, a.cents, a.vawg, a.recorded_at, list(a.victims)],
            u.why, u.cause, u.at]


def allegation_update_from_json(v: list) -> AllegationUpdate:
    a = v[2]
    alleg = None if a is None else Allegation(a[0], a[1], a[2], a[3], tuple(a[4]))
    return AllegationUpdate(v[0], v[1], alleg, v[3], v[4], v[5])


def candidate_update_to_json(c: CandidateUpdate) -> list:
    return [c.suspect, c.candidate, None if c.summary is None else list(c.summary), c.why, c.cause, c.list_name]


def candidate_update_from_json(v: list) -> CandidateUpdate:
    return CandidateUpdate(v[0], v[1], None if v[2] is None else Summary(*v[2]), v[3], v[4], v[5])
