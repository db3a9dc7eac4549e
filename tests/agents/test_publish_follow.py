"""`harmrank publish` and `harmrank follow` against the real tansu broker."""
from __future__ import annotations

import io
import json
import threading
import time

import pytest

from agents.commands import follow as follow_mod
from agents.commands import publish as publish_mod
from agents.commands.follow import format_event
from agents.commands.publish import event_key, publish_lines
from agents.kafka_admin import ensure_topics
from agents.local_broker import free_port

pytestmark = pytest.mark.e2e

RECORDED = {"event_id": "e1", "type": "report.recorded", "at": "2025-03-01T10:00:00+00:00",
            "crime_ref": "CR1", "offence_code": "008/06", "suspects": ["S1"],
            "victims": [{"id": "V1", "sex": "F"}]}
MERGED = {"event_id": "e2", "type": "suspects.merged", "at": "2025-03-01T10:01:00+00:00",
          "suspect_id": "S1", "into": "S2"}
LINKED = {"event_id": "e3", "type": "suspect.linked", "at": "2025-03-01T10:02:00Z",
          "crime_ref": "CR1", "suspect_id": "S3"}

# (raw line, expected key)
LINES = [
    (json.dumps(RECORDED), b"CR1"),
    (json.dumps(MERGED), b"suspects.merged"),
    ("{not json at all", None),
    ("  ", "blank"),  # blank: not sent
    (json.dumps(LINKED, separators=(",", ":")) + "  ", b"CR1"),  # trailing spaces kept
    ('[1, 2, 3]', None),
    ('{"event_id": "e4", "type": "report.cancelled", "crime_ref": 17}', None),
    ('{"crime_ref": "CR\u00e9", "x": 1}', "CR\u00e9".encode()),
]


def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 15.0):
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, session_timeout_ms=6000)
    try:
        deadline = time.monotonic() + timeout
        while not c.partitions_for_topic(topic):
            assert time.monotonic() < deadline, f"topic {topic} never appeared"
            time.sleep(0.1)
        tps = [TopicPartition(topic, p) for p in c.partitions_for_topic(topic)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        out = []
        while len(out) < expected and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=200).values():
                out.extend(recs)
        time.sleep(0.2)
        for recs in c.poll(timeout_ms=200).values():  # nothing extra
            out.extend(recs)
        return out
    finally:
        c.close()


def write_jsonl(tmp_path, lines):
    path = tmp_path / "events.jsonl"
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    return path


@pytest.fixture
def fast_connect(monkeypatch):
    monkeypatch.setattr(publish_mod, "CONNECT_TIMEOUT", 0.5)
    monkeypatch.setattr(follow_mod, "CONNECT_TIMEOUT", 0.5)


def test_event_key():
    assert event_key(json.dumps(RECORDED).encode()) == (b"CR1", None)
    assert event_key(json.dumps(MERGED)) == (b"suspects.merged", None)
    assert event_key(b"{nope") == (None, "not JSON")
    assert event_key(b"[1]") == (None, "not a JSON object")
    assert event_key(b"\xff\xfe") == (None, "not JSON")


def test_publish_file_roundtrip(broker, fresh_topics, tmp_path, capsys):
    topic = fresh_topics("crime-reports")
    ensure_topics(broker.bootstrap, {topic: 4})
    path = write_jsonl(tmp_path, [line for line, _ in LINES])
    code = publish_mod.main([str(path), "--broker", broker.url, "--topic", topic])
    out, err = capsys.readouterr()
    assert code == 0, err
    sent = [(line, key) for line, key in LINES if key != "blank"]
    assert f"sent {len(sent)} events in " in out and ", 0 failed" in out
    assert "line 3: not JSON, sent as-is for the dead-letter topic" in err
    assert "line 6: not a JSON object, sent as-is for the dead-letter topic" in err
    assert "Traceback" not in err

    records = consume_all(broker.bootstrap, topic, len(sent))
    assert len(records) == len(sent)
    got = sorted((r.value, r.key) for r in records)
    want = sorted((line.encode("utf-8"), key) for line, key in sent)
    assert got == want
    # The two CR1 events share a partition, in file order.
    cr1 = [r for r in records if r.key == b"CR1"]
    assert len({r.partition for r in cr1}) == 1
    assert [json.loads(r.value)["event_id"] for r in sorted(cr1, key=lambda r: r.offset)] == ["e1", "e3"]


