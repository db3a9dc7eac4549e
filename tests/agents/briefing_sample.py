"""A §8 briefing object for the tests: a full top 100 with new members, exits of every reason, odd ids."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

AS_OF = datetime(2025, 3, 1, 10, 0, tzinfo=timezone.utc)
SINCE = AS_OF - timedelta(days=28)
REASONS = ("displaced", "expired", "corrected", "merged")
#: Ids a renderer must escape; short enough that a printed table cell does not wrap them.
ODD_IDS = ("S<b>x</b>", "S&amp;1", "S|pipe|", "S*em*_u_", "S`tick`", "S\"q'", "S[a](b)")


def sample_briefing(members: int = 100, exits: int = 9, list_name: str = "vawg") -> dict:
    """Members ranked 1..members (every 4th new), exits newest first; scores fall with rank."""
    rows = []
    for rank in range(1, members + 1):
        suspect = ODD_IDS[rank - 1] if rank <= len(ODD_IDS) else f"S{rank:05d}"
        new = rank % 4 == 0
        entered = AS_OF - timedelta(days=3 * rank % 27 + 1) if new else SINCE - timedelta(days=rank)
        rows.append({"rank": rank, "suspect_id": suspect, "score": round(6000 - rank * 37.25, 2),
                     "allegations": 2 + rank % 5, "victims": 1 + rank % 3,
                     "entered_at": entered.isoformat(), "new": new, "linked_offences": rank % 4})
    exited = [{"suspect_id": f"X{k:04d}", "at": (AS_OF - timedelta(days=k + 1, hours=k)).isoformat(),
               "reason": REASONS[k % len(REASONS)], "score": 40.5 + k} for k in range(exits)]
    return {"list": list_name, "as_of": AS_OF.isoformat(), "since": SINCE.isoformat(), "members": rows,
            "exited": exited, "counts": {"members": members, "new": sum(r["new"] for r in rows), "exited": exits,
                                         "eligible": members + 240}}
