"""One test per rule of SPEC §1-§3, through the in-process Pipeline."""
from __future__ import annotations

from schemas.events import us_to_iso
from streams.pipeline import Pipeline
from streams.ranker import output_event_id
from streams.stages.base import OFFSET_KEY
from streams.stages.ledger import PENDING_KEY

STAGE_KEYS = (OFFSET_KEY, PENDING_KEY)  # the ledger stage's offset and last candidate updates
from tests.streams.helpers import (DAY, HARM, T0, FakeHarm, cancelled, linked, merged, recorded, reclassified,
                                   unlinked)

F = (("V1", "F"),)
M = (("V1", "M"),)


def pipe(**kw) -> Pipeline:
    kw.setdefault("top_n", 3)
    return Pipeline(kw.pop("harm", HARM), **kw)


def standing(p: Pipeline, suspect: str):
    s = p.ledger.summary(suspect)
    return None if s is None else (s.score, s.allegations, s.victims)


def ranked(p: Pipeline) -> list:
    """The top N in order, without flushing (the single ledger's book is the global one)."""
    return [key[-1] for key in p.ledger.book.top()]


def status(outcome) -> str:
    return outcome.status if outcome.status != "rejected" else outcome.rejection[0]


# -- window -------------------------------------------------------------------

def test_window_exactly_window_days_old_is_out():
    p = pipe(window_days=10)
    p.apply(recorded("C1", "105/01", ["A"], T0, F))
    p.apply(recorded("C2", "105/01", ["B"], T0 + 10 * DAY, F))
    assert standing(p, "A") is None
    assert standing(p, "B") == (500, 1, 1)


def test_window_one_microsecond_younger_is_in():
    p = pipe(window_days=10)
    p.apply(recorded("C1", "105/01", ["A"], T0, F))
    p.apply(recorded("C2", "105/01", ["B"], T0 + 10 * DAY - 1, F))
    assert standing(p, "A") == (500, 1, 1)
    p.advance(T0 + 10 * DAY)  # and out once the clock reaches exactly window_days
    assert standing(p, "A") is None


def test_event_recorded_already_outside_window_never_counts():
    p = pipe(window_days=10)
    p.apply(recorded("C1", "105/01", ["B"], T0 + 20 * DAY, F))
    assert status(p.apply(recorded("C2", "019/08", ["A"], T0 + 10 * DAY, F))) == "accepted"
    assert standing(p, "A") is None
    p.apply(reclassified("C2", "008/06", T0 + 21 * DAY))
    assert standing(p, "A") is None


def test_late_event_does_not_move_clock_back():
    p = pipe()
    p.apply(recorded("C1", "105/01", ["A"], T0 + 5 * DAY, F))
    p.apply(recorded("C2", "105/01", ["A"], T0 + 2 * DAY, F))
    assert p.as_of == T0 + 5 * DAY
    assert standing(p, "A") == (1000, 2, 1)


# -- score ------------------------------------------------------------------------

def test_score_exact_with_two_decimal_days():
    harm = FakeHarm({"001/01": ("0.1", True), "001/02": ("0.2", True), "001/03": ("0.3", True)})
    p = pipe(harm=harm)
    p.apply(recorded("C1", "001/01", ["A"], T0, F))
    p.apply(recorded("C2", "001/02", ["A"], T0 + 1, F))
    p.apply(recorded("C3", "001/03", ["B"], T0 + 2, F))
    p.apply(recorded("C4", "001/01", ["B"], T0 + 3, F))
    p.apply(recorded("C5", "001/02", ["B"], T0 + 4, F))
    p.flush()
    (_, _, a), = [r for r in p.ranking() if r[1] == "A"]
    assert a.score == 30  # 0.1 + 0.2 == 0.3, exactly
    events = p.flush()
    assert events == []
    assert [e["score"] for e in Pipeline(harm).flush()] == []


