"""End-to-end fixtures: a fresh tansu broker per test, real `harmrank worker` subprocesses.

The worker's internal topics and consumer group have fixed names, so every test that runs
a worker gets its own broker (tansu starts in milliseconds), its own data directory and
its own web port. Every process started here is stopped in a finalizer.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Iterable, Optional

import pytest

warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"kafka(\..*)?")

REPO = Path(__file__).resolve().parents[2]
TOKEN = "e2e-secret-token"
READY_TIMEOUT = 90.0
INPUT_TOPIC = "crime-reports"
OUTPUT_TOPIC = "harm-ranking"
DLQ_TOPIC = "crime-reports.dlq"
FAULTS_DIR = REPO / "tests" / "faults"  # its sitecustomize.py injects the faults a test asks for


# -- environment ------------------------------------------------------------------------

def clean_env(**settings: object) -> dict:
    """os.environ without any HARMRANK_* (or TEST_FAULT_*) variable, plus ``settings`` as HARMRANK_<NAME>."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARMRANK_", "TEST_FAULT_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for name, value in settings.items():
        if value is not None:
            env["HARMRANK_" + name.upper()] = str(value)
    return env


def run_cli(args: list, env: dict, timeout: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agents.cli", *map(str, args)], env=env, cwd=str(REPO),
                          capture_output=True, timeout=timeout)


# -- broker -----------------------------------------------------------------------------

@pytest.fixture
def own_broker():
    """A fresh tansu broker (in-memory) on a free port, for this test only."""
    from tests.conftest import start_local_broker

    lb = start_local_broker()
    try:
        yield lb
    finally:
        lb.stop()


def publish_file(broker, path: Path, timeout: float = 120.0) -> subprocess.CompletedProcess:
    """`harmrank publish FILE` against ``broker``; asserts exit code 0."""
    proc = run_cli(["publish", str(path)], clean_env(broker=broker.url), timeout=timeout)
    assert proc.returncode == 0, (
        f"harmrank publish exited {proc.returncode}\nstdout: {proc.stdout.decode(errors='replace')[-2000:]}\n"
        f"stderr: {proc.stderr.decode(errors='replace')[-2000:]}")
    return proc


def batch_rank(path: Path, **settings) -> list:
    """`harmrank rank FILE --json` (settings as HARMRANK_* env, e.g. top_n=3)."""
    proc = run_cli(["rank", str(path), "--json"], clean_env(**settings))
    assert proc.returncode == 0, f"harmrank rank failed: {proc.stderr.decode(errors='replace')[-2000:]}"
    return json.loads(proc.stdout)


def produce_raw(broker, messages: Iterable[tuple[Optional[bytes], bytes]], topic: str = INPUT_TOPIC) -> list:
    """Send raw (key, value) messages with kafka-python, in order; returns their metadata
    [(partition, offset)]."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, max_request_size=4 * 1024 * 1024,
                             acks=1, linger_ms=0, max_in_flight_requests_per_connection=1)
    try:
        out = []
        for key, value in messages:
            md = producer.send(topic, key=key, value=value).get(timeout=30)
            out.append((md.partition, md.offset))
        producer.flush(timeout=30)
        return out
    finally:
        producer.close(timeout=5)


def read_topic(broker, topic: str, expected: int = 0, quiet: float = 2.0, timeout: float = 60.0) -> list:
    """Every record of ``topic`` from the beginning (no consumer group): poll until at least
    ``expected`` records came and then nothing for ``quiet`` seconds (or ``timeout``).

    Records are returned per partition in offset order, partitions in ascending order."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                             session_timeout_ms=6000, max_partition_fetch_bytes=4 * 1024 * 1024,
                             fetch_max_bytes=16 * 1024 * 1024)
    try:
        deadline = time.monotonic() + timeout
        parts = None
        while not parts:
            parts = consumer.partitions_for_topic(topic)
            if parts:
                break
            if time.monotonic() > deadline:
                return []
            time.sleep(0.2)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: dict = {tp.partition: [] for tp in tps}
        count = 0
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=300)
            got = 0
            for tp, recs in batch.items():
                records[tp.partition].extend(recs)
                got += len(recs)
            count += got
            now = time.monotonic()
            if got:
                last_new = now
            elif count >= expected and now - last_new >= quiet:
                break
        return [r for p in sorted(records) for r in records[p]]
    finally:
        consumer.close()


# -- the worker -------------------------------------------------------------------------

