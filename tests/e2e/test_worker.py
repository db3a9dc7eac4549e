"""End-to-end: a real tansu broker, real `harmrank worker` subprocesses, no mocks.

Each test runs its own broker (the worker's internal topics and consumer group have
fixed names), its own data directory and its own web port.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections import Counter

import pytest

from schemas.events import us_to_iso
from schemas.harm_table import load_harm_table
from streams.batch import rank_lines, ranking_rows
from streams.simulate import generate

from .conftest import (
    DLQ_TOPIC,
    INPUT_TOPIC,
    batch_rank,
    produce_raw,
    publish_file,
    read_topic,
    replay_membership,
    wait_membership,
    write_feed,
)

pytestmark = pytest.mark.e2e

FEED_EVENTS = 6000


def _topic_partitions(broker, topic: str) -> int:
    from kafka import KafkaConsumer

    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, session_timeout_ms=6000)
    try:
        return len(c.partitions_for_topic(topic) or ())
    finally:
        c.close()


# -- 1. the stream equals the batch ---------------------------------------------------------

def merge_then_old_id(after_us: int) -> list:
    """A merge, and right behind it an unlink and a link that name the old id (SPEC §2: they apply
    to the merged record). B ends with R2 and R3 (two rapes); had the unlink missed the merge, R1 too."""
    def at(k: int) -> str:
        return us_to_iso(after_us + k * 1_000_000)

    victims = [{"id": "V-M", "sex": "F"}]
    return [
        {"event_id": "m1", "type": "report.recorded", "at": at(1), "crime_ref": "M-R1", "offence_code": "019/08",
         "suspects": ["M-B"], "victims": victims},
        {"event_id": "m2", "type": "report.recorded", "at": at(2), "crime_ref": "M-R2", "offence_code": "019/08",
         "suspects": ["M-A"], "victims": victims},
        {"event_id": "m3", "type": "report.recorded", "at": at(3), "crime_ref": "M-R3", "offence_code": "019/08",
         "suspects": ["M-B"], "victims": victims},
        {"event_id": "m4", "type": "suspects.merged", "at": at(4), "suspect_id": "M-A", "into": "M-B"},
        {"event_id": "m5", "type": "suspect.unlinked", "at": at(5), "crime_ref": "M-R1", "suspect_id": "M-A"},
        {"event_id": "m6", "type": "suspect.linked", "at": at(6), "crime_ref": "M-R3", "suspect_id": "M-A"},
    ]


@pytest.mark.parametrize("partitions", [1, 4])
def test_stream_equals_batch(partitions, own_broker, workers, tmp_path):
    events = list(generate(seed=100 + partitions, events=FEED_EVENTS, invalid_rate=0.005))
    if partitions == 1:  # one input partition: the order of merges and corrections is the order published
        newest = rank_lines([json.dumps(e) for e in events], load_harm_table(), clock_now=2**62).as_of
        events += merge_then_old_id(newest)
    feed = write_feed(tmp_path / "feed.jsonl", events)
    expected = batch_rank(feed)
    if partitions == 1:
        merged = next(r for r in expected if r["suspect_id"] == "M-B")
        assert merged["allegations"] == 2 and not any(r["suspect_id"] == "M-A" for r in expected), merged
    assert len(expected) == 100, "the feed should fill a top 100"
    # Published in two halves, the first ranked before the second goes: who the second half
    # displaces from the first half's top 100 must then be announced as leaving, however the
    # worker's batches fall (one batch over a whole file would announce only the end).
    lines = feed.read_bytes().splitlines(keepends=True)
    first, rest = tmp_path / "first.jsonl", tmp_path / "rest.jsonl"
    first.write_bytes(b"".join(lines[:len(lines) // 2]))
    rest.write_bytes(b"".join(lines[len(lines) // 2:]))
    expected_first = batch_rank(first)
    displaced = {r["suspect_id"] for r in expected_first} - {r["suspect_id"] for r in expected}
    assert displaced, "the feed's second half should displace some of the first half's top 100"

    worker = workers(own_broker, partitions=partitions).start()
    worker.wait_ready()
    assert _topic_partitions(own_broker, INPUT_TOPIC) == partitions
    publish_file(own_broker, first)
    worker.wait_ranking_equals(expected_first, timeout=90)
    publish_file(own_broker, rest)

    ranking = worker.wait_ranking_equals(expected, timeout=90)
    assert ranking["as_of"], ranking

    # The ranker's clock reaches the newest event time even when the last event moves nobody
    # (the ledger sends its clock on with no candidate update): one minor report on a new
    # suspect, a minute after the feed.
    newest = rank_lines(feed.read_bytes().splitlines(), load_harm_table(), clock_now=2**62).as_of
    late = us_to_iso(newest + 60_000_000)
    produce_raw(own_broker, [(b"CR-LAST", json.dumps({
        "event_id": "e-last", "type": "report.recorded", "at": late, "crime_ref": "CR-LAST",
        "offence_code": "008/06", "suspects": ["S-LAST"], "victims": [{"id": "V-LAST", "sex": "F"}]}).encode())])
    deadline = time.monotonic() + 15
    while ranking["as_of"] != late and time.monotonic() < deadline:
        time.sleep(0.5)
        ranking = worker.ranking()
    assert ranking["as_of"] == late, (ranking["as_of"], late)
    assert ranking["entries"] == expected

    # harm-ranking, replayed from the beginning: never more than 100 members, every exit
    # after an entry, no double entry, and it ends on exactly the batch top 100.
    events = wait_membership(own_broker, {r["suspect_id"] for r in expected}, top_n=100)
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)), "a crash-free run re-sent an output event"
    exited = {e["suspect_id"] for e in events if e["type"] == "ranking.exited"}
    assert displaced <= exited, f"displaced but never announced as leaving: {sorted(displaced - exited)}"


def test_merges_published_on_other_keys_go_through_the_merge_partition(own_broker, workers, tmp_path):
    """A merge that arrives on another input partition than the key `suspects.merged`'s is forwarded
    there (so one intake sends every merge to the register partitions, in one order) and applied."""
    from agents.intake import merge_partition
    from schemas.events import MERGE_KEY

    events = [e for e in generate(seed=505, events=3000, invalid_rate=0.0) if e["type"] != "suspects.merged"]
    crime = write_feed(tmp_path / "crime.jsonl", events)
    before = batch_rank(crime)
    newest = rank_lines(crime.read_bytes().splitlines(), load_harm_table(), clock_now=2**62).as_of
    top = [r["suspect_id"] for r in before[:80]]
    merges = [{"event_id": f"fm-{k}", "type": "suspects.merged", "at": us_to_iso(newest + (k + 1) * 1_000_000),
               "suspect_id": top[2 * k], "into": top[2 * k + 1]} for k in range(40)]
    expected = batch_rank(write_feed(tmp_path / "whole.jsonl", events + merges))
    assert expected != before

    worker = workers(own_broker, partitions=4).start()
    worker.wait_ready()
    publish_file(own_broker, crime)
    placed = produce_raw(own_broker, [(m["suspect_id"].encode(), json.dumps(m).encode()) for m in merges])
    home = merge_partition(4)
    away = {m["event_id"] for m, (partition, _) in zip(merges, placed) if partition != home}
    assert away, "some merges should land on other partitions than the merge partition"
    worker.wait_ranking_equals(expected, timeout=90)

    records = read_topic(own_broker, INPUT_TOPIC, expected=len(events) + len(merges) + len(away))
    forwarded = {json.loads(r.value)["event_id"] for r in records if r.key == MERGE_KEY and r.partition == home}
    assert forwarded == away


# -- 2. kill -9 in the middle, restart ------------------------------------------------------

def test_kill_minus_9_and_restart(own_broker, workers, tmp_path):
    events = list(generate(seed=202, events=FEED_EVENTS, invalid_rate=0.005))
    half = len(events) // 2
    first = write_feed(tmp_path / "first.jsonl", events[:half])
    second = write_feed(tmp_path / "second.jsonl", events[half:])
    whole = write_feed(tmp_path / "whole.jsonl", events)
    expected = batch_rank(whole)
    assert len(expected) == 100

    worker = workers(own_broker, partitions=4).start()
    worker.wait_ready()
    publish_file(own_broker, first)
    time.sleep(3.0)  # mid-processing
    worker.kill9()
    assert not worker.alive()
    publish_file(own_broker, second)

    worker.start()  # same data dir, same port
    worker.wait_ready(timeout=120)
    worker.wait_ranking_equals(expected, timeout=120)

    out = wait_membership(own_broker, {r["suspect_id"] for r in expected}, top_n=100, dedup=True)
    assert out

    # A clean stop and a restart with no new input: the ranking is there from the recovered state.
    worker.stop()
    worker.start()
    worker.wait_ready(timeout=120)
    worker.wait_ranking_equals(expected, timeout=15)


def _suspects_differ(worker, pipe) -> list:
    """The suspects whose standing on the worker (/suspects) is not the batch pipeline's."""
    wrong = []
    for key, _ in pipe.ledger.store.scan("p:"):
        suspect = key[2:]
        summary = pipe.ledger.summary(suspect)
        doc = worker.get_json(f"/suspects/{suspect}")
        if (doc["score"], doc["allegations_in_window"]) != (summary.score / 100, summary.allegations):
            wrong.append((suspect, doc["score"], summary.score / 100))
    return wrong