def test_score_returns_exactly_to_start_after_many_changes():
    harm = FakeHarm({"001/01": ("0.1", True), "001/02": ("0.2", True), "001/03": ("0.07", True),
                     "002/01": ("1825.33", True)})
    p = pipe(harm=harm)
    p.apply(recorded("BASE", "001/03", ["A"], T0, F))
    start = standing(p, "A")
    codes = ["001/01", "001/02", "001/03", "002/01"]
    for i in range(200):  # 200 reports added, reclassified back and forth, then cancelled
        p.apply(recorded(f"C{i}", codes[i % 4], ["A"], T0 + i + 1, F))
    for i in range(200):
        p.apply(reclassified(f"C{i}", codes[(i + 1) % 4], T0 + 300))
    for i in range(200):
        p.apply(cancelled(f"C{i}", T0 + 400))
    assert standing(p, "A") == start == (7, 1, 1)


def test_scores_to_json_days_are_exact():
    harm = FakeHarm({"001/01": ("0.1", True), "001/02": ("0.2", True)})
    p = pipe(harm=harm, min_allegations=2)
    p.apply(recorded("C1", "001/01", ["A"], T0, F))
    p.apply(recorded("C2", "001/02", ["A"], T0 + 1, F))
    (ev,) = p.flush()
    assert ev["score"] == 0.3


# -- VAWG --------------------------------------------------------------------------

def test_vawg_flag_true_wins_over_code_and_sex():
    p = pipe()
    p.apply(recorded("C1", "092/11", ["A"], T0, M, vawg=True))  # non-VAWG code, male victim
    assert standing(p, "A") == (146000, 1, 1)


def test_vawg_flag_false_wins_over_code_and_sex():
    p = pipe()
    p.apply(recorded("C1", "019/08", ["A"], T0, F, vawg=False))
    assert standing(p, "A") == (0, 0, 0)


def test_vawg_derived_needs_female_victim_and_vawg_code():
    p = pipe()
    p.apply(recorded("C1", "019/08", ["A"], T0, F))  # yes
    p.apply(recorded("C2", "019/08", ["B"], T0, (("V2", "M"), ("V3", "U"))))  # no female
    p.apply(recorded("C3", "092/11", ["C"], T0, F))  # code not in the VAWG set
    p.apply(recorded("C4", "019/08", ["D"], T0, (("V4", "M"), ("V5", "F"))))  # any victim female
    p.apply(recorded("C5", "019/08", ["E"], T0, ()))  # no victim at all
    assert [standing(p, s)[1] for s in "ABCDE"] == [1, 0, 0, 1, 0]


def test_reclassified_without_flag_derives_again():
    p = pipe()
    p.apply(recorded("C1", "019/08", ["A"], T0, F))
    p.apply(reclassified("C1", "092/11", T0 + 1))
    assert standing(p, "A") == (0, 0, 0)
    p.apply(reclassified("C1", "008/06", T0 + 2))
    assert standing(p, "A") == (18250, 1, 1)


def test_reclassified_with_flag_replaces_it():
    p = pipe()
    p.apply(recorded("C1", "019/08", ["A"], T0, F))
    p.apply(reclassified("C1", "019/08", T0 + 1, vawg=False))
    assert standing(p, "A") == (0, 0, 0)
    p.apply(reclassified("C1", "092/11", T0 + 2, vawg=True))
    assert standing(p, "A") == (146000, 1, 1)


def test_flag_given_earlier_survives_reclassification_without_flag():
    p = pipe()
    p.apply(recorded("C1", "092/11", ["A"], T0, M, vawg=True))
    p.apply(reclassified("C1", "034/01", T0 + 1))  # no vawg field: the given flag stays
    assert standing(p, "A") == (36533, 1, 1)


def test_non_vawg_allegations_kept_but_not_scored():
    p = pipe()
    p.apply(recorded("C1", "092/11", ["A"], T0, F))
    assert standing(p, "A") == (0, 0, 0)
    assert set(p.ledger.allegations("A")) == {"C1"}


# -- victims, eligibility, order -----------------------------------------------------

