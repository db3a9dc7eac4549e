"""End-to-end: poison input on a real broker (SPEC §9 "Poison input").

One worker takes a normal feed, then each poison message in turn (the widest valid report,
a burst of 40 reports of 64 KiB, 880 KB of garbage, 840 KB of ``\\u0001`` escapes, 150,000 levels of nesting, 600 KB of
random bytes), then 10,000 bad messages of every kind, then more valid events. Behind each
poison message comes a valid report on the same input partition that moves the ranking, so
the ranking can only match once the worker has read past the poison. After each step the
worker is alive, `/ranking` equals `harmrank rank` of everything sent so far (which also
says which lines are bad, and why), and `crime-reports.dlq` holds one letter for every bad
message, from its partition and offset, with its reason and its payload (bounded, SPEC §9).
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import random
import string
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from schemas.events import datetime_to_us, us_to_iso
from schemas.harm_table import load_harm_table
from schemas.validate import REJECTION_CODES
from streams.batch import rank_lines
from streams.register import STATEFUL_REJECTION_CODES
from streams.simulate import generate

from .conftest import DLQ_TOPIC, INPUT_TOPIC, clean_env, read_topic, run_cli

pytestmark = pytest.mark.e2e

TOP_N = 1000  # deep enough that the feed's suspects stay in view once the 700 of the wide reports rank
PEOPLE = 700
MAX_MESSAGE_BYTES = 64 * 1024
RAPE, ASSAULT = "019/08", "105/01"
MERGE_KEY = b"suspects.merged"
DLQ_SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "json" / "dead-letter.schema.json"


@dataclass
class Sent:
    key: Optional[bytes]
    raw: bytes
    code: Optional[str]  # the reason code it must be dead-lettered with; None when it is valid
    label: str
    partition: int = -1
    offset: int = -1


class Scenario:
    """Every message sent to crime-reports, in order, and the checks that follow each step."""

    def __init__(self, broker, worker, tmp_path: Path, start_us: int):
        self.broker, self.worker, self.tmp_path = broker, worker, tmp_path
        self.sent: list[Sent] = []
        self.clock_us = start_us
        self.probes = 0

    def at(self) -> str:
        """A timestamp one minute after the last one handed out: the feed's clock moves on."""
        self.clock_us += 60_000_000
        return us_to_iso(self.clock_us)

    def send(self, messages: list) -> None:
        """Produce ``messages`` (Sent) in order; note where each landed."""
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=self.broker.bootstrap, max_request_size=2 * 1024 * 1024,
                                 acks=1, linger_ms=5, batch_size=256 * 1024, max_in_flight_requests_per_connection=1)
        try:
            futures = [producer.send(INPUT_TOPIC, key=m.key, value=m.raw) for m in messages]
            producer.flush(timeout=120)
            for m, future in zip(messages, futures):
                md = future.get(timeout=60)
                m.partition, m.offset = md.partition, md.offset
        finally:
            producer.close(timeout=10)
        self.sent.extend(messages)

    def probe(self, key: bytes) -> Sent:
        """A valid report for PROBE on ``key``'s partition: it raises his score, so the ranking moves."""
        self.probes += 1
        n = self.probes
        event = {"event_id": f"probe-{n}", "type": "report.recorded", "at": self.at(), "crime_ref": f"PROBE-{n}",
                 "offence_code": RAPE, "suspects": ["PROBE"], "victims": [{"id": f"VP{n}", "sex": "F"}]}
        return Sent(key, encode(event), None, f"probe {n}")

    def poison(self, label: str, raws: list, code: str) -> None:
        key = f"POISON-{label}".encode()
        self.send([Sent(key, raw, code, label) for raw in raws] + [self.probe(key)])

    # -- the checks ---------------------------------------------------------------------

    def rank(self) -> list:
        """`harmrank rank` of every message a JSON-lines file can hold; asserts that it rejects
        exactly the lines labelled bad, each with its code."""
        lines = [m for m in self.sent if b"\n" not in m.raw and m.raw.strip()]
        path = self.tmp_path / "sent.jsonl"
        with open(path, "wb") as fh:
            for m in lines:
                fh.write(m.raw + b"\n")
        proc = run_cli(["rank", str(path), "--json"], clean_env(top_n=TOP_N), timeout=300)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
        said = {}
        for text in proc.stderr.decode(errors="replace").splitlines():
            if text.startswith("line "):
                number, reason = text[5:].split(": ", 1)
                said[int(number)] = reason.split(":", 1)[0]
        labelled = {i: m.code for i, m in enumerate(lines, start=1) if m.code}
        assert said == labelled, f"harmrank rank and the labels disagree: {_mismatch(said, labelled, lines)}"
        return json.loads(proc.stdout)

    def check(self, step: str) -> None:
        w = self.worker
        assert w.alive(), f"after {step}: the worker died:\n{w.log_tail()}"
        expected = self.rank()
        failure = None
        try:
            w.wait_ranking_equals(expected, timeout=120)
        except pytest.fail.Exception as exc:
            failure = str(exc)
        if failure is not None:
            pytest.fail(f"after {step}: /healthz answers {w.get('/healthz')[0]}; {failure}")
        assert w.get("/healthz")[0] == 200, f"after {step}: /healthz is not 200:\n{w.log_tail()}"
        self.check_dead_letters(step)

    def check_dead_letters(self, step: str) -> None:
        import jsonschema

        bad = {(m.partition, m.offset): m for m in self.sent if m.code}
        records = read_topic(self.broker, DLQ_TOPIC, expected=len(bad), quiet=1.0, timeout=120)
        letters = [json.loads(r.value) for r in records]
        where = Counter((x["topic"], x["partition"], x["offset"]) for x in letters)
        assert len(letters) == len(bad) and all(n == 1 for n in where.values()), (
            f"after {step}: {len(letters)} dead letters ({sum(n > 1 for n in where.values())} sources twice) "
            f"for {len(bad)} bad messages; missing: {_missing(bad, where)}\n{self.worker.log_tail(3000)}")
        schema = jsonschema.Draft202012Validator(json.loads(DLQ_SCHEMA.read_text()))
        for letter in letters:
            assert letter["topic"] == INPUT_TOPIC, letter["topic"]
            m = bad.get((letter["partition"], letter["offset"]))
            assert m is not None, f"after {step}: a dead letter for a valid message: {_short(letter)}"
            assert letter["reason"].split(":", 1)[0] == m.code, f"{m.label}: {letter['reason'][:200]!r}, not {m.code}"
            assert schema.is_valid(letter), f"{m.label}: {_short(letter)}"
            check_payload(letter, m)