@pytest.mark.parametrize("table", ["register", "ledger"])
def test_a_kill_between_local_state_and_changelog_loses_nothing_on_another_worker(
        table, own_broker, workers, tmp_path):
    """kill -9 after a batch's state is in local RocksDB and before its changelog is; a restart on
    the same data skips that batch's input (already applied), so unless the restart sends those
    keys to the changelog, a worker that rebuilds from the changelogs never has them."""
    harm = load_harm_table()
    events = list(generate(seed=404, events=3000, invalid_rate=0.0))
    first = write_feed(tmp_path / "first.jsonl", events[:1500])
    rest = write_feed(tmp_path / "rest.jsonl", events[1500:])
    whole = write_feed(tmp_path / "whole.jsonl", events)
    result = rank_lines(whole.read_bytes().splitlines(), harm)
    # Then every report is reclassified: what the register lost shows as dead letters.
    refs = [e["crime_ref"] for e in events if e.get("type") == "report.recorded"]
    tail = [{"event_id": f"tail-{i}", "type": "report.reclassified", "at": us_to_iso(result.as_of + 1_000_000),
             "crime_ref": ref, "offence_code": "008/66"} for i, ref in enumerate(refs)]
    tail_feed = write_feed(tmp_path / "tail.jsonl", tail)
    after_tail = rank_lines(whole.read_bytes().splitlines() + tail_feed.read_bytes().splitlines(), harm)

    first_worker = workers(own_broker, partitions=4,
                           faults={"TEST_FAULT_KILL_AFTER_LOCAL_WRITE": f"{table}:2"}).start()
    first_worker.wait_ready()
    publish_file(own_broker, first)
    deadline = time.monotonic() + 60
    while first_worker.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert first_worker.proc.returncode == -9, f"the crash point was not reached:\n{first_worker.log_tail()}"

    first_worker.faults = {}
    first_worker.start()  # same data directory: its RocksDB holds the batch its changelog may lack
    first_worker.wait_ready(timeout=120)
    publish_file(own_broker, rest)
    expected = batch_rank(whole)
    first_worker.wait_ranking_equals(expected, timeout=120)
    first_worker.stop()

    fresh = workers(own_broker, partitions=4).start()  # an empty data directory: state from the changelogs
    fresh.wait_ready(timeout=120)
    recovered = fresh.log_tail(10**7)
    assert "changelogs read in bulk" in recovered and "left to Faust" not in recovered  # compat.faust_bulk_recovery
    fresh.wait_ranking_equals(expected, timeout=120)
    assert _suspects_differ(fresh, result.pipeline) == []
    publish_file(own_broker, tail_feed)
    fresh.wait_ranking_equals(ranking_rows(after_tail), timeout=120)
    assert _suspects_differ(fresh, after_tail.pipeline) == []