def test_victims_are_distinct_ids_over_vawg_allegations():
    p = pipe()
    p.apply(recorded("C1", "105/01", ["A"], T0, (("V1", "F"), ("V2", "F"))))
    p.apply(recorded("C2", "105/01", ["A"], T0 + 1, (("V2", "F"), ("V3", "M"))))
    p.apply(recorded("C3", "092/11", ["A"], T0 + 2, (("V9", "F"),)))  # non-VAWG: not counted
    assert standing(p, "A") == (1000, 2, 3)
    p.apply(cancelled("C1", T0 + 3))
    assert standing(p, "A") == (500, 1, 2)


def test_eligibility_needs_min_allegations():
    p = pipe(min_allegations=3)
    for i in range(2):
        p.apply(recorded(f"C{i}", "019/08", ["A"], T0 + i, F))
    assert ranked(p) == [] and p.flush() == []
    p.apply(recorded("C2", "105/01", ["A"], T0 + 2, F))
    assert ranked(p) == ["A"]
    assert p.ledger.stats() == (1, 1)


def two(p, suspect, code1, code2, at1, at2, refs):
    p.apply(recorded(refs[0], code1, [suspect], at1, F))
    p.apply(recorded(refs[1], code2, [suspect], at2, F))


def test_order_score_first():
    p = pipe()
    two(p, "A", "105/01", "105/01", T0, T0 + 9, ["A1", "A2"])
    two(p, "Z", "008/06", "105/01", T0, T0, ["Z1", "Z2"])
    assert ranked(p) == ["Z", "A"]


def test_order_then_more_allegations():
    harm = FakeHarm({"001/01": ("1", True), "001/02": ("2", True)})
    p = pipe(harm=harm)
    two(p, "A", "001/02", "001/02", T0, T0 + 9, ["A1", "A2"])  # 4 days in 2
    for i in range(4):  # 4 days in 4, older
        p.apply(recorded(f"Z{i}", "001/01", ["Z"], T0, F))
    assert ranked(p) == ["Z", "A"]


def test_order_then_newest_recorded_at():
    p = pipe()
    two(p, "A", "105/01", "105/01", T0, T0 + 5, ["A1", "A2"])
    two(p, "Z", "105/01", "105/01", T0, T0 + 6, ["Z1", "Z2"])
    assert ranked(p) == ["Z", "A"]


def test_order_then_suspect_id_ascending():
    p = pipe()
    two(p, "B", "105/01", "105/01", T0, T0 + 5, ["B1", "B2"])
    two(p, "A", "105/01", "105/01", T0, T0 + 5, ["A1", "A2"])
    assert ranked(p) == ["A", "B"]


def test_top_n_cuts_the_ranking():
    p = pipe(top_n=2)
    for s, code in zip("ABC", ["019/08", "008/06", "105/01"]):
        two(p, s, code, code, T0, T0, [s + "1", s + "2"])
    assert ranked(p) == ["A", "B"]


# -- corrections --------------------------------------------------------------------

def test_reclassified_changes_harm_keeps_recorded_at():
    p = pipe(window_days=10)
    p.apply(recorded("C1", "105/01", ["A"], T0, F))
    p.apply(reclassified("C1", "019/08", T0 + 9 * DAY))
    assert standing(p, "A") == (182500, 1, 1)
    p.advance(T0 + 10 * DAY)  # it ages out from its recorded_at, not the reclassification
    assert standing(p, "A") is None


def test_cancelled_stops_every_allegation():
    p = pipe()
    p.apply(recorded("C1", "105/01", ["A", "B"], T0, F))
    p.apply(cancelled("C1", T0 + 1))
    assert standing(p, "A") is None and standing(p, "B") is None


def test_linked_adds_and_unlinked_removes():
    p = pipe()
    p.apply(recorded("C1", "105/01", [], T0, F))
    p.apply(linked("C1", "A", T0 + 1))
    assert standing(p, "A") == (500, 1, 1)
    p.apply(unlinked("C1", "A", T0 + 2))
    assert standing(p, "A") is None


