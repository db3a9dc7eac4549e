"""agents.metrics: names, labels, priming and exposition (SPEC §6: no ids in /metrics)."""
from __future__ import annotations

import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agents import metrics as m

ID_LIKE = re.compile(r"^[SV]\d+$")


def _families():
    m.prime()
    body, _ = m.render()
    return list(text_string_to_metric_families(body.decode("utf-8")))


def _exposed_name(family) -> str:
    return family.name + "_total" if family.type == "counter" else family.name


def test_render_returns_bytes_and_prometheus_content_type():
    body, ctype = m.render()
    assert isinstance(body, bytes)
    assert ctype.startswith("text/plain")


def test_metric_names_match_the_registry_exactly():
    fams = _families()
    exposed = {_exposed_name(f) for f in fams}
    assert exposed == set(m.METRIC_NAMES)
    assert len(m.METRIC_NAMES) == len(set(m.METRIC_NAMES))


def test_naming_conventions():
    for f in _families():
        name = _exposed_name(f)
        assert name.startswith("harmrank_"), name
        assert re.fullmatch(r"harmrank_[a-z_]+", name), name
        if f.type == "counter":
            assert name.endswith("_total"), name
    for name in m.METRIC_NAMES:
        assert not re.search(r"suspect_id|victim|_id\b|_ids\b", name), name


@pytest.mark.parametrize(
    "name,labels",
    [
        ("harmrank_events_consumed_total", {"type", "outcome"}),
        ("harmrank_dead_letters_total", {"reason"}),
        ("harmrank_merges_forwarded_total", set()),
        ("harmrank_ranking_entries_total", set()),
        ("harmrank_ranking_exits_total", {"reason"}),
        ("harmrank_output_events_total", {"type"}),
        ("harmrank_suspects_tracked", set()),
        ("harmrank_suspects_eligible", set()),
        ("harmrank_ranking_members", set()),
        ("harmrank_threshold_score_days", set()),
        ("harmrank_clock_as_of_seconds", set()),
        ("harmrank_consumer_lag_messages", {"stage"}),
        ("harmrank_worker_ready", set()),
        ("harmrank_build_info", {"version"}),
        ("harmrank_stage_failures_total", {"stage"}),
        ("harmrank_skipped_reads_total", {"stage"}),
        ("harmrank_list_members", {"list"}),
        ("harmrank_list_eligible", {"list"}),
        ("harmrank_list_entries_total", {"list"}),
        ("harmrank_list_exits_total", {"list"}),
        ("harmrank_processing_latency_seconds", {"stage"}),
    ],
)
def test_label_names(name, labels):
    fam = {_exposed_name(f): f for f in _families()}[name]
    for s in fam.samples:
        got = set(s.labels) - {"le"}
        assert got == labels, (s.name, s.labels)


def test_prime_creates_every_label_combination():
    fams = {_exposed_name(f): f for f in _families()}

    def values(name, label, sample_suffix=""):
        fam = fams[name]
        return {s.labels[label] for s in fam.samples if s.name == fam.name + sample_suffix}

    consumed = fams["harmrank_events_consumed_total"]
    pairs = {(s.labels["type"], s.labels["outcome"]) for s in consumed.samples if s.name.endswith("_total")}
    assert pairs == {(t, o) for t in m.INPUT_TYPES for o in m.OUTCOMES}
    assert set(m.INPUT_TYPES) == {
        "report.recorded", "report.reclassified", "report.cancelled",
        "suspect.linked", "suspect.unlinked", "suspects.merged", "invalid",
    }
    assert set(m.OUTCOMES) == {"accepted", "dead_lettered", "duplicate"}
    assert values("harmrank_dead_letters_total", "reason", "_total") == set(m.DEAD_LETTER_REASONS)
    assert set(m.DEAD_LETTER_REASONS) == {
        "not_utf8", "oversized", "bad_json", "not_object", "unknown_type", "missing_field",
        "bad_field", "bad_timestamp", "future_timestamp", "unknown_offence_code",
        "unknown_crime_ref", "cancelled_crime_ref", "already_recorded", "self_merge",
    }
    assert values("harmrank_ranking_exits_total", "reason", "_total") == {"displaced", "expired", "corrected", "merged"}
    assert values("harmrank_output_events_total", "type", "_total") == {"ranking.entered", "ranking.exited"}
    assert values("harmrank_consumer_lag_messages", "stage") == {"intake", "register", "ledger", "ranker"}
    assert values("harmrank_processing_latency_seconds", "stage", "_count") == set(m.STAGES)
    (info,) = fams["harmrank_build_info"].samples
    assert info.value == 1 and info.labels["version"]


def test_prime_is_idempotent_and_keeps_counts():
    m.prime()
    before = m.DEAD_LETTERS.labels(reason="bad_json")._value.get()
    m.DEAD_LETTERS.labels(reason="bad_json").inc()
    m.prime()
    assert m.DEAD_LETTERS.labels(reason="bad_json")._value.get() == before + 1


def test_latency_buckets_span_1ms_to_10s():
    assert m.LATENCY_BUCKETS[0] == pytest.approx(0.001)
    assert m.LATENCY_BUCKETS[-1] == pytest.approx(10.0)
    assert list(m.LATENCY_BUCKETS) == sorted(m.LATENCY_BUCKETS)
    m.PROCESSING_LATENCY.labels(stage="ledger").observe(0.002)
    fam = {_exposed_name(f): f for f in _families()}["harmrank_processing_latency_seconds"]
    les = {s.labels["le"] for s in fam.samples if s.name.endswith("_bucket")}
    assert {"0.001", "10.0", "+Inf"} <= les


def test_no_id_like_label_values_after_use():
    # Exercise the metrics the way a worker does, then look at every label value.
    m.EVENTS_CONSUMED.labels(type="report.recorded", outcome="accepted").inc()
    m.DEAD_LETTERS.labels(reason="unknown_crime_ref").inc()
    m.RANKING_ENTRIES.inc()
    m.RANKING_EXITS.labels(reason="displaced").inc()
    m.OUTPUT_EVENTS.labels(type="ranking.entered").inc()
    m.SUSPECTS_TRACKED.set(10)
    m.SUSPECTS_ELIGIBLE.set(4)
    m.RANKING_MEMBERS.set(3)
    m.THRESHOLD_SCORE.set(0)
    m.CLOCK_AS_OF.set(1_740_823_200)
    m.CONSUMER_LAG.labels(stage="intake").set(5)
    m.WORKER_READY.set(1)
    for f in _families():
        for s in f.samples:
            assert s.name.startswith("harmrank_")
            for k, v in s.labels.items():
                assert not ID_LIKE.match(v), (s.name, k, v)
                assert k not in {"suspect_id", "victim_id", "suspect", "victim", "crime_ref", "event_id"}


def test_registry_is_dedicated():
    from prometheus_client import REGISTRY as DEFAULT

    assert m.REGISTRY is not DEFAULT
    assert DEFAULT.get_sample_value("harmrank_ranking_entries_total") is None