# -- 3. the wall clock expires allegations with no new input --------------------------------

def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


def _report(event_id: str, at: str, crime_ref: str, code: str, suspect: str, victim: str) -> dict:
    return {"event_id": event_id, "type": "report.recorded", "at": at, "crime_ref": crime_ref,
            "offence_code": code, "suspects": [suspect], "victims": [{"id": victim, "sex": "F"}]}


def test_wall_clock_expiry(own_broker, workers, tmp_path):
    worker = workers(own_broker, partitions=4, clock="wall", tick_seconds=1, top_n=3, min_allegations=2).start()
    worker.wait_ready()

    now = dt.datetime.now(dt.timezone.utc)
    margin = dt.timedelta(seconds=12)  # the old reports leave the window this long after now
    old_at = now - dt.timedelta(days=365) + margin
    recent_at = now - dt.timedelta(days=1)
    old = ["SOLD1", "SOLD2"]
    recent = "SNEW1"
    feed = []
    for i, s in enumerate(old):
        feed.append(_report(f"e-old-{i}-a", _iso(old_at), f"CR-OLD-{i}-A", "105/01", s, f"VOLD{i}"))
        feed.append(_report(f"e-old-{i}-b", _iso(old_at + dt.timedelta(milliseconds=10 * i)),
                            f"CR-OLD-{i}-B", "008/06", s, f"VOLD{i}"))
    feed.append(_report("e-new-a", _iso(recent_at), "CR-NEW-A", "008/06", recent, "VNEW"))
    feed.append(_report("e-new-b", _iso(recent_at), "CR-NEW-B", "105/01", recent, "VNEW"))
    produce_raw(own_broker, [(e["crime_ref"].encode(), json.dumps(e).encode()) for e in feed])

    # all three enter while the old reports are in the window...
    deadline = time.monotonic() + 60
    entered, exits = set(), []
    while time.monotonic() < deadline:
        outs = [json.loads(r.value) for r in read_topic(own_broker, "harm-ranking", quiet=1.0, timeout=10)]
        replay_membership(outs, top_n=3)
        entered = {e["suspect_id"] for e in outs if e["type"] == "ranking.entered"}
        exits = [e for e in outs if e["type"] == "ranking.exited"]
        if {e["suspect_id"] for e in exits} >= set(old):
            break
        time.sleep(1.0)
    assert entered == set(old) | {recent}, f"entered {entered}\n{worker.log_tail(1500)}"
    # ... and the old ones leave once the wall clock moves past them, with no new input
    by_suspect = {e["suspect_id"]: e for e in exits}
    assert set(by_suspect) == set(old), f"exits: {exits}\n{worker.log_tail(1500)}"
    for s in old:
        e = by_suspect[s]
        assert e["reason"] == "expired", e
        assert e["cause"].startswith("clock:"), e
    ranking = worker.ranking()
    assert [r["suspect_id"] for r in ranking["entries"]] == [recent], ranking
    assert worker.get("/readyz")[0] == 200