def test_publish_stdin_and_function(broker, fresh_topics, monkeypatch, capsys):
    topic = fresh_topics("crime-reports")
    data = "".join(json.dumps(dict(RECORDED, event_id=f"e{i}", crime_ref=f"CR{i}")) + "\r\n" for i in range(50))
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data.encode())))
    # the topic does not exist yet: tansu auto-creates it on produce
    assert publish_mod.main(["-", "--broker", broker.url, "--topic", topic, "--progress"]) == 0
    assert "sent 50 events" in capsys.readouterr().out
    records = consume_all(broker.bootstrap, topic, 50)
    assert sorted(r.key for r in records) == sorted(f"CR{i}".encode() for i in range(50))
    assert all(not r.value.endswith(b"\r") for r in records)

    result = publish_lines([json.dumps(MERGED), b"", "oops\n"], broker.bootstrap, topic, rate=100)
    assert (result.sent, result.failed, result.errors, result.lines) == (2, 0, [], 2)
    assert result.not_json == [(3, "not JSON")]


def test_publish_missing_file(capsys):
    assert publish_mod.main(["/nonexistent/events.jsonl"]) == 2
    err = capsys.readouterr().err
    assert "cannot read /nonexistent/events.jsonl" in err and "Traceback" not in err


def test_publish_broker_unreachable(tmp_path, capsys, fast_connect):
    path = write_jsonl(tmp_path, [json.dumps(RECORDED)])
    assert publish_mod.main([str(path), "--broker", f"kafka://127.0.0.1:{free_port()}"]) == 2
    err = capsys.readouterr().err
    assert "broker unreachable at 127.0.0.1:" in err and "Traceback" not in err


