"""The exit reasons and updates of SPEC §3 where a simpler rule would differ, each case pinned.

An exit's reason is what lowered him (a correction, a merge, the clock), not merely
what last changed him; a member reported again is updated. The oracle predicts both
readings (`reason`: the last change's, `spec_reason`: SPEC's); the core follows SPEC's.
"""
from __future__ import annotations

import pytest

from streams.pipeline import Pipeline
from tests.streams.helpers import DAY, T0, FakeHarm, reclassified, recorded
from tests.streams.oracle import EventOracle, Oracle

HOUR = DAY // 24
F = (("V1", "F"),)
HARM = FakeHarm({"001/10": ("10", True), "001/15": ("15", True), "001/20": ("20", True), "001/25": ("25", True)})


def run(events, **kw):
    """Apply each event and flush; returns the pipeline's and the oracle's events of the last step."""
    kw.setdefault("top_n", 1)
    kw.setdefault("min_allegations", 1)
    pipe = Pipeline(HARM, **kw)
    oracle = EventOracle(Oracle(HARM.oracle_view(), **kw))
    for ev in events:
        pipe.apply(ev)
        emitted = pipe.flush()
        _, predicted = oracle.apply(ev)
    return emitted, predicted


def exit_reason(events) -> str:
    (ex,) = [e for e in events if e["type"] == "ranking.exited"]
    return ex["reason"]


def raised_by_a_correction_and_overtaken():
    """B holds the seat on newest recorded_at; a reclassification raises A and B alike on their shared
    report, and the id tie-break then seats A: B was raised, not lowered."""
    return [recorded("R1", "001/20", ["B"], T0 + 2 * HOUR, F),
            recorded("R2", "001/20", ["A"], T0 + 1 * HOUR, F),
            recorded("R3", "001/10", ["A", "B"], T0 + 3 * HOUR, F, vawg=False),
            reclassified("R3", "001/10", T0 + 4 * HOUR, vawg=True)]


def expired_then_reported_again():
    """B's only VAWG allegation ages out as a non-VAWG report naming him moves the clock."""
    return [recorded("R1", "001/20", ["B"], T0, F),
            recorded("R2", "001/15", ["A"], T0 + 12 * HOUR, F),
            recorded("R3", "001/10", ["B"], T0 + DAY, F, vawg=False)]


def expired_then_raised_by_a_correction():
    """B's 20 ages out as the clock reaches a reclassification that raises his other report to 10:
    A's 15 overtakes him because his allegation aged out."""
    return [recorded("R1", "001/20", ["B"], T0, F),
            recorded("R2", "001/10", ["B"], T0 + 12 * HOUR, F, vawg=False),
            recorded("R3", "001/15", ["A"], T0 + 12 * HOUR, F),
            reclassified("R2", "001/10", T0 + DAY, vawg=True)]


@pytest.mark.parametrize("case, core, spec", [
    (raised_by_a_correction_and_overtaken, "corrected", "displaced"),
    (expired_then_reported_again, "displaced", "expired"),
    (expired_then_raised_by_a_correction, "corrected", "expired"),
])
def test_the_core_gives_the_spec_reading(case, core, spec):
    emitted, predicted = run(case(), window_days=1)
    (ex,) = [p for p in predicted if p["type"] == "ranking.exited"]
    assert (ex["suspect_id"], ex["reason"], ex["spec_reason"]) == ("B", core, spec)
    assert exit_reason(emitted) == spec


def test_raised_by_a_correction_then_overtaken_is_displaced():
    emitted, _ = run(raised_by_a_correction_and_overtaken())
    assert exit_reason(emitted) == "displaced"


def test_aged_out_while_reported_again_is_expired():
    emitted, _ = run(expired_then_reported_again(), window_days=1)
    assert exit_reason(emitted) == "expired"


def test_aged_out_while_raised_by_a_correction_is_expired():
    emitted, _ = run(expired_then_raised_by_a_correction(), window_days=1)
    assert exit_reason(emitted) == "expired"


def test_member_reported_again_is_updated():
    events = [recorded("R1", "001/20", ["A"], T0, F), recorded("R2", "001/10", ["A"], T0 + HOUR, F)]
    emitted, predicted = run(events)
    assert [(p["type"], p["suspect_id"], p["score"]) for p in predicted] == [("ranking.updated", "A", 30)]
    assert [(e["type"], e["suspect_id"], e["score"]) for e in emitted] == [("ranking.updated", "A", 30.0)]