def test_link_of_suspect_already_on_report_is_accepted_noop():
    p = pipe()
    p.apply(recorded("C1", "105/01", ["A"], T0, F))
    before = {k: v for k, v in p.ledger.store.items() if k not in STAGE_KEYS}
    outcome = p.apply(linked("C1", "A", T0))
    assert status(outcome) == "accepted"
    assert standing(p, "A") == (500, 1, 1)
    assert {k: v for k, v in p.ledger.store.items() if k not in STAGE_KEYS} == before  # the stage's own keys aside


def test_unlink_of_suspect_not_on_report_is_accepted_noop():
    p = pipe()
    p.apply(recorded("C1", "105/01", ["A"], T0, F))
    outcome = p.apply(unlinked("C1", "B", T0))
    assert status(outcome) == "accepted" and outcome.updates == []
    assert standing(p, "A") == (500, 1, 1)


def test_suspect_on_report_twice_is_one_allegation():
    p = pipe()
    p.apply(recorded("C1", "105/01", ["A", "A"], T0, F))
    assert standing(p, "A") == (500, 1, 1)


def test_merged_moves_every_allegation():
    p = pipe()
    p.apply(recorded("C1", "105/01", ["A"], T0, F))
    p.apply(recorded("C2", "008/06", ["B"], T0, F))
    p.apply(merged("A", "B", T0 + 1))
    assert standing(p, "A") is None
    assert standing(p, "B") == (18750, 2, 1)


def test_merge_chain_resolves_to_the_end():
    p = pipe()
    p.apply(recorded("C1", "105/01", ["A"], T0, F))
    p.apply(recorded("C2", "105/01", ["B"], T0, F))
    p.apply(recorded("C3", "105/01", ["C"], T0, F))
    p.apply(merged("A", "B", T0 + 1))
    p.apply(merged("B", "C", T0 + 2))
    assert standing(p, "C") == (1500, 3, 1)
    assert p.register.canonical("A") == "C"
    p.apply(merged("A", "D", T0 + 3))  # "A" means C now: C's allegations go to D
    assert standing(p, "C") is None and standing(p, "D") == (1500, 3, 1)


def test_aliases_resolve_in_later_record_link_unlink():
    p = pipe()
    p.apply(recorded("C1", "105/01", ["B"], T0, F))
    p.apply(merged("A", "B", T0 + 1))
    p.apply(recorded("C2", "105/01", ["A"], T0 + 2, F))
    assert standing(p, "B") == (1000, 2, 1) and standing(p, "A") is None
    p.apply(recorded("C3", "105/01", [], T0 + 3, F))
    p.apply(linked("C3", "A", T0 + 4))
    assert standing(p, "B") == (1500, 3, 1)
    p.apply(linked("C3", "B", T0 + 5))  # already on it through the alias: a no-op
    assert standing(p, "B") == (1500, 3, 1)
    p.apply(unlinked("C1", "A", T0 + 6))
    assert standing(p, "B") == (1000, 2, 1)


def test_self_merge_after_resolution_rejected():
    p = pipe()
    p.apply(recorded("C1", "105/01", ["A"], T0, F))
    p.apply(merged("A", "B", T0 + 1))
    assert status(p.apply(merged("A", "B", T0 + 2))) == "self_merge"
    assert status(p.apply(merged("B", "A", T0 + 2))) == "self_merge"
    assert status(p.apply(merged("X", "X", T0 + 2))) == "self_merge"
    assert standing(p, "B") == (500, 1, 1)


def test_merge_of_two_ids_on_same_report_gives_one_allegation():
    p = pipe()
    p.apply(recorded("C1", "105/01", ["A", "B"], T0, F))
    p.apply(recorded("C2", "105/01", ["A"], T0 + 1, F))
    p.apply(merged("A", "B", T0 + 2))
    assert standing(p, "B") == (1000, 2, 1)
    assert p.register.report("C1")[4] == ["B"]


def test_merge_does_not_revive_a_cancelled_report():
    p = pipe()
    p.apply(recorded("C1", "105/01", ["A"], T0, F))
    p.apply(cancelled("C1", T0 + 1))
    p.apply(merged("A", "B", T0 + 2))
    assert standing(p, "B") is None


