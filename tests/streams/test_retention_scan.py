"""Scan: once the clock has passed the retention of old reports, no store names them or their people.

Old reports (recorded, reclassified, linked, unlinked, merged, cancelled, VAWG
and not) and newer ones by other people go through one Pipeline; after the
clock passes the old ones' retention, every key and value of the register's,
the ledger's and the ranker's stores is read, and none may name an old
crime_ref, suspect, victim or event id, but for the aliases that merges made:
each is one register key, the old id, holding the id it was merged into, which
later events that name the old id need (SPEC §2).
"""
from __future__ import annotations

from streams.ledger import record_allegations
from streams.pipeline import Pipeline
from tests.streams.helpers import DAY, HARM, T0, cancelled, linked, merged, recorded, reclassified, unlinked


def names_in(store) -> set:
    """Every string in a store: key suffixes after their prefix, whole keys, and every string in the values.

    The exits a list's ranker keeps for the briefing ("h:<suspect>") are left out: SPEC §9 keeps that
    membership history for its own 400 days (tests/streams/test_briefing.py checks it is forgotten then).
    So are the register's aliases ("al:<old id>" holding a str), which `aliases_in` gives.
    """
    out: set = set()

    def walk(value):
        if isinstance(value, str):
            out.add(value)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(k)
                walk(v)

    for key, value in store.scan(""):
        if key.startswith("h:") or (key.startswith("al:") and value.__class__ is str):
            continue
        out.add(key)
        out.add(key.partition(":")[2])
        walk(value)
    return out


def aliases_in(store) -> dict:
    """The register's aliases: old id -> the id it was merged into."""
    return {key[3:]: value for key, value in store.scan("al:") if value.__class__ is str}


def old_history(t):
    """Old reports touching every kind of state: index lists, aliases, merge ids, cancel marks."""
    return [
        recorded("OLD-C1", "019/08", ["OLD-S1"], t, victims=(("OLD-V1", "F"),)),
        recorded("OLD-C2", "008/06", ["OLD-S1", "OLD-S2"], t + 1, victims=(("OLD-V2", "F"), ("OLD-V3", "M"))),
        recorded("OLD-C3", "092/11", ["OLD-S3"], t + 2, victims=(("OLD-V4", "U"),)),
        recorded("OLD-C4", "105/01", ["OLD-S4"], t + 3, victims=(("OLD-V5", "F"),)),
        recorded("OLD-C5", "105/01", [], t + 4, victims=(("OLD-V6", "F"),)),
        reclassified("OLD-C1", "008/06", t + 5),
        linked("OLD-C5", "OLD-S5", t + 6),
        linked("OLD-C4", "OLD-S6", t + 7),
        unlinked("OLD-C4", "OLD-S6", t + 8),
        merged("OLD-S2", "OLD-S7", t + 9),
        merged("OLD-S7", "OLD-S8", t + 10),
        cancelled("OLD-C4", t + 11),
    ]


def new_history(t):
    return [
        recorded("NEW-C1", "019/08", ["NEW-S1"], t, victims=(("NEW-V1", "F"),)),
        recorded("NEW-C2", "008/06", ["NEW-S1"], t + 1, victims=(("NEW-V2", "F"),)),
        merged("NEW-S2", "NEW-S1", t + 2),
    ]


def names_of(events) -> set:
    out = set()
    for ev in events:
        out.add(ev.event_id)
        for field in ("crime_ref", "suspect_id", "into"):
            out.add(getattr(ev, field, None))
        out.update(getattr(ev, "suspects", ()))
        out.update(v.id for v in getattr(ev, "victims", ()))
    out.discard(None)
    return out


def stores(p: Pipeline) -> dict:
    return {"register": p.register.store, "ledger": p.ledger.store, "ranker": p.ranker.store}


def test_no_store_names_an_old_report_after_retention():
    p = Pipeline(HARM, top_n=3, window_days=10, retention_days=30)
    old, new = old_history(T0), new_history(T0 + 25 * DAY)
    for ev in old + new:
        assert p.apply(ev).status == "accepted", ev
    p.flush()
    before = set().union(*(names_in(s) for s in stores(p).values()))
    assert {"OLD-C1", "OLD-S8", "OLD-V2"} <= before  # the scan sees them while they are kept
    p.advance(T0 + 11 + 30 * DAY + 1)  # one microsecond past the newest old event's retention
    p.flush()
    for name, store in stores(p).items():
        found = names_of(old) & names_in(store)
        assert not found, (name, found)
    assert {"NEW-C1", "NEW-S1", "NEW-V1"} <= names_in(p.register.store)  # the newer reports stay
    assert aliases_in(p.register.store) == {"OLD-S2": "OLD-S7", "OLD-S7": "OLD-S8", "NEW-S2": "NEW-S1"}
    assert [s for _, s, _ in p.ranking()] == ["NEW-S1"]


def test_a_cancelled_report_names_nobody_at_once():
    p = Pipeline(HARM, top_n=3, window_days=10, retention_days=30)
    p.apply(recorded("C1", "019/08", ["S1", "S2"], T0, victims=(("V1", "F"),)))
    p.apply(linked("C1", "S3", T0 + 1))
    p.apply(cancelled("C1", T0 + 2))
    p.flush()
    for name, store in stores(p).items():
        assert not {"S1", "S2", "S3", "V1"} & names_in(store), name


def test_an_unlinked_or_merged_away_allegation_leaves_no_entry_naming_him():
    p = Pipeline(HARM, top_n=3, window_days=10, retention_days=30)
    p.apply(recorded("C1", "019/08", ["S1", "S2"], T0, victims=(("V1", "F"),)))
    p.apply(unlinked("C1", "S1", T0 + 1))
    p.apply(recorded("C2", "008/06", ["S3"], T0 + 2, victims=(("V2", "F"),)))
    p.apply(merged("S3", "S2", T0 + 3))
    p.flush()
    assert not {"S1", "S3"} & names_in(p.ledger.store)
    assert {"C1", "C2"} <= set(record_allegations(p.ledger.store["p:S2"]))