# -- 4. every kind of bad input goes to the dead-letter topic -------------------------------

_DLQ_AT = "2025-06-01T10:00:00+00:00"


def _dlq_event(eid: str, etype: str, **fields) -> dict:
    """An input event of the dead-letter test, at its fixed time unless ``at`` is given."""
    return {"event_id": eid, "type": etype, "at": fields.pop("at", _DLQ_AT), **fields}


def _dlq_report(eid: str, ref: str, suspects: list, code: str = "008/06", victim: str = "VG1", **extra) -> dict:
    """A report.recorded of the dead-letter test, one female victim."""
    return _dlq_event(eid, "report.recorded", crime_ref=ref, offence_code=code, suspects=suspects,
                      victims=[{"id": victim, "sex": "F"}], **extra)


def _dlq_good_events() -> list:
    """The valid events sent alongside the bad ones: three suspects ranked, one crime cancelled."""
    rec, ev = _dlq_report, _dlq_event
    return [
        rec("g1", "CR-G1", ["SG1"], "008/06", "VG1"),
        rec("g2", "CR-G2", ["SG1"], "019/08", "VG2"),
        rec("g3", "CR-G3", ["SG2"], "105/01", "VG3"),
        rec("g4", "CR-G4", ["SG2"], "008/66", "VG3"),
        rec("g5", "CR-G5", ["SG3", "SG2"], "008/06", "VG4"),
        rec("g6", "CR-G6", ["SG3"], "003/01", "VG5"),
        rec("g7", "CR-CANCEL", ["SG3"], "008/06", "VG6"),
        ev("g8", "report.cancelled", crime_ref="CR-CANCEL"),
    ]