def check_payload(letter: dict, m: Sent) -> None:
    """The whole payload (text, or base64), or its first 64 KiB with the digest and length of the whole."""
    try:
        text = m.raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if "payload_sha256" not in letter:
        assert letter["payload"] == (text if text is not None else base64.b64encode(m.raw).decode()), m.label
        return
    assert len(m.raw) > MAX_MESSAGE_BYTES, m.label
    assert (letter["payload_sha256"], letter["payload_bytes"]) == (hashlib.sha256(m.raw).hexdigest(), len(m.raw))
    head = letter["payload"].encode() if text is not None else base64.b64decode(letter["payload"])
    assert m.raw.startswith(head) and MAX_MESSAGE_BYTES - 4 < len(head) <= MAX_MESSAGE_BYTES, m.label


def _short(letter: dict) -> dict:
    return {k: (v[:80] + "..." if isinstance(v, str) and len(v) > 80 else v) for k, v in letter.items()}


def _missing(bad: dict, where: Counter) -> str:
    lost = [m for (p, o), m in bad.items() if (INPUT_TOPIC, p, o) not in where]
    return f"{len(lost)} {Counter(m.label for m in lost).most_common(8)}"


def _mismatch(said: dict, labelled: dict, lines: list) -> str:
    diff = sorted(set(said.items()) ^ set(labelled.items()))[:10]
    return "; ".join(f"line {n} ({lines[n - 1].label}): rank {said.get(n)}, label {labelled.get(n)}" for n, _ in diff)