# -- rejections and duplicates --------------------------------------------------------

def test_already_recorded_rejected():
    p = pipe()
    p.apply(recorded("C1", "105/01", ["A"], T0, F))
    assert status(p.apply(recorded("C1", "019/08", ["A"], T0 + 1, F))) == "already_recorded"
    assert standing(p, "A") == (500, 1, 1)


def test_unknown_crime_ref_rejected_for_every_correction():
    p = pipe()
    for ev in [reclassified("X", "105/01", T0), cancelled("X", T0), linked("X", "A", T0), unlinked("X", "A", T0)]:
        assert status(p.apply(ev)) == "unknown_crime_ref"
    assert p.as_of == 0  # rejected events do not move the clock


def test_cancelled_crime_ref_rejected_for_every_event():
    p = pipe()
    p.apply(recorded("C1", "105/01", ["A"], T0, F))
    p.apply(cancelled("C1", T0))
    for ev in [reclassified("C1", "105/01", T0), cancelled("C1", T0), linked("C1", "A", T0),
               unlinked("C1", "A", T0)]:
        assert status(p.apply(ev)) == "cancelled_crime_ref"
    assert status(p.apply(recorded("C1", "105/01", ["A"], T0, F))) == "already_recorded"


def test_duplicate_event_id_is_noop():
    p = pipe()
    ev = recorded("C1", "105/01", ["A"], T0, F)
    p.apply(ev)
    p.apply(cancelled("C1", T0 + 1))
    assert status(p.apply(ev)) == "duplicate"
    m = merged("A", "B", T0 + 2)
    assert status(p.apply(m)) == "accepted" and status(p.apply(m)) == "duplicate"


def test_duplicate_of_rejected_event_is_judged_again():
    """Only accepted events are remembered: a rejected one re-sent is judged afresh.

    SPEC §2 makes a repeated event_id a no-op; a rejected event had no effect, so
    re-sending it (say from the dead-letter topic, once its report exists)
    applies it then, and a re-send while still invalid is rejected again.
    """
    p = pipe()
    early = linked("C1", "A", T0)
    assert status(p.apply(early)) == "unknown_crime_ref"
    assert status(p.apply(early)) == "unknown_crime_ref"
    p.apply(recorded("C1", "105/01", [], T0, F))
    assert status(p.apply(early)) == "accepted"
    assert standing(p, "A") == (500, 1, 1)
    assert status(p.apply(early)) == "duplicate"


# -- output events ---------------------------------------------------------------------

def test_entered_event_fields():
    p = pipe()
    p.apply(recorded("C1", "105/01", ["A"], T0, (("V1", "F"), ("V2", "F"))))
    last = recorded("C2", "008/06", ["A"], T0 + DAY, F)
    p.apply(last)
    (ev,) = p.flush()
    body = {"type": "ranking.entered", "list": "vawg", "suspect_id": "A", "rank": 1, "score": 187.5, "allegations": 2,
            "victims": 2, "as_of": us_to_iso(T0 + DAY), "cause": last.event_id}
    assert ev == {"event_id": output_event_id(body, 0), **body}  # the list's first event


def test_exit_reason_displaced_with_event_fields():
    p = pipe(top_n=1)
    two(p, "A", "105/01", "105/01", T0, T0, ["A1", "A2"])
    p.flush()
    p.apply(recorded("B1", "019/08", ["B"], T0 + 1, F))
    last = recorded("B2", "019/08", ["B"], T0 + 2, F)
    p.apply(last)
    out, inn = p.flush()
    assert out["type"] == "ranking.exited" and inn["type"] == "ranking.entered"  # exits first
    body = {"type": "ranking.exited", "list": "vawg", "suspect_id": "A", "reason": "displaced", "score": 10.0, "allegations": 2,
            "victims": 1, "as_of": us_to_iso(T0 + 2), "cause": last.event_id}
    assert out == {"event_id": output_event_id(body, 1), **body}  # the second: A's entry was the first
    assert inn["suspect_id"] == "B" and inn["rank"] == 1


