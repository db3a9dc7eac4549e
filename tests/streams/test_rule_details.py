"""Precise example tests of rule details that the property tests reach too rarely.

Each pins one decision of the rule modules (found by mutation testing, see
docs/MUTATION.md): the JSON forms between stages, the stability of output
event ids, how far a bounded book trims.
"""
from __future__ import annotations

import hashlib
import json

import pytest

from schemas.events import us_to_iso
from streams.book import TopBook
from streams.ledger import Ledger
from streams.messages import (Allegation, AllegationUpdate, CandidateUpdate, Summary, allegation_update_from_json,
                              allegation_update_to_json, candidate_update_from_json, candidate_update_to_json)
from streams.ranker import Ranker, output_event_id
from streams.store import DictStore


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


def test_output_event_id_is_the_digest_of_the_place_and_the_canonical_json():
    """The id depends on the body's content, not its key order, and on the event's place in its list."""
    body = {"type": "ranking.exited", "suspect_id": "S9", "reason": "displaced", "score": 40.0}
    canonical = '{"reason":"displaced","score":40.0,"suspect_id":"S9","type":"ranking.exited"}'
    assert output_event_id(body, 7) == hashlib.sha256(("7:" + canonical).encode()).hexdigest()[:32]
    assert output_event_id(dict(reversed(body.items())), 7) == output_event_id(body, 7)
    assert output_event_id(body, 8) != output_event_id(body, 7)


def test_bounded_book_trims_halfway_down_to_n():
    """Over capacity, the waiting entries are cut to half the room between N and capacity."""
    entries = {f"S{i:02}": (i, f"S{i:02}") for i in range(11)}
    book = TopBook(2, 10, lambda: list(entries.values()))
    for key in entries.values():
        book.update(key[-1], key)
    assert book.truncated
    assert len(book) == 2 + (10 - 2) // 2
    assert book.members() == ["S00", "S01"]


def test_book_answers_for_held_and_unheld_idents():
    book = TopBook(1)
    book.update("A", (1, "A"))
    book.update("B", (2, "B"))
    book.update("C", (3, "C"))
    assert ("A" in book, "B" in book, "D" in book) == (True, True, False)
    assert (book.key("B"), book.key("D")) == ((2, "B"), None)
    assert [book.rank(i) for i in "ABCD"] == [1, 2, 3, None]
    assert book.threshold() == (1, "A")
    assert book.top(2) == [(1, "A"), (2, "B")]
    wide = TopBook(2)
    for ident, rank in [("A", 1), ("B", 2), ("C", 3)]:
        wide.update(ident, (rank, ident))
    assert (wide.top(1), wide.top()) == ([(1, "A")], [(1, "A"), (2, "B")])


def test_ranker_threshold_is_the_member_at_rank_n():
    from streams.messages import Summary
    from streams.ranker import Ranker
    from streams.store import DictStore

    rk = Ranker(DictStore(), top_n=2)
    rk.apply(CandidateUpdate("A", True, Summary(500, 2, 10, 1), "added", "e1"))
    assert rk.threshold() is None  # fewer than N
    rk.apply(CandidateUpdate("B", True, Summary(900, 2, 10, 1), "added", "e2"))
    assert rk.threshold() == Summary(500, 2, 10, 1)


def test_book_skips_a_members_stale_copy_at_the_head_of_the_heap():
    """M's old key stays in the heap after he enters by a better one; when X leaves, the
    promotion must look past that copy to the best waiting entry, W."""
    from tests.streams.test_book import run

    seq = [("X", (1,)), ("Y", (2,)), ("M", (3,)), ("W", (4,)), ("M", (0,)), ("Y", (5,)), ("X", None)]
    book = run(2, None, seq)
    assert book.members() == ["M", "W"]


# -- register ------------------------------------------------------------------


def register():
    from streams.register import Register
    from streams.store import DictStore
    from tests.streams.helpers import HARM

    return Register(DictStore(), HARM)