def _dlq_bad_messages() -> list:
    """Every kind of bad input, as (label, key, raw bytes, expected reason prefix)."""
    rec, ev = _dlq_report, _dlq_event
    future = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)).isoformat()
    oversized = rec("b-big", "CR-BIG", ["SG1"], "008/06", "VG1", padding="x" * (70 * 1024))
    return [
        ("not_utf8", b"CR-X1", b'{"event_id": "\xff\xfe\xfd", "type": "report.cancelled"}', "not_utf8"),
        ("not_json", None, b"{this is not json", "bad_json"),
        ("array", None, b'[{"event_id": "b-arr"}]', "not_object"),
        ("unknown_type", b"CR-G1", json.dumps(ev("b-type", "report.deleted", crime_ref="CR-G1")).encode(),
         "unknown_type"),
        ("missing_field", b"CR-MISS", json.dumps({k: v for k, v in rec("b-miss", "CR-MISS", ["SG1"]).items()
                                                   if k != "victims"}).encode(), "missing_field"),
        ("bad_field_type", b"CR-BADT", json.dumps(rec("b-badt", "CR-BADT", ["SG1"], code=105)).encode(),
         "bad_field"),
        ("bad_timestamp", b"CR-TS", json.dumps(rec("b-ts", "CR-TS", ["SG1"], at="2025-13-45T99:00:00Z")).encode(),
         "bad_timestamp"),
        ("future", b"CR-FUT", json.dumps(rec("b-fut", "CR-FUT", ["SG1"], at=future)).encode(), "future_timestamp"),
        ("unknown_code", b"CR-UNK", json.dumps(rec("b-code", "CR-UNK", ["SG1"], code="999/99")).encode(),
         "unknown_offence_code"),
        ("oversized", b"CR-BIG", json.dumps(oversized).encode(), "oversized"),
        ("unknown_crime_ref", b"CR-NOPE", json.dumps(ev("b-nope", "report.cancelled", crime_ref="CR-NOPE")).encode(),
         "unknown_crime_ref"),
        ("already_recorded", b"CR-G1", json.dumps(rec("b-again", "CR-G1", ["SG9"], "019/08")).encode(),
         "already_recorded"),
        ("cancelled", b"CR-CANCEL", json.dumps(ev("b-canc", "suspect.linked", crime_ref="CR-CANCEL",
                                                  suspect_id="SG9")).encode(), "cancelled_crime_ref"),
        ("self_merge", b"suspects.merged", json.dumps(ev("b-self", "suspects.merged", suspect_id="SG1",
                                                         into="SG1")).encode(), "self_merge"),
    ]


def _assert_one_letter_per_bad_message(letters: list, bad: list, placed: list, worker) -> None:
    """Each bad message has exactly one dead letter: its payload, its reason, its source offset."""
    assert len(letters) == len(bad), f"{len(letters)} dead letters for {len(bad)} bad messages:\n" + \
        "\n".join(str({k: (v if k != 'payload' else v[:80]) for k, v in x.items()}) for x in letters) + \
        f"\n{worker.log_tail(1500)}"
    by_payload = {}
    for letter in letters:
        assert set(letter) >= {"reason", "topic", "partition", "offset", "payload"}, letter
        by_payload.setdefault(letter["payload"], []).append(letter)
    for (label, _, raw, prefix), (partition, offset) in zip(bad, placed):
        payload = base64.b64encode(raw).decode("ascii") if label == "not_utf8" else raw.decode("utf-8")
        found = by_payload.get(payload)
        assert found and len(found) == 1, f"{label}: no single dead letter with its payload ({found})"
        letter = found[0]
        assert letter["reason"].startswith(prefix), f"{label}: reason {letter['reason']!r}, expected {prefix}"
        assert (letter["topic"], letter["partition"], letter["offset"]) == (INPUT_TOPIC, partition, offset), \
            f"{label}: source {letter['topic']}/{letter['partition']}@{letter['offset']}, " \
            f"expected {INPUT_TOPIC}/{partition}@{offset}"


def _assert_dead_letter_metric_matches(worker, letters: list) -> None:
    """harmrank_dead_letters_total{reason} matches the dead-letter topic, reason by reason."""
    from prometheus_client.parser import text_string_to_metric_families

    dlq_counts = Counter(letter["reason"].split(":", 1)[0] for letter in letters)
    status, body = worker.get("/metrics")
    assert status == 200
    metric_counts = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "harmrank_dead_letters_total":
                metric_counts[sample.labels["reason"]] = int(sample.value)
    assert metric_counts, "no harmrank_dead_letters_total in /metrics"
    for reason in set(metric_counts) | set(dlq_counts):
        assert metric_counts.get(reason, 0) == dlq_counts.get(reason, 0), \
            f"reason {reason}: metric {metric_counts.get(reason, 0)}, dead-letter topic {dlq_counts.get(reason, 0)}"