def encode(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def key_of(event: dict) -> Optional[bytes]:
    if event.get("type") == "suspects.merged":
        return MERGE_KEY
    ref = event.get("crime_ref")
    return ref.encode() if isinstance(ref, str) else None


# -- the messages ----------------------------------------------------------------------------

def normal_feed(sc: Scenario, events: list) -> list:
    """The feed, labelled by the batch reference, then the reports the bad messages point at."""
    codes: dict = {}
    rank_lines([encode(e) for e in events], load_harm_table(), on_reject=lambda n, r: codes.setdefault(n, r))
    out = [Sent(key_of(e), encode(e), codes[n].split(":")[0] if n in codes else None, "feed")
           for n, e in enumerate(events, start=1)]
    victims = [{"id": "VK", "sex": "F"}]
    for event in [
        {"event_id": "kept", "type": "report.recorded", "at": sc.at(), "crime_ref": "KEPT", "offence_code": RAPE,
         "suspects": ["PROBE"], "victims": victims},
        {"event_id": "gone", "type": "report.recorded", "at": sc.at(), "crime_ref": "GONE", "offence_code": RAPE,
         "suspects": ["GONER"], "victims": victims},
        {"event_id": "gone-x", "type": "report.cancelled", "at": sc.at(), "crime_ref": "GONE"},
    ]:
        out.append(Sent(key_of(event), encode(event), None, "feed"))
    return out


def wide_report(sc: Scenario, ref: str) -> bytes:
    """A valid report naming 700 suspects and 700 victims, its ids as long as 64 KiB allows."""
    at = sc.at()

    def raw(width: int) -> bytes:
        event = {"event_id": f"wide-{ref}", "type": "report.recorded", "at": at, "crime_ref": ref,
                 "offence_code": RAPE, "suspects": [f"W{i:0{width - 1}d}" for i in range(PEOPLE)],
                 "victims": [{"id": f"X{i:0{width - 1}d}", "sex": "F"} for i in range(PEOPLE)]}
        return encode(event)

    width = 4
    while len(raw(width + 1)) <= MAX_MESSAGE_BYTES:
        width += 1
    return raw(width)


def burst(sc: Scenario, count: int) -> list:
    """``count`` reports of one suspect, each as near 64 KiB as its victims allow (the same
    victims on each): together many times the 1 MiB a producer request may carry."""
    out = []
    for n in range(count):
        event = {"event_id": f"burst-{n}", "type": "report.recorded", "at": sc.at(), "crime_ref": f"BURST-{n}",
                 "offence_code": RAPE, "suspects": ["BURST"], "victims": []}
        each = len(encode({"id": "Y00000", "sex": "F"})) + 1  # with its comma
        event["victims"] = [{"id": f"Y{i:05d}", "sex": "F"}
                            for i in range((MAX_MESSAGE_BYTES - len(encode(event)) + 1) // each)]
        raw = encode(event)
        assert MAX_MESSAGE_BYTES - each < len(raw) <= MAX_MESSAGE_BYTES, len(raw)
        out.append(Sent(f"BURST-{n}".encode(), raw, None, "burst"))
    return out


def garbage(rnd: random.Random, size: int) -> bytes:
    """Printable ASCII, no whitespace: one line of a file, and never JSON (it opens with a '}')."""
    alphabet = (string.ascii_letters + string.digits + string.punctuation).encode()
    return b"}" + bytes(rnd.choices(alphabet, k=size - 1))


def escapes(sc: Scenario, size: int) -> bytes:
    """A report whose crime_ref is ``\\u0001`` escapes, ``size`` bytes in all."""
    head = b'{"event_id":"esc","type":"report.cancelled","at":"' + sc.at().encode() + b'","crime_ref":"'
    return head + b"\\u0001" * ((size - len(head) - 2) // 6) + b'"}'


def bad_messages(sc: Scenario, count: int, seed: int) -> list:
    """``count`` bad messages, every reason of SPEC §2 in turn: (key, raw, expected code)."""
    rnd = random.Random(seed)
    future = us_to_iso(datetime_to_us(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3)))

    def rec(i: int, **changes) -> dict:
        event = {"event_id": f"bad-{i}", "type": "report.recorded", "at": sc.at(), "crime_ref": f"BAD-{i}",
                 "offence_code": RAPE, "suspects": [f"BS{i}"], "victims": [{"id": f"BV{i}", "sex": "F"}]}
        event.update(changes)
        return {k: v for k, v in event.items() if v is not None}

    def ev(i: int, etype: str, **fields) -> dict:
        return {"event_id": f"bad-{i}", "type": etype, "at": sc.at(), **fields}

    kinds = [
        ("bad_json", lambda i: encode(rec(i))[: rnd.randrange(1, 60)]),
        ("bad_json", lambda i: garbage(rnd, rnd.randrange(1, 300))),
        ("bad_json", lambda i: encode(rec(i)).replace(b'"suspects"', b'"crime_ref":"D","suspects"')),
        ("bad_json", lambda i: encode(rec(i)).replace(b'"offence_code":"019/08"', b'"offence_code":NaN')),
        ("not_utf8", lambda i: encode(rec(i)).replace(f"BS{i}".encode(), b"\xff\xfe" + str(i).encode())),
        ("not_object", lambda i: rnd.choice([b"[1,2]", b'"text"', b"42", b"null", b"true", b"[{}]"])),
        ("unknown_type", lambda i: encode(ev(i, rnd.choice(["report.deleted", "suspect.renamed", ""]),
                                             crime_ref=f"BAD-{i}"))),
        ("missing_field", lambda i: encode(rec(i, **{rnd.choice(["event_id", "type", "at", "crime_ref",
                                                                 "offence_code", "suspects", "victims"]): None}))),
        ("bad_field", lambda i: encode(rec(i, **rnd.choice([{"crime_ref": "C" * 129}, {"offence_code": "19/08"},
                                                            {"suspects": "BS"}, {"victims": [{"id": "V", "sex": "X"}]},
                                                            {"vawg": "yes"}, {"event_id": 7}])))),
        ("bad_timestamp", lambda i: encode(rec(i, at=rnd.choice(["2025-02-30T10:00:00Z", "yesterday",
                                                                 "2025-03-01T10:00:00"])))),
        ("future_timestamp", lambda i: encode(rec(i, at=future))),
        ("unknown_offence_code", lambda i: encode(rec(i, offence_code="999/99"))),
        ("unknown_crime_ref", lambda i: encode(ev(i, rnd.choice(["report.cancelled", "report.reclassified"]),
                                                  crime_ref=f"NOPE-{i}", offence_code=ASSAULT))),
        ("already_recorded", lambda i: encode(rec(i, crime_ref="KEPT"))),
        ("cancelled_crime_ref", lambda i: encode(ev(i, "suspect.linked", crime_ref="GONE", suspect_id=f"BS{i}"))),
        ("self_merge", lambda i: encode(ev(i, "suspects.merged", suspect_id=f"Z{i}", into=f"Z{i}"))),
    ]
    out = []
    for i in range(count):
        if i % 500 == 499:  # 20 messages just over the limit
            code, raw = "oversized", encode(rec(i, padding="p" * MAX_MESSAGE_BYTES))
        else:
            code, make = kinds[i % len(kinds)]
            raw = make(i)
        key = MERGE_KEY if code == "self_merge" else f"BAD-{i % 97}".encode()
        out.append(Sent(key, raw, code, f"bad {code}"))
    return out


def more_valid_events(sc: Scenario) -> list:
    """Corrections that touch the wide reports' 700 suspects at once, and a merge among them."""
    first = json.loads(next(m.raw for m in sc.sent if m.label == "wide W-1"))
    a, b = first["suspects"][:2]
    events = [
        {"event_id": "after-1", "type": "report.reclassified", "at": sc.at(), "crime_ref": "W-1",
         "offence_code": ASSAULT},
        {"event_id": "after-2", "type": "suspects.merged", "at": sc.at(), "suspect_id": b, "into": a},
        {"event_id": "after-3", "type": "suspect.unlinked", "at": sc.at(), "crime_ref": "PROBE-1",
         "suspect_id": "PROBE"},
        {"event_id": "after-4", "type": "report.cancelled", "at": sc.at(), "crime_ref": "W-2"},
    ]
    return [Sent(key_of(e), encode(e), None, "after") for e in events]


# -- the test --------------------------------------------------------------------------------

def test_poison_input_is_dead_lettered_and_the_messages_behind_it_flow_on(own_broker, workers, tmp_path):
    events = list(generate(seed=909, events=2000, invalid_rate=0.0))
    start = max(datetime_to_us(dt.datetime.fromisoformat(e["at"])) for e in events)
    worker = workers(own_broker, partitions=4, top_n=TOP_N).start()
    sc = Scenario(own_broker, worker, tmp_path, start)
    worker.wait_ready()

    sc.send(normal_feed(sc, events))
    sc.check("the normal feed")

    wide = [Sent(b"W-1", wide_report(sc, "W-1"), None, "wide W-1"), Sent(b"W-2", wide_report(sc, "W-2"), None,
                                                                          "wide W-2")]
    assert all(MAX_MESSAGE_BYTES - 1400 < len(m.raw) <= MAX_MESSAGE_BYTES for m in wide)
    sc.send(wide + [sc.probe(b"W-2")])
    sc.check("two reports of 700 suspects and 700 victims")
    assert sum(1 for r in worker.ranking()["entries"] if r["suspect_id"].startswith("W")) == PEOPLE
    sc.send(burst(sc, 40))
    sc.check("40 reports of 64 KiB at once")

    rnd = random.Random(909)
    sc.poison("garbage", [garbage(rnd, 880_000)], "oversized")
    sc.check("880 KB of garbage")
    sc.poison("escapes", [escapes(sc, 840_000)], "oversized")
    sc.check("840 KB of \\u0001 escapes")
    depth = 150_000
    sc.poison("nesting", [b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth], "oversized")
    sc.check("150,000 levels of nesting")
    sc.poison("random", [rnd.randbytes(600_000)], "oversized")
    sc.check("600 KB of random bytes")

    bad = bad_messages(sc, 10_000, seed=910)
    sc.send(bad + [sc.probe(b"BAD-0")])
    sc.check("10,000 bad messages")
    assert set(Counter(m.code for m in bad)) == set(REJECTION_CODES) | set(STATEFUL_REJECTION_CODES)

    sc.send(more_valid_events(sc))
    sc.check("more valid events")
    check_metrics(worker, sc)


def check_metrics(worker, sc: Scenario) -> None:
    """harmrank_dead_letters_total{reason} counts what was sent bad, reason by reason."""
    from prometheus_client.parser import text_string_to_metric_families

    status, body = worker.get("/metrics")
    assert status == 200
    counted = {s.labels["reason"]: int(s.value) for family in text_string_to_metric_families(body.decode())
               for s in family.samples if s.name == "harmrank_dead_letters_total" and s.value}
    assert counted == dict(Counter(m.code for m in sc.sent if m.code))