def test_rejection_names_its_ids_and_moves_nothing():
    from tests.streams.helpers import T0, merged, recorded

    reg = register()
    reg.apply(recorded("C1", "105/01", ["A"], T0))
    reg.apply(merged("A", "B", T0))
    out = reg.apply(merged("B", "A", T0))
    assert (out.status, out.rejection[0], out.updates) == ("rejected", "self_merge", [])
    assert "'B'" in out.rejection[1] and "'A'" in out.rejection[1]


def test_link_adds_with_why_added():
    from tests.streams.helpers import T0, linked, recorded

    reg = register()
    reg.apply(recorded("C1", "105/01", ["A"], T0))
    (update,) = reg.apply(linked("C1", "B", T0 + 1)).updates
    assert (update.suspect, update.crime_ref, update.why) == ("B", "C1", "added")


def test_merge_of_two_on_one_report_leaves_no_stale_index_entry():
    """A and B share C1; A merges into B; B is unlinked from C1; B merges into D: D must not get C1."""
    from tests.streams.helpers import T0, linked, merged, recorded, unlinked

    reg = register()
    reg.apply(recorded("C1", "105/01", ["A", "B"], T0))
    reg.apply(merged("A", "B", T0 + 1))
    reg.apply(unlinked("C1", "B", T0 + 2))
    assert reg.apply(merged("B", "D", T0 + 3)).updates == []
    assert reg.report("C1")[4] == []
    (update,) = reg.apply(linked("C1", "D", T0 + 4)).updates  # D is not on C1, so linking him adds him
    assert update.suspect == "D"


def test_alias_chains_resolve_up_to_the_defensive_bound():
    from streams.register import resolve
    from streams.store import DictStore

    chain = DictStore({f"al:S{i}": f"S{i + 1}" for i in range(10_000)})
    assert resolve(chain, "S0") == "S10000"
    chain["al:S10000"] = "S10001"
    with pytest.raises(RuntimeError, match="^alias chain too long$"):
        resolve(chain, "S0")
    cycle = DictStore({"al:A": "B", "al:B": "A"})
    with pytest.raises(RuntimeError):
        resolve(cycle, "A")


# -- ranking order -------------------------------------------------------------


def test_equal_scores_rank_more_allegations_first_in_the_ranker():
    """20 days in one allegation against 2 x 10 days: the second ranks first (SPEC §1), in the
    ranking and in the entered events' ranks."""
    from streams.pipeline import Pipeline
    from tests.streams.helpers import T0, recorded
    from tests.streams.test_event_property import TIE_HARM

    p = Pipeline(TIE_HARM, top_n=2, min_allegations=1)
    p.apply(recorded("C1", "105/01", ["ONE"], T0 + 5))
    assert [(e["suspect_id"], e["rank"]) for e in p.flush()] == [("ONE", 1)]
    p.apply(recorded("C2", "008/06", ["TWO"], T0))
    p.apply(recorded("C3", "008/10", ["TWO"], T0 + 1))
    # each apply is worked and flushed: he enters second, and his second allegation moves him first
    assert [(e["type"], e["suspect_id"], e["rank"]) for e in p.flush()] == [
        ("ranking.entered", "TWO", 2), ("ranking.updated", "TWO", 1)]
    assert [s for _, s, _ in p.ranking()] == ["TWO", "ONE"]


# -- ranker ----------------------------------------------------------------------


def ranker(store=None, top_n=1):
    from streams.ranker import Ranker
    from streams.store import DictStore

    return Ranker(DictStore() if store is None else store, top_n)


def test_ranker_clock_only_moves_forward():
    """Partitions' ledgers pass their own clocks; the ranker keeps the newest."""
    rk = ranker()
    rk.advance(1)
    assert rk.as_of == 1
    rk.advance(10)
    rk.advance(5)
    assert rk.as_of == 10