class Worker:
    """A `harmrank worker` subprocess with its own data dir and web port.

    One worker process unless a test sets ``processes``: the suite's workers would
    otherwise take a process per core each (HARMRANK_PROCESSES' default). `faults`
    (environment variables, see tests/faults/sitecustomize.py) puts the test's fault
    injection on the subprocess's PYTHONPATH; change or clear it between starts."""

    def __init__(self, broker, data_dir: Path, log_dir: Path, name: str = "worker", **settings):
        from agents.local_broker import free_port

        self.broker = broker
        self.data_dir = Path(data_dir)
        self.port = int(settings.pop("web_port", None) or free_port())
        self.token = settings.pop("api_token", TOKEN)
        self.faults: dict = settings.pop("faults", None) or {}
        self.settings = {"clock": "event", "partitions": 4, "processes": 1, **settings}
        self.log_dir = Path(log_dir)
        self.name = name
        self.proc: Optional[subprocess.Popen] = None
        self.logs: list[Path] = []
        self._log_fh = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Worker":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._close_log()
        log = self.log_dir / f"{self.name}-{len(self.logs) + 1}.log"
        self.logs.append(log)
        self._log_fh = open(log, "wb")
        env = clean_env(broker=self.broker.url, data_dir=self.data_dir, web_port=self.port,
                        web_host="127.0.0.1", api_token=self.token, **self.settings)
        if self.faults:
            env["PYTHONPATH"] = str(FAULTS_DIR) + os.pathsep + env["PYTHONPATH"]
            env.update({name: str(value) for name, value in self.faults.items()})
        self.proc = subprocess.Popen([sys.executable, "-m", "agents.cli", "worker"], env=env, cwd=str(REPO),
                                     stdout=self._log_fh, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def log_tail(self, chars: int = 4000) -> str:
        if not self.logs:
            return ""
        with contextlib.suppress(OSError):
            return self.logs[-1].read_text(errors="replace")[-chars:]
        return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def child_pids(self) -> list:
        """The pids of the worker's children (its worker processes, under HARMRANK_PROCESSES > 1)."""
        if not self.alive():
            return []
        with contextlib.suppress(OSError):
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            return sorted(int(pid) for pid in text.split())
        return []

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                pytest.fail(f"worker exited with code {self.proc.returncode} before ready:\n{self.log_tail()}")
            status, _ = self.get("/readyz")
            if status == 200:
                return
            time.sleep(0.3)
        pytest.fail(f"worker not ready after {timeout:g} s:\n{self.log_tail()}")

    def get(self, path: str, token: Optional[str] = None, timeout: float = 10.0) -> tuple[int, bytes]:
        """(status, body) of GET path; status 0 when nothing answers."""
        req = urllib.request.Request(self.base + path)
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return 0, b""

    def get_json(self, path: str, token: Optional[str] = None):
        status, body = self.get(path, token=token if token is not None else self.token)
        assert status == 200, f"GET {path} -> {status}: {body[:500]!r}"
        return json.loads(body)

    def ranking(self) -> dict:
        return self.get_json("/ranking")

    def wait_ranking_equals(self, expected: list, timeout: float = 90.0) -> dict:
        """Poll /ranking until its entries equal ``expected``; on timeout fail with the diff."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not self.alive():
                pytest.fail(f"worker died (code {self.proc.returncode}):\n{self.log_tail()}")
            status, body = self.get("/ranking", token=self.token)
            if status == 200:
                last = json.loads(body)
                if last.get("entries") == expected:
                    return last
            time.sleep(0.5)
        pytest.fail(f"/ranking never equalled `harmrank rank` within {timeout:g} s:\n"
                    f"{ranking_diff(expected, (last or {}).get('entries') or [])}\n"
                    f"as_of={None if last is None else last.get('as_of')}\nworker log:\n{self.log_tail(2000)}")

    def wait_until(self, condition, what: str, timeout: float = 90.0) -> None:
        """Poll `condition()` until it is true; fail naming `what` (and the log) if it never is."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                pytest.fail(f"worker died (code {self.proc.returncode}) waiting for {what}:\n{self.log_tail()}")
            if condition():
                return
            time.sleep(0.5)
        pytest.fail(f"never happened within {timeout:g} s: {what}\n{self.log_tail(2000)}")

    def kill9(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._close_log()

    def stop(self, grace: float = 15.0) -> None:
        if self.proc is None:
            return
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        else:
            # the leader is gone; make sure no child of its group is left
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self._close_log()

    def _close_log(self) -> None:
        if self._log_fh is not None:
            with contextlib.suppress(OSError):
                self._log_fh.close()
            self._log_fh = None


@pytest.fixture
def workers(tmp_path):
    """A factory of Worker objects; every worker made is stopped at teardown."""
    made: list[Worker] = []

    def make(broker, data_dir: Optional[Path] = None, **settings) -> Worker:
        name = f"worker{len(made) + 1}"
        w = Worker(broker, data_dir or (tmp_path / f"{name}-data"), tmp_path, name=name, **settings)
        made.append(w)
        return w

    try:
        yield make
    finally:
        for w in made:  # the data is thrown away: no need for a graceful stop
            with contextlib.suppress(Exception):
                w.kill9()


# -- checks -----------------------------------------------------------------------------

def ranking_diff(expected: list, got: list) -> str:
    lines = [f"expected {len(expected)} entries, got {len(got)}"]
    n = max(len(expected), len(got))
    shown = 0
    for i in range(n):
        e = expected[i] if i < len(expected) else None
        g = got[i] if i < len(got) else None
        if e != g:
            lines.append(f"  #{i + 1}: expected {e}\n        got      {g}")
            shown += 1
            if shown >= 15:
                lines.append("  ...")
                break
    return "\n".join(lines)


ENTERED_FIELDS = {"event_id", "type", "list", "suspect_id", "rank", "score", "allegations", "victims", "as_of",
                  "cause"}
EXITED_FIELDS = {"event_id", "type", "list", "suspect_id", "reason", "score", "allegations", "victims", "as_of",
                 "cause"}
EXIT_REASONS = {"displaced", "expired", "corrected", "merged"}


def check_output_event(ev: dict) -> None:
    assert isinstance(ev, dict), ev
    if ev.get("type") in ("ranking.entered", "ranking.updated"):
        missing = ENTERED_FIELDS - set(ev)
        assert not missing, f"entered event lacks {sorted(missing)}: {ev}"
        assert isinstance(ev["rank"], int) and ev["rank"] >= 1, ev
    elif ev.get("type") == "ranking.exited":
        missing = EXITED_FIELDS - set(ev)
        assert not missing, f"exited event lacks {sorted(missing)}: {ev}"
        assert ev["reason"] in EXIT_REASONS, ev
    else:
        raise AssertionError(f"unknown output event type: {ev}")
    assert isinstance(ev["event_id"], str) and ev["event_id"], ev
    assert isinstance(ev["suspect_id"], str) and ev["suspect_id"], ev
    assert isinstance(ev["score"], (int, float)) and not isinstance(ev["score"], bool), ev
    assert isinstance(ev["allegations"], int) and isinstance(ev["victims"], int), ev
    assert isinstance(ev["as_of"], str) and isinstance(ev["cause"], str) and ev["cause"], ev


def replay_membership(events: list, top_n: int, dedup: bool = False) -> set:
    """Apply entered/exited in order; assert the SPEC §3 invariants; return the final set."""
    members: set = set()
    seen_ids: dict = {}
    dropped: list = []  # duplicates dropped although applying them would have changed the set

    def why() -> str:
        if not dropped:
            return ""
        return ("\n  output events dropped as duplicates (same event_id as an earlier one) that were NOT "
                "no-ops for the consumer:\n" + "\n".join(f"    #{i} (same id as #{j}): {e}" for i, j, e in dropped[:10]))

    for i, ev in enumerate(events):
        check_output_event(ev)
        s = ev["suspect_id"]
        if dedup:
            if ev["event_id"] in seen_ids:
                if ev["type"] != "ranking.updated" and (ev["type"] == "ranking.entered") != (s in members):
                    dropped.append((i, seen_ids[ev["event_id"]], ev))
                continue
            seen_ids[ev["event_id"]] = i
        if ev["type"] == "ranking.entered":
            assert s not in members, f"output #{i}: double entry of {s}: {ev}{why()}"
            members.add(s)
            assert len(members) <= top_n, f"output #{i}: {len(members)} members > {top_n} after {ev}{why()}"
        elif ev["type"] == "ranking.updated":
            assert s in members, f"output #{i}: update of {s}, who is no member: {ev}{why()}"
        else:
            assert s in members, f"output #{i}: exit of {s} without a prior entry: {ev}{why()}"
            members.remove(s)
    replay_membership.last_dropped = dropped  # type: ignore[attr-defined]
    return members


def wait_membership(broker, expected_top: set, top_n: int, dedup: bool = False, timeout: float = 30.0) -> list:
    """Read harm-ranking until the replayed membership equals ``expected_top`` (checking the
    invariants on every read); fail with the difference otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        records = read_topic(broker, OUTPUT_TOPIC, quiet=2.0, timeout=60.0)
        events = [json.loads(r.value) for r in records]
        members = replay_membership(events, top_n, dedup=dedup)
        if members == expected_top or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    dropped = getattr(replay_membership, "last_dropped", [])
    assert members == expected_top, (
        f"replayed harm-ranking ({len(events)} events{', duplicates dropped by event_id' if dedup else ''}) "
        f"ends with {len(members)} members; missing {sorted(expected_top - members)[:20]}, "
        f"stale {sorted(members - expected_top)[:20]}" + ("" if not dropped else
        "\n  output events dropped as duplicates that were NOT no-ops for the consumer:\n"
        + "\n".join(f"    #{i} (same id as #{j}): {e}" for i, j, e in dropped[:10])))
    return events


def write_feed(path: Path, events: Iterable[dict]) -> Path:
    from streams.simulate import write_jsonl

    with open(path, "w", encoding="utf-8") as fh:
        write_jsonl(events, fh)
    return path