def test_bad_input_goes_to_dead_letter_topic(own_broker, workers, tmp_path):
    good = _dlq_good_events()
    bad = _dlq_bad_messages()
    oversized_raw = next(raw for label, _, raw, _ in bad if label == "oversized")
    assert len(oversized_raw) > 64 * 1024

    # the file-expressible part, for `harmrank rank` (every line but the non-UTF-8 one)
    lines = [json.dumps(e) for e in good] + [raw.decode() for label, _, raw, _ in bad if label != "not_utf8"]
    feed = tmp_path / "mixed.jsonl"
    feed.write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected = batch_rank(feed)
    assert {r["suspect_id"] for r in expected} == {"SG1", "SG2", "SG3"}, expected

    worker = workers(own_broker, partitions=4).start()
    worker.wait_ready()
    good_msgs = [(e["crime_ref"].encode(), json.dumps(e).encode()) for e in good]
    produce_raw(own_broker, good_msgs)
    placed = produce_raw(own_broker, [(k, raw) for _, k, raw, _ in bad])

    records = read_topic(own_broker, DLQ_TOPIC, expected=len(bad), quiet=2.0, timeout=90)
    letters = [json.loads(r.value) for r in records]
    _assert_one_letter_per_bad_message(letters, bad, placed, worker)

    assert worker.get("/readyz")[0] == 200
    worker.wait_ranking_equals(expected, timeout=60)
    _assert_dead_letter_metric_matches(worker, letters)


# -- 6. two workers share the partitions; either one answers the API ----------------------

def test_two_workers_share_the_work_and_either_answers(own_broker, workers, tmp_path):
    feed = write_feed(tmp_path / "feed.jsonl", generate(seed=606, events=FEED_EVENTS, invalid_rate=0.0))
    expected = batch_rank(feed)
    first = workers(own_broker, partitions=4).start()
    first.wait_ready()
    second = workers(own_broker, partitions=4).start()
    second.wait_ready()
    publish_file(own_broker, feed)
    # Each worker answers /ranking with the whole top N, whichever of them holds the ranker.
    first.wait_ranking_equals(expected, timeout=120)
    second.wait_ranking_equals(expected, timeout=60)
    top = expected[0]["suspect_id"]
    for w in (first, second):
        body = w.get_json(f"/suspects/{top}", token=w.token)
        assert body["suspect_id"] == top
        assert body["score"] == expected[0]["score"]
        assert body["allegations_in_window"] == expected[0]["allegations"]
        assert body["rank"] == 1


# -- 7. the broker lost its data (tansu's memory engine restarted) --------------------------

def test_restart_after_the_broker_lost_its_data(own_broker, workers, tmp_path):
    from agents.local_broker import LocalBroker

    first_half = write_feed(tmp_path / "a.jsonl", generate(seed=707, events=1500, invalid_rate=0.0))
    data_dir = tmp_path / "kept-data"
    worker = workers(own_broker, data_dir=data_dir, partitions=2).start()
    worker.wait_ready()
    publish_file(own_broker, first_half)
    worker.wait_ranking_equals(batch_rank(first_half), timeout=90)
    worker.stop()
    port = own_broker.port
    own_broker.stop()  # every topic, changelog and committed offset is gone
    reborn = LocalBroker(port=port)
    reborn.start(timeout=15)
    try:
        second = write_feed(tmp_path / "b.jsonl", generate(seed=708, events=1500, invalid_rate=0.0))
        again = workers(reborn, data_dir=data_dir, partitions=2).start()
        again.wait_ready()  # no crash on the stale local state
        assert "discarding the local state and starting clean" in again.log_tail(100_000)
        publish_file(reborn, second)
        # The new ranking is the new broker's feed alone: the old state was not mixed in.
        again.wait_ranking_equals(batch_rank(second), timeout=90)
    finally:
        reborn.stop()