def test_ranker_restart_announces_with_the_clock_and_the_candidates_standing():
    """A crash after apply and before flush: the restarted ranker, once an update touches it (here
    one that changes nothing at the top), announces the difference, caused by its clock,
    carrying each one's standing."""
    from schemas.events import us_to_iso
    from streams.messages import Summary
    from streams.store import DictStore
    from tests.streams.helpers import T0

    store = DictStore()
    rk = ranker(store)
    rk.advance(T0)
    rk.apply(CandidateUpdate("A", True, Summary(500, 2, T0, 1), "added", "e1"))
    rk.flush()
    rk.apply(CandidateUpdate("B", True, Summary(900, 2, T0, 1), "added", "e2"))
    again = ranker(store)
    again.apply(CandidateUpdate("C", False, None, "displaced", "e3"))
    got = [(e["type"], e["suspect_id"], e.get("reason"), e["score"], e["cause"]) for e in again.flush()]
    clock = "clock:" + us_to_iso(T0)
    assert got == [("ranking.exited", "A", "displaced", 5.0, clock), ("ranking.entered", "B", None, 9.0, clock)]


def test_each_stateful_rejection_names_the_crime_ref():
    """The detail goes to the dead letter with the reason: it says which report."""
    from tests.streams.helpers import T0, cancelled, linked, recorded

    reg = register()
    reg.apply(recorded("C1", "105/01", ["A"], T0))
    reg.apply(cancelled("C1", T0))
    outcomes = [reg.apply(recorded("C1", "105/01", ["A"], T0)), reg.apply(linked("C9", "A", T0)),
                reg.apply(linked("C1", "A", T0))]
    got = [(o.rejection[0], "'C9'" in o.rejection[1] or "'C1'" in o.rejection[1], o.updates) for o in outcomes]
    assert got == [("already_recorded", True, []), ("unknown_crime_ref", True, []), ("cancelled_crime_ref", True, [])]


# -- ledger ----------------------------------------------------------------------


def test_ledger_moves_its_own_clock_to_an_updates_at():
    """Fed by a topic (no advance() first), the ledger takes the clock from each update's `at`:
    an allegation already outside the window at that clock is not kept."""
    from streams.ledger import Ledger
    from streams.messages import Allegation, AllegationUpdate
    from streams.store import DictStore
    from tests.streams.helpers import DAY, T0

    led = Ledger(DictStore(), top_n=1, window_days=5, min_allegations=1)
    old = Allegation("105/01", 500, True, T0, ("V1",))
    led.apply(AllegationUpdate("A", "C1", old, "added", "e1", T0 + 10 * DAY))
    assert (led.as_of, led.summary("A")) == (T0 + 10 * DAY, None)
    led.apply(AllegationUpdate("B", "C2", old._replace(recorded_at=T0 + 9 * DAY), "added", "e2", T0 + 10 * DAY))
    assert led.summary("B") == (500, 1, T0 + 9 * DAY, 1)


