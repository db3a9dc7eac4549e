"""The briefing of SPEC §8 for one list: its members with when they entered, and who left since a time.

A pure function of a list's `Ranker` (its top N, each member's entered_at and
the exits it keeps HISTORY_DAYS long) and of what the ledger knows: each
member's linked offences (a callback, as his record lives in his ledger
partition) and how many suspects are eligible (summed over the partitions).
"""
from __future__ import annotations

from typing import Callable, Optional

from schemas.events import US_PER_DAY, us_to_iso

from .ranker import Ranker

#: `since` when not given: this long before the list's as_of (the monthly tasking meeting's period).
DEFAULT_SINCE_DAYS = 28


def briefing_body(ranker: Ranker, since: Optional[int], eligible: int,
                  linked_offences: Callable[[str], int]) -> dict:
    """The JSON body of `GET /briefing?list=NAME&since=TS` (times in epoch microseconds).

    `since` None: DEFAULT_SINCE_DAYS before the list's as_of. `eligible`: the suspects
    eligible for the list over every ledger partition (`Ledger.stats(name)[1]` summed).
    `linked_offences(suspect)`: his allegations in the list's window that the list does
    not count (`Ledger.linked_offences(suspect, name)` of his partition).
    """
    as_of = ranker.as_of
    if since is None:
        since = as_of - DEFAULT_SINCE_DAYS * US_PER_DAY if as_of else None
    members = []
    for rank, suspect, summary in ranker.ranking():
        entered = ranker.entered_at(suspect)
        members.append({"rank": rank, "suspect_id": suspect, "score": summary.score / 100,
                        "allegations": summary.allegations, "victims": summary.victims,
                        "entered_at": None if entered is None else us_to_iso(entered),
                        "new": entered is not None and (since is None or entered > since),
                        "linked_offences": linked_offences(suspect)})
    now = {m["suspect_id"] for m in members}
    left = sorted(((at, suspect, reason, score) for suspect, (at, reason, score) in ranker.exits()
                   if suspect not in now and (since is None or at > since)), key=lambda x: (-x[0], x[1]))
    exited = [{"suspect_id": suspect, "at": us_to_iso(at), "reason": reason, "score": score / 100}
              for at, suspect, reason, score in left]
    return {"list": ranker.name, "as_of": us_to_iso(as_of) if as_of else None,
            "since": None if since is None else us_to_iso(since),
            "members": members, "exited": exited,
            "counts": {"members": len(members), "new": sum(1 for m in members if m["new"]),
                       "exited": len(exited), "eligible": eligible}}