def test_exit_reason_expired_with_clock_cause():
    p = pipe(window_days=10)
    two(p, "A", "105/01", "105/01", T0, T0 + DAY, ["A1", "A2"])
    p.flush()
    p.advance(T0 + 10 * DAY)
    (ev,) = p.flush()
    assert (ev["type"], ev["reason"]) == ("ranking.exited", "expired")
    assert ev["cause"] == "clock:" + us_to_iso(T0 + 10 * DAY)
    assert (ev["score"], ev["allegations"]) == (5.0, 1)


def test_exit_reason_expired_when_an_event_moves_the_clock():
    p = pipe(window_days=10)
    two(p, "A", "105/01", "105/01", T0, T0 + DAY, ["A1", "A2"])
    p.flush()
    p.apply(recorded("X1", "105/01", ["X"], T0 + 10 * DAY, F))
    (ev,) = p.flush()
    assert ev["reason"] == "expired" and ev["cause"] == "clock:" + us_to_iso(T0 + 10 * DAY)


def test_exit_reason_corrected_for_cancel_reclassify_unlink():
    for make in [lambda: cancelled("A2", T0 + 5), lambda: reclassified("A2", "092/11", T0 + 5),
                 lambda: unlinked("A2", "A", T0 + 5)]:
        p = pipe()
        two(p, "A", "105/01", "105/01", T0, T0, ["A1", "A2"])
        p.flush()
        ev = make()
        p.apply(ev)
        (out,) = p.flush()
        assert (out["type"], out["reason"], out["cause"]) == ("ranking.exited", "corrected", ev.event_id)
        assert out["allegations"] == 1


def test_exit_reason_merged():
    p = pipe()
    two(p, "A", "105/01", "105/01", T0, T0, ["A1", "A2"])
    p.flush()
    m = merged("A", "B", T0 + 1)
    p.apply(m)
    out, inn = p.flush()
    assert (out["suspect_id"], out["reason"], out["cause"]) == ("A", "merged", m.event_id)
    assert (out["score"], out["allegations"], out["victims"]) == (0.0, 0, 0)
    assert (inn["suspect_id"], inn["type"], inn["score"]) == ("B", "ranking.entered", 10.0)


def test_only_the_changed_member_is_announced_when_membership_is_unchanged():
    p = pipe(top_n=2)
    two(p, "A", "105/01", "105/01", T0, T0, ["A1", "A2"])
    two(p, "B", "008/06", "008/06", T0, T0, ["B1", "B2"])
    assert len(p.flush()) == 2
    p.apply(recorded("A3", "019/08", ["A"], T0 + 1, F))  # A overtakes B: a swap inside the top 2
    assert ranked(p) == ["A", "B"]
    (ev,) = p.flush()  # B's move to rank 2 was caused by A alone: not announced
    assert (ev["type"], ev["suspect_id"], ev["rank"], ev["allegations"]) == ("ranking.updated", "A", 1, 3)
    p.apply(recorded("C1", "105/01", ["C"], T0 + 2, F))  # a suspect far below moves
    assert p.flush() == []


def test_never_more_than_n_members_and_exits_first():
    p = pipe(top_n=2)
    members = set()
    for i, code in enumerate(["105/01", "008/06", "019/08", "008/66", "019/08"]):
        p.apply(recorded(f"R{i}a", code, [f"S{i}"], T0 + i, F))
        p.apply(recorded(f"R{i}b", code, [f"S{i}"], T0 + i, F))
        for ev in p.flush():
            if ev["type"] == "ranking.exited":
                members.remove(ev["suspect_id"])
            else:
                members.add(ev["suspect_id"])
            assert len(members) <= 2
    assert members == set(ranked(p))


def test_output_event_id_deterministic_from_content_and_cause():
    def run(cause_id):
        p = pipe()
        p.apply(recorded("C1", "105/01", ["A"], T0, F))
        p.apply(recorded("C2", "105/01", ["A"], T0 + 1, F, event_id=cause_id))
        return p.flush()[0]["event_id"]

    assert run("X") == run("X")
    assert run("X") != run("Y")