def test_lowered_by_the_clock_then_overtaken_keeps_reason_expired():
    """M's older allegation ages out as the clock reaches X's new report, which lifts X above M:
    the exit names the clock's change to M, not the displacement that followed."""
    from streams.pipeline import Pipeline
    from tests.streams.helpers import DAY, T0, recorded
    from tests.streams.test_event_property import TIE_HARM

    p = Pipeline(TIE_HARM, top_n=1, window_days=1, min_allegations=1)
    for ev in [recorded("M1", "008/06", ["M"], T0), recorded("M2", "105/01", ["M"], T0 + DAY // 2),
               recorded("X1", "105/01", ["X"], T0 + DAY // 2)]:
        p.apply(ev)
    p.flush()
    last = recorded("X2", "008/06", ["X"], T0 + DAY)
    p.apply(last)
    got = [(e["type"], e["suspect_id"], e.get("reason"), e["cause"]) for e in p.flush()]
    assert got[0] == ("ranking.exited", "M", "expired", "clock:" + us_to_iso(T0 + DAY))
    assert got[1][:2] == ("ranking.entered", "X")


def test_ledger_batch_of_two_events_about_one_suspect_keeps_the_last_cause():
    """A batch from the topic can hold two events' updates of one suspect; the run summed at once
    is one event's only, so the candidate update names the last event as its cause."""
    from streams.ledger import Ledger
    from streams.messages import Allegation, AllegationUpdate
    from streams.store import DictStore
    from tests.streams.helpers import T0

    led = Ledger(DictStore(), top_n=1, window_days=5, min_allegations=1)
    alleg = Allegation("105/01", 500, True, T0, ("V1",))
    led.apply_many([AllegationUpdate("A", "C1", alleg, "added", "e1", T0),
                    AllegationUpdate("A", "C2", alleg, "added", "e2", T0)])
    (update,) = led.flush()
    assert (update.suspect, update.cause, update.summary) == ("A", "e2", (1000, 2, T0, 1))


def test_rebuilt_bounded_book_holds_no_key_below_what_it_dropped():
    """Rebuilt from five entries with room for three, the book must not later hold a key worse
    than the ones it dropped: when its members leave, the dropped ones come back by refill."""
    truth = {i: (i, i) for i in range(1, 6)}
    book = TopBook(1, 3, lambda: list(truth.values()))
    book.rebuild(truth.values())
    assert (book.refills, len(book), book.truncated) == (1, 3, True)
    for ident, key in [(2, None), (6, (6, 6)), (1, None), (3, None)]:
        if key is None:
            del truth[ident]
        else:
            truth[ident] = key
        book.update(ident, key)
        assert book.members() == [min(truth.values())[-1]]
    assert book.refills == 2  # the last departure left the top empty: refilled once


def test_stage_defaults_are_the_spec_defaults():
    """SPEC §5: TOP_N 100, WINDOW_DAYS 365, MIN_ALLEGATIONS 2."""
    from schemas.events import US_PER_DAY
    from streams.ledger import Ledger
    from streams.ranker import Ranker
    from streams.store import DictStore

    (rule,) = Ledger(DictStore()).rules
    assert (rule.top_n, rule.window_us, rule.spec.min_allegations) == (100, 365 * US_PER_DAY, 2)
    assert Ranker(DictStore()).top_n == 100


def test_late_allegations_within_one_expiry_hour_expire_in_time_order():
    """Allegations of one hour arrive out of time order; the clock then reaches a point inside that
    hour: exactly those recorded at or before it leave the window."""
    from streams.ledger import Ledger
    from streams.messages import Allegation, AllegationUpdate
    from streams.store import DictStore
    from tests.streams.helpers import DAY, T0

    minute = DAY // 24 // 60
    led = Ledger(DictStore(), top_n=1, window_days=1, min_allegations=1)
    for suspect, ref, minutes in [("A", "C1", 30), ("B", "C2", 40), ("Z", "C3", 30), ("Y", "C4", 10)]:
        alleg = Allegation("105/01", 500, True, T0 + minutes * minute, ("V1",))
        led.apply(AllegationUpdate(suspect, ref, alleg, "added", "e-" + ref, T0 + 40 * minute))
    led.advance(T0 + DAY + 35 * minute)
    assert {s: sorted(led.allegations(s)) for s in "ABYZ"} == {"A": [], "B": ["C2"], "Y": [], "Z": []}


def test_ranker_apply_many_applies_each_in_turn():
    from streams.messages import Summary

    rk = ranker(top_n=1)
    rk.apply_many([CandidateUpdate("A", True, Summary(500, 2, 10, 1), "added", "e1"),
                   CandidateUpdate("B", True, Summary(900, 2, 10, 1), "added", "e2")])
    assert [(r, s) for r, s, _ in rk.ranking()] == [(1, "B")]


def test_book_constructor_says_what_is_wrong():
    with pytest.raises(ValueError, match="^n must be at least 1$"):
        TopBook(0)
    with pytest.raises(ValueError, match="^capacity must be at least n$"):
        TopBook(3, 2, lambda: [])
    with pytest.raises(ValueError, match="^a bounded book needs a refill source$"):
        TopBook(3, 5)


T = 1_735_689_600_000_000


def flushed_after(restart: bool, make, first: list, then: list) -> list:
    """What `then` flushes, applied after `first` was flushed: in the same object, or in one made again
    over the same store (a restart, whose first flush rechecks every member)."""
    store = DictStore()
    keeper = make(store)
    for update in first:
        keeper.apply(update)
    keeper.flush()
    if restart:
        keeper = make(store)
    for update in then:
        keeper.apply(update)
    return keeper.flush()


def test_after_a_restart_a_member_displaced_twice_names_the_same_cause_as_without_it():
    """The restart's recheck of every member gives way to the first change that touches him: a member
    displaced, back, and displaced again before a flush names the same cause with or without a restart."""
    def cand(suspect, score, cause):
        return CandidateUpdate(suspect, True, Summary(score, 2, T, 1), "added", cause)

    first = [cand("A", 1000, "E1"), cand("B", 500, "E2")]
    then = [cand("C", 5000, "E-C"), cand("C", 100, "E-C2"), cand("D", 6000, "E-D")]
    kept = flushed_after(False, lambda store: Ranker(store, 1), first, then)
    assert [(e["type"], e["suspect_id"], e["cause"]) for e in kept] == [
        ("ranking.exited", "A", "E-C"), ("ranking.entered", "D", "E-D")]
    assert flushed_after(True, lambda store: Ranker(store, 1), first, then) == kept


def test_after_a_restart_a_ledger_candidate_displaced_twice_names_the_same_cause_as_without_it():
    def alleg(suspect, ref, cents, cause, at):
        return AllegationUpdate(suspect, ref, Allegation("008/06", cents, True, at, ("V1",)), "added", cause, at)

    def gone(suspect, ref, cause, at):
        return AllegationUpdate(suspect, ref, None, "corrected", cause, at)

    first = [alleg("A", "C1", 1000, "E1", T), alleg("B", "C2", 500, "E2", T + 1)]
    then = [alleg("C", "C3", 5000, "E-C", T + 2), gone("C", "C3", "E-C2", T + 3),
            alleg("D", "C4", 6000, "E-D", T + 4)]

    def make(store):
        return Ledger(store, top_n=1, min_allegations=1)

    kept = flushed_after(False, make, first, then)
    assert [(u.suspect, u.candidate, u.why, u.cause) for u in kept] == [
        ("A", False, "displaced", "E-C"), ("D", True, "added", "E-D")]
    assert flushed_after(True, make, first, then) == kept


def test_an_unknown_list_is_named_in_the_ledgers_error():
    with pytest.raises(KeyError, match="no-such-list"):
        Ledger(DictStore()).index_of("no-such-list")


def test_a_merge_moves_every_live_report_of_the_merged_suspect_past_a_cancelled_one():
    from streams.pipeline import Pipeline
    from tests.streams.helpers import HARM, T0, cancelled, merged, recorded
    from tests.streams.oracle import Oracle

    pipe, oracle = Pipeline(HARM), Oracle(HARM.oracle_view())
    for ev in [recorded("C1", "008/06", ["S1"], T0), recorded("C2", "008/06", ["S1"], T0 + 1),
               recorded("C3", "105/01", ["S2"], T0 + 2), cancelled("C1", T0 + 3), merged("S1", "S2", T0 + 4)]:
        pipe.apply(ev)
        oracle.apply(ev)
    assert set(oracle.allegations("S2")) == {"C2", "C3"}
    for suspect in ("S1", "S2"):
        assert set(pipe.ledger.allegations(suspect)) == set(oracle.allegations(suspect)), suspect


def exits_of(events: list) -> list:
    return [(e["suspect_id"], e["reason"]) for e in events if e["type"] == "ranking.exited"]


def test_a_correction_that_makes_him_ineligible_for_an_escalation_list_is_his_exits_reason():
    """SPEC §3 and §7: a reclassification of an earlier allegation raises the harm he must
    outweigh; his score is the same but he is no longer eligible, so the correction lowered him."""
    from schemas.lists import parse_lists
    from streams.pipeline import Pipeline
    from tests.streams.helpers import DAY, HARM, T0, recorded, reclassified

    lists = parse_lists('[[list]]\nname = "rising"\nwindow_days = 20\nrecent_days = 5\nfactor = 1.5\n'
                        'min_allegations = 1\ntop_n = 3\n', "lists.toml")
    pipe = Pipeline(HARM, lists=lists)
    pipe.apply(recorded("E1", "105/01", ["S1"], T0))
    pipe.apply(recorded("R1", "008/06", ["S1"], T0 + 10 * DAY))
    assert [e["type"] for e in pipe.flush()] == ["ranking.entered", "ranking.updated"]  # E1 then earlier
    pipe.apply(reclassified("E1", "019/08", T0 + 10 * DAY + 1))
    assert exits_of(pipe.flush()) == [("S1", "corrected")]


def test_a_cancel_that_leaves_his_score_but_takes_an_allegation_lowers_him():
    """With a zero-harm offence in the table: the cancel leaves his score, takes one of his
    allegations, and a suspect with as many and a newer one passes him: corrected, not displaced."""
    from streams.pipeline import Pipeline
    from tests.streams.helpers import HARM, T0, FakeHarm, cancelled, recorded

    harm = FakeHarm({**{code: (str(days), vawg) for code, (days, vawg) in HARM.oracle_view().items()},
                     "000/00": ("0", True)})
    pipe = Pipeline(harm, top_n=1, min_allegations=1)
    pipe.apply(recorded("A", "008/06", ["S1"], T0))
    pipe.apply(recorded("Z", "000/00", ["S1"], T0 + 1))
    pipe.apply(recorded("B", "008/06", ["S2"], T0 + 2))
    pipe.flush()
    pipe.apply(cancelled("Z", T0 + 3))
    assert exits_of(pipe.flush()) == [("S1", "corrected")]


def alleg_update(suspect, ref, cents, why, cause, at, recorded_at=None):
    allegation = None if cents is None else Allegation("008/06", cents, True, recorded_at or at, ("V1",))
    return AllegationUpdate(suspect, ref, allegation, why, cause, at)


def test_within_a_flush_the_latest_events_lowering_reason_names_the_update():
    """Corrected, then merged away, before one flush: the update names the merge (its reason and cause)."""
    ledger = Ledger(DictStore(), top_n=1, min_allegations=1)
    ledger.apply(alleg_update("S1", "C1", 5000, "added", "E1", T))
    ledger.flush()
    ledger.apply(alleg_update("S1", "C1", 1000, "corrected", "E2", T + 1, recorded_at=T))
    ledger.apply(alleg_update("S1", "C1", None, "merged", "E3", T + 2))
    assert [(u.suspect, u.candidate, u.why, u.cause) for u in ledger.flush()] == [("S1", False, "merged", "E3")]


def test_within_a_flush_an_events_lowering_reason_stays_over_the_clocks():
    """Corrected, then the clock takes an older allegation out of the window, before one flush: the
    update keeps the correction's reason (SPEC §3: an event's reason over the clock's)."""
    day = 86_400_000_000
    ledger = Ledger(DictStore(), top_n=1, window_days=10, min_allegations=1)
    ledger.apply(alleg_update("S1", "C1", 5000, "added", "E1", T))
    ledger.apply(alleg_update("S1", "C2", 5000, "added", "E2", T + 5 * day))
    ledger.flush()
    ledger.apply(alleg_update("S1", "C2", 1000, "corrected", "E3", T + 6 * day, recorded_at=T + 5 * day))
    ledger.advance(T + 10 * day + 1)
    assert [(u.suspect, u.why) for u in ledger.flush()] == [("S1", "corrected")]


def test_after_a_restart_a_change_never_announced_is_announced_with_the_clock_as_its_cause():
    """A ledger that changed and did not flush before a crash: a new one over its store announces the
    difference at its first batch, for those announced before and for members, with cause
    clock:<its as_of> (the batch's own change, S3 here, names its own)."""
    store = DictStore()
    ledger = Ledger(store, top_n=1, min_allegations=1)
    ledger.apply(alleg_update("S1", "C1", 5000, "added", "E1", T))
    ledger.flush()
    ledger.apply(alleg_update("S1", "C1", None, "corrected", "E2", T + 1))  # announced S1 now gone
    ledger.apply(alleg_update("S2", "C2", 3000, "added", "E3", T + 2))  # S2 a member, never announced
    again = Ledger(store, top_n=1, min_allegations=1)
    again.apply(alleg_update("S3", "C3", 100, "added", "E4", T + 2))
    clock = "clock:" + us_to_iso(T + 2)
    assert sorted((u.suspect, u.candidate, u.cause) for u in again.flush()) == [
        ("S1", False, clock), ("S2", True, clock)]


def test_an_exit_is_kept_for_the_briefing_exactly_history_days_and_no_longer():
    from streams.ranker import HISTORY_DAYS

    day = 86_400_000_000
    ranker = Ranker(DictStore(), 1)
    ranker.apply(CandidateUpdate("A", True, Summary(1000, 2, T, 1), "added", "E1"))
    ranker.advance(T)
    ranker.flush()
    ranker.apply(CandidateUpdate("A", False, Summary(0, 0, 0, 0), "corrected", "E2"))
    ranker.flush()
    assert dict(ranker.exits())["A"][0] == T
    ranker.advance(T + HISTORY_DAYS * day)
    ranker.flush()
    assert "A" in dict(ranker.exits())
    ranker.advance(T + (HISTORY_DAYS + 1) * day)
    ranker.flush()
    assert "A" not in dict(ranker.exits())


def test_the_expiry_index_keeps_a_bucket_in_order_of_time_then_suspect_and_crime_ref():
    """Entries indexed out of order within one hour, some at one time, come out of `due` in order."""
    from streams.expiry import ExpiryIndex

    index = ExpiryIndex(DictStore())
    t1, t2 = T + 60_000_000, T + 120_000_000
    for suspect, ref, at in [("S3", "C3", t2), ("S5", "C5", t2), ("S9", "C9", t1), ("S4", "C4", t2),
                             ("S1", "C1", t2)]:
        index.index(suspect, ref, at)
    assert index.due(t2) == [(t1, "S9", "C9"), (t2, "S1", "C1"), (t2, "S3", "C3"), (t2, "S4", "C4"),
                             (t2, "S5", "C5")]


def test_a_books_heap_holds_at_most_twice_its_waiting_entries_and_64():
    """Memory stays flat: stale heap copies (keys that got better, idents gone) are swept once they
    outnumber the waiting entries, so the heap never holds more than 2 x waiting + 64."""
    import random

    for seed in range(3):
        rng = random.Random(seed)
        book = TopBook(5)
        highest = 0
        for _ in range(20_000):
            ident = f"S{rng.randrange(300)}"
            book.update(ident, None if rng.random() < 0.05 else (rng.randrange(1000), ident))
            waiting = len(book) - len(book.members())
            highest = max(highest, len(book._rest) - (2 * waiting + 64))
        assert highest <= 0, seed  # never passed


def test_one_cause_that_displaces_a_suspect_twice_makes_two_event_ids():
    """Two transitions with equal bodies are two events: a consumer that drops re-sends by event_id
    must not drop the second. Here one report (cause E5) names two suspects whose updates reach the
    ranker apart (their ledger partitions differ); the first displaces A, A comes back when the
    first leaves, and the second displaces A again, at the same as_of and score."""
    rk = Ranker(DictStore(), 1)
    rk.advance(T)
    flushes = []
    for update in [CandidateUpdate("A", True, Summary(1000, 1, T, 1), "added", "E1"),
                   CandidateUpdate("B", True, Summary(2000, 1, T, 1), "added", "E5"),
                   CandidateUpdate("B", False, Summary(0, 0, 0, 0), "expired", "clock:x"),
                   CandidateUpdate("C", True, Summary(3000, 1, T, 1), "added", "E5")]:
        rk.apply(update)
        flushes.append(rk.flush())
        assert rk.flush() == []  # nothing changed: no event, and no place taken
    exit1, exit2 = ([e for e in out if e["suspect_id"] == "A"][0] for out in (flushes[1], flushes[3]))
    body = {k: v for k, v in exit1.items() if k != "event_id"}
    assert body == {k: v for k, v in exit2.items() if k != "event_id"}
    assert body["type"] == "ranking.exited" and body["cause"] == "E5"
    assert exit1["event_id"] != exit2["event_id"]
    emitted = [event for out in flushes for event in out]
    assert [len(out) for out in flushes] == [1, 2, 2, 2]
    assert [e["event_id"] for e in emitted] == [
        output_event_id({k: v for k, v in e.items() if k != "event_id"}, seq) for seq, e in enumerate(emitted)]