def test_publish_bad_setting(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HARMRANK_BROKER", "kafka://")
    path = write_jsonl(tmp_path, [json.dumps(RECORDED)])
    assert publish_mod.main([str(path)]) == 2
    assert "no broker address" in capsys.readouterr().err


ENTERED = {"event_id": "o1", "type": "ranking.entered", "suspect_id": "S123", "rank": 17,
           "score": 2419.0, "allegations": 3, "victims": 2, "as_of": "2025-03-01T10:00:00+00:00",
           "cause": "e1"}
EXITED = {"event_id": "o2", "type": "ranking.exited", "suspect_id": "S9", "reason": "displaced",
          "score": 40.0, "allegations": 2, "victims": 1, "as_of": "2025-03-01T10:05:00+00:00",
          "cause": "clock:2025-03-01T10:05:00+00:00"}


def test_format_event():
    assert format_event(json.dumps(ENTERED).encode()) == \
        "2025-03-01 10:00  ENTER  #17   S123  score 2419.0  3 allegations  2 victims"
    assert format_event(json.dumps(EXITED)) == \
        "2025-03-01 10:05  EXIT         S9  displaced  score 40.0  2 allegations  1 victim"
    assert format_event(b"garbage").endswith("garbage")
    assert format_event(dict(ENTERED, score=12.25)).endswith("score 12.25  3 allegations  2 victims")


def _publish_ranking(broker, topic, events):
    lines = [json.dumps(e) for e in events]
    result = publish_lines(lines, broker.bootstrap, topic)
    assert result.sent == len(lines) and result.failed == 0


@pytest.mark.parametrize("as_json", [False, True])
def test_follow_from_beginning(broker, fresh_topics, capsys, as_json):
    topic = fresh_topics("harm-ranking")
    ensure_topics(broker.bootstrap, {topic: 1})
    _publish_ranking(broker, topic, [ENTERED, EXITED, ENTERED])
    argv = ["--broker", broker.url, "--topic", topic, "--from-beginning", "--max", "2", "--timeout", "10"]
    code = follow_mod.main(argv + (["--json"] if as_json else []))
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in err
    lines = out.splitlines()
    assert len(lines) == 2
    if as_json:
        assert [json.loads(line) for line in lines] == [ENTERED, EXITED]
    else:
        assert lines[0].startswith("2025-03-01 10:00  ENTER  #17") and "S123" in lines[0]
        assert "EXIT" in lines[1] and "S9  displaced  score 40.0" in lines[1]


def test_follow_list_prints_only_that_lists_events(broker, fresh_topics, capsys):
    topic = fresh_topics("harm-ranking")
    ensure_topics(broker.bootstrap, {topic: 1})
    events = [dict(ENTERED, list="vawg"), dict(ENTERED, list="rising", suspect_id="S7"), dict(EXITED, list="vawg"),
              dict(EXITED, list="rising", suspect_id="S7")]
    _publish_ranking(broker, topic, events)
    argv = ["--broker", broker.url, "--topic", topic, "--from-beginning", "--max", "2", "--timeout", "10", "--json",
            "--list", "rising"]
    assert follow_mod.main(argv) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == [events[1], events[3]]


def test_follow_prints_a_resent_event_once(broker, fresh_topics, capsys):
    """A worker's restart may send its last batch's events again, with their event_ids: printed once."""
    topic = fresh_topics("harm-ranking")
    ensure_topics(broker.bootstrap, {topic: 1})
    later = dict(ENTERED, event_id="o3", suspect_id="S124", rank=18)
    _publish_ranking(broker, topic, [ENTERED, EXITED, EXITED, ENTERED, later])
    argv = ["--broker", broker.url, "--topic", topic, "--from-beginning", "--max", "3", "--timeout", "10", "--json"]
    assert follow_mod.main(argv) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == [ENTERED, EXITED, later]


def test_first_seen_forgets_the_oldest_id_beyond_its_window():
    first_seen = follow_mod.FirstSeen(size=2)
    kept = [first_seen({"event_id": i}) for i in ["a", "b", "a", "c", "b", "a"]]
    assert kept == [True, True, False, True, False, True]  # "a" left the window when "c" came
    assert first_seen(None) and first_seen(None)  # not an event
    assert first_seen({"type": "x"}) and first_seen({"type": "x"})  # no id: nothing to compare


def test_follow_from_end_skips_history(broker, fresh_topics):
    topic = fresh_topics("harm-ranking")
    ensure_topics(broker.bootstrap, {topic: 2})
    # History, produced in batches: tansu's LATEST offset points inside the last batch.
    _publish_ranking(broker, topic, [dict(EXITED, event_id=f"old{i}") for i in range(20)])
    seen: list = []
    done = threading.Event()

    def run():
        follow_mod.follow(broker.bootstrap, topic, seen.append, max_events=2, idle_timeout=10)
        done.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    time.sleep(1.5)  # let it find the end
    _publish_ranking(broker, topic, [dict(ENTERED, event_id="new1"), dict(ENTERED, event_id="new2")])
    assert done.wait(15)
    assert sorted(json.loads(v)["event_id"] for v in seen) == ["new1", "new2"]


def test_follow_idle_timeout_on_empty_topic(broker, fresh_topics, capsys):
    topic = fresh_topics("harm-ranking")
    ensure_topics(broker.bootstrap, {topic: 1})
    t0 = time.monotonic()
    assert follow_mod.main(["--broker", broker.url, "--topic", topic, "--timeout", "1"]) == 0
    assert time.monotonic() - t0 < 8
    assert capsys.readouterr().out == ""


def test_follow_broker_unreachable(capsys, fast_connect):
    assert follow_mod.main(["--broker", f"kafka://127.0.0.1:{free_port()}", "--max", "1"]) == 2
    err = capsys.readouterr().err
    assert "broker unreachable" in err and "Traceback" not in err


def test_follow_waits_for_missing_topic(broker, fresh_topics):
    topic = fresh_topics("harm-ranking")  # does not exist yet
    seen: list = []
    waiting: list = []
    done = threading.Event()

    def run():
        follow_mod.follow(broker.bootstrap, topic, seen.append, max_events=1, idle_timeout=10,
                          on_waiting=waiting.append)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    time.sleep(1.0)
    assert waiting and "waiting for topic" in waiting[0]
    _publish_ranking(broker, topic, [ENTERED])  # auto-creates the topic
    assert done.wait(15)
    assert [json.loads(v) for v in seen] == [ENTERED]


def test_follow_cli_ctrl_c_exits_quietly(broker, fresh_topics):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    topic = fresh_topics("harm-ranking")
    ensure_topics(broker.bootstrap, {topic: 1})
    proc = subprocess.Popen([sys.executable, "-m", "agents.cli", "follow", "--broker", broker.url, "--topic", topic],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root,
                            env=dict(os.environ, PYTHONPATH=str(root)))
    try:
        time.sleep(2.0)
        _publish_ranking(broker, topic, [ENTERED])
        deadline = time.monotonic() + 10
        line = proc.stdout.readline()
        assert time.monotonic() < deadline
        assert "ENTER  #17" in line and "S123" in line
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
