"""Benchmark of the worker end to end on the local broker (not a test): prints its figures.

    python -m tests.bench.bench_stream [--events 200000] [--partitions 4]
                                       [--latency-rate 500] [--latency-seconds 30]
                                       [--latency-span realtime|sweep] [--latency-probes 2]
                                       [--skip-baseline] [--skip-floor]
                                       [--worker-setting NAME=VALUE ...]

Everything runs on ONE fresh tansu broker that this script starts on a free port (and
stops at the end), with its own temporary directory:

1. **End to end.** ``streams.simulate.generate(seed=1, events=N)`` is written to a file and
   published whole with ``harmrank publish`` (while ``harmrank rank FILE --json`` computes
   the batch reference in parallel); only then does ``harmrank worker`` start
   (``HARMRANK_CLOCK=event``). From ``/readyz`` = 200 the script polls ``/metrics`` until
   ``harmrank_events_consumed_total`` (all labels) equals the number of non-blank input
   lines, then ``/ranking`` until it equals the batch ranking. events/s = lines / time.
   Then the worker's peak RSS (VmHWM) and CPU seconds.
2. **Latency** (run right after 1, on the same caught-up worker): a second feed
   (``seed=2``, ``--latency-rate`` x ``--latency-seconds`` events, all newer than the first
   feed) is sent with kafka-python at that pace, one message at a time; a consumer of
   ``harm-ranking`` times each output event's arrival; latency = arrival - send time of
   the input event named by its ``cause`` (``clock:...`` causes are not counted).
   A city's feed moves the top 100 only a few times in 30 s, too few for a p99, so
   ``--latency-probes`` new suspects a second (default 2) are woven in, each of whose
   second report enters the top 100 (see ``with_probes``); the city's own ones are also
   shown apart.
   Its event times (``--latency-span``): ``realtime`` (the default) advances them as fast
   as the wall clock while it is sent, as in production, and the first feed's year then ends
   a day before now; ``sweep`` spreads them from a day after the first feed's newest event
   to the day before now, so a year of allegations expires during the feed (a stress of the
   expiry path, not the load of 500 events/s). Either way no event is more than a day after
   the wall clock, which the worker would dead-letter (``future_timestamp``).
3. **Naive baseline** (``tests/bench/naive_app.py``): a textbook Faust agent, one message at
   a time and one RocksDB table write per event, its own consumer group re-reading the
   same topic; events/s from its first event to N. It runs twice: with Faust's own defaults
   (as the Faust documentation writes it: the nearest to the agent ``../shared/NOTES-broker.md``
   measured at 1.1 k events/s, on which the issue's 6 times are calibrated), then with the worker's
   tuning knobs (linger, commit interval, ``stream_wait_empty``, quiet loggers), so the
   part of the gain that is tuning and the part that is design are both shown.
4. **Faust ceiling**: the same app with ``--no-table`` (consume and count only).
5. **Latency floor** (``tests/bench/floor_app.py``): the worker's four hops with the work
   taken out (the same intake reader, Faust agents, batching, envelopes and local-broker
   patches; no validation, no state, no changelog), sent the latency feed at the same pace
   on the same broker: what the hops alone cost here, a bound no worker of this shape beats.
   It runs three times: hops 2-4 as Faust agents, as in the worker; every hop an aiokafka
   batch reader (no Faust stream at all); and three hops, the register's taken out (what a
   register reading ``crime-reports`` itself would leave), hops 2-3 as Faust agents.

Nothing is asserted; the exit code is 1 only when a phase could not be measured at all.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Optional

warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"kafka(\..*)?")

REPO = Path(__file__).resolve().parents[2]
INPUT_TOPIC = "crime-reports"
OUTPUT_TOPIC = "harm-ranking"
US_PER_DAY = 86_400_000_000


class BenchError(RuntimeError):
    """A phase could not be measured; the message says why (with a log tail)."""


def say(msg: str = "") -> None:
    print(msg, flush=True)


def clean_env(**settings: object) -> dict:
    """os.environ without any HARMRANK_* variable, plus ``settings`` as HARMRANK_<NAME>."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARMRANK_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for name, value in settings.items():
        if value is not None:
            env["HARMRANK_" + name.upper()] = str(value)
    return env


def tail(path: Path, chars: int = 4000) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-chars:]
    return "(no log)"


# --------------------------------------------------------------------------- processes
class Child:
    """A subprocess in its own session, its output to a log file; stopped by its own pid."""

    def __init__(self, name: str, cmd: list, env: dict, log: Path):
        self.name = name
        self.log = log
        self._fh = open(log, "wb")
        self.proc = subprocess.Popen(cmd, env=env, cwd=str(REPO), stdin=subprocess.DEVNULL,
                                     stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 15.0) -> Optional[int]:
        """SIGTERM to its process group, SIGKILL after ``grace`` s."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        else:  # the leader is gone; make sure nothing of its group is left
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self._fh.close()
        return self.proc.returncode

    def tail(self, chars: int = 4000) -> str:
        return tail(self.log, chars)


def machine_busy() -> float:
    """CPU seconds all processes of the machine have spent since boot (from /proc/stat)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/stat") as fh:
            f = [int(x) for x in fh.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal ...
        return (f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] if len(f) > 7 else 0)) / os.sysconf("SC_CLK_TCK")
    return 0.0


class CpuMeter:
    """Over a phase: CPU of our own processes (given pids + this one) vs. the whole machine."""

    def __init__(self, pids: list):
        self.pids = [p for p in pids if p]
        self.t0 = time.monotonic()
        self.m0 = machine_busy()
        self.o0 = self._ours()

    def _ours(self) -> float:
        total = sum(group_status(p).get("cpu", 0.0) for p in self.pids)
        t = os.times()
        return total + t.user + t.system

    def report(self) -> str:
        dt = time.monotonic() - self.t0
        if dt <= 0:
            return ""
        machine = (machine_busy() - self.m0) / dt
        ours = (self._ours() - self.o0) / dt
        return (f"machine busy {machine:.2f} of {os.cpu_count()} cores, of which this benchmark "
                f"{ours:.2f}; other processes {max(0.0, machine - ours):.2f} cores")


def proc_status(pid: int) -> dict:
    """VmHWM / VmRSS in MiB and CPU seconds (utime + stime) of a live process."""
    out: dict = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmHWM:", "VmRSS:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        tick = os.sysconf("SC_CLK_TCK")
        out["cpu"] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return out


def group_pids(pgid: int) -> list:
    """Every live process whose process group is ``pgid`` (a Child and what it started)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat[stat.rindex(")") + 2:].split()[2]) == pgid:
                    pids.append(int(entry))
    return pids


def group_status(pid: int) -> dict:
    """`proc_status` summed over the process group that ``pid`` leads (a worker's supervisor and its worker
    processes), or of ``pid`` alone when it leads none."""
    out: dict = {}
    for each in group_pids(pid) or [pid]:
        for key, value in proc_status(each).items():
            out[key] = out.get(key, 0.0) + value
    return out


# --------------------------------------------------------------------------- HTTP
def http_get(url: str, token: Optional[str] = None, timeout: float = 10.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, b""


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[tuple[str, dict, float]]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        with contextlib.suppress(ValueError):
            out.append((m.group(1), dict(_LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


class HarmrankWorker:
    def __init__(self, child: Child, port: int, token: str):
        self.child = child
        self.base = f"http://127.0.0.1:{port}"
        self.token = token

    def metrics(self) -> Optional[list]:
        status, body = http_get(self.base + "/metrics")
        return parse_metrics(body.decode(errors="replace")) if status == 200 else None

    def consumed(self) -> Optional[int]:
        samples = self.metrics()
        if samples is None:
            return None
        return int(sum(v for name, _, v in samples if name == "harmrank_events_consumed_total"))

    def ranking(self) -> Optional[dict]:
        status, body = http_get(self.base + "/ranking", token=self.token)
        return json.loads(body) if status == 200 else None

    def check_alive(self, what: str) -> None:
        if not self.child.alive():
            raise BenchError(f"the harmrank worker exited with code {self.child.proc.returncode} {what}:\n"
                             f"{self.child.tail()}")

    def wait_ready(self, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive("before /readyz answered 200")
            status, _ = http_get(self.base + "/readyz", timeout=5)
            if status == 200:
                return time.time()
            time.sleep(0.1)
        raise BenchError(f"the harmrank worker was not ready after {timeout:g} s:\n{self.child.tail()}")

    def wait_consumed(self, target: int, stall: float, cap: float, label: str) -> tuple[float, int]:
        """Poll /metrics until the consumed count reaches ``target``; (time, count)."""
        start = time.monotonic()
        last_n, last_change = -1, start
        last_print = start
        while True:
            self.check_alive(f"while consuming ({label})")
            n = self.consumed()
            now = time.monotonic()
            if n is not None:
                if n >= target:
                    return time.time(), n
                if n != last_n:
                    last_n, last_change = n, now
                if now - last_print >= 15:
                    last_print = now
                    say(f"    ... {label}: {n}/{target} consumed after {now - start:.0f} s")
            if now - last_change > stall:
                raise BenchError(f"{label}: the worker consumed nothing for {stall:g} s (stuck at {last_n}/"
                                 f"{target}):\n{self.child.tail()}")
            if now - start > cap:
                raise BenchError(f"{label}: only {last_n}/{target} consumed after {cap:g} s:\n{self.child.tail()}")
            time.sleep(0.1)

    def wait_ranking(self, expected: list, timeout: float) -> tuple[Optional[float], Optional[dict]]:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            self.check_alive("while waiting for the ranking")
            got = self.ranking()
            if got is not None:
                last = got
                if got.get("entries") == expected:
                    return time.time(), got
            time.sleep(0.1)
        return None, last


# --------------------------------------------------------------------------- helpers
def write_feed(path: Path, events) -> tuple[int, int, Optional[int]]:
    """Write events as JSON lines; (non-blank lines, events, newest parseable `at` in µs)."""
    from schemas.validate import parse_timestamp
    from streams.simulate import dumps

    lines = 0
    newest = None
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for ev in events:
            text = dumps(ev)
            fh.write(text + "\n")
            if text.strip():
                lines += 1
            at = ev.get("at") if isinstance(ev, dict) else None
            if isinstance(at, str):
                with contextlib.suppress(ValueError):
                    us = parse_timestamp(at)
                    newest = us if newest is None else max(newest, us)
    return lines, lines, newest


def count_nonblank(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def pct(sorted_values: list, q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


def subtract_samples(after: list, before: list) -> list:
    """`after` minus `before`, sample by sample (counters and histograms over a phase)."""
    base = {(m, tuple(sorted(l.items()))): v for m, l, v in before}
    return [(m, l, v - base.get((m, tuple(sorted(l.items()))), 0.0)) for m, l, v in after]


def histogram_summary(samples: list, name: str) -> list[str]:
    """Per label set of a Prometheus histogram: count, mean, approximate p50/p99 (bucket bounds)."""
    by_stage: dict = {}
    for metric, labels, value in samples:
        if not metric.startswith(name):
            continue
        stage = labels.get("stage", "")
        d = by_stage.setdefault(stage, {"buckets": []})
        if metric == name + "_bucket":
            d["buckets"].append((float(labels["le"]) if labels["le"] != "+Inf" else math.inf, value))
        elif metric == name + "_sum":
            d["sum"] = value
        elif metric == name + "_count":
            d["count"] = value
    rows = []
    for stage, d in sorted(by_stage.items()):
        count = d.get("count", 0)
        if not count:
            continue
        buckets = sorted(d["buckets"])

        def bound(q: float) -> str:
            for le, c in buckets:
                if c >= q * count:
                    return "> 10 s" if le == math.inf else f"<= {le * 1000:g} ms"
            return "?"

        rows.append(f"    {stage:<10} n={int(count):>8}  mean {d.get('sum', 0) / count * 1000:8.2f} ms  "
                    f"p50 {bound(0.5):>12}  p99 {bound(0.99):>12}")
    return rows


def ranking_diff(expected: list, got: list, limit: int = 5) -> str:
    lines = [f"    expected {len(expected)} entries, got {len(got)}"]
    shown = 0
    for i in range(max(len(expected), len(got))):
        e = expected[i] if i < len(expected) else None
        g = got[i] if i < len(got) else None
        if e != g:
            lines.append(f"    #{i + 1}: batch {e} / worker {g}")
            shown += 1
            if shown >= limit:
                break
    return "\n".join(lines)


# --------------------------------------------------------------------------- latency
class OutputListener(threading.Thread):
    """Reads harm-ranking from the beginning (no group) and times every record's arrival."""

    def __init__(self, bootstrap: str):
        super().__init__(name="harm-ranking-listener", daemon=True)
        self.bootstrap = bootstrap
        self.arrivals: list[tuple[float, str, str]] = []  # (arrival, cause, type)
        self.caught_up = threading.Event()
        self.stopping = threading.Event()
        self.error: Optional[BaseException] = None
        self.skipped = 0  # records already there before we caught up
        self.ids: set = set()
        self.duplicates = 0  # records whose event_id came before (re-sends)
        self.last_arrival = 0.0

    def run(self) -> None:
        try:
            from kafka import KafkaConsumer, TopicPartition

            # tansu holds a fetch for its whole wait (agents/compat/tansu_fetch.py): a longer wait
            # would add up to that much to every latency measured here.
            consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                     fetch_max_wait_ms=5, max_partition_fetch_bytes=4 * 1024 * 1024,
                                     session_timeout_ms=6000)
            try:
                parts = None
                deadline = time.monotonic() + 60
                while not parts:
                    parts = consumer.partitions_for_topic(OUTPUT_TOPIC)
                    if parts or time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
                if not parts:
                    raise BenchError(f"topic {OUTPUT_TOPIC} not found")
                tps = [TopicPartition(OUTPUT_TOPIC, p) for p in sorted(parts)]
                consumer.assign(tps)
                consumer.seek_to_beginning(*tps)
                while not self.stopping.is_set():
                    batch = consumer.poll(timeout_ms=100, max_records=10000)
                    now = time.time()
                    for recs in batch.values():
                        for r in recs:
                            rid = r.value[:200]
                            with contextlib.suppress(ValueError, AttributeError):
                                rid = json.loads(r.value).get("event_id")
                            if rid in self.ids:
                                self.duplicates += 1
                            self.ids.add(rid)
                            if not self.caught_up.is_set():
                                self.skipped += 1
                                continue
                            try:
                                obj = json.loads(r.value)
                                self.arrivals.append((now, str(obj.get("cause")), str(obj.get("type"))))
                            except ValueError:
                                self.arrivals.append((now, "", "unparseable"))
                            self.last_arrival = now
                    if not batch and not self.caught_up.is_set():
                        # The fetch high watermark is right on tansu (ListOffsets(LATEST) is not).
                        hws = [consumer.highwater(tp) for tp in tps]
                        if all(hw is not None for hw in hws) and all(
                                consumer.position(tp) >= hw for tp, hw in zip(tps, hws)):
                            self.caught_up.set()
            finally:
                consumer.close()
        except BaseException as exc:  # reported by the main thread
            self.error = exc
            self.caught_up.set()


class MetricsSampler(threading.Thread):
    """Samples the worker's consumed count and per-stage lag every 0.5 s."""

    def __init__(self, worker: "HarmrankWorker"):
        super().__init__(name="metrics-sampler", daemon=True)
        self.worker = worker
        # (time, consumed, {stage: lag}, worker CPU s, machine busy CPU s)
        self.samples: list[tuple[float, int, dict, float, float]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            samples = self.worker.metrics()
            if samples is not None:
                consumed = int(sum(v for n, _, v in samples if n == "harmrank_events_consumed_total"))
                lag = {lb.get("stage", "?"): int(v) for n, lb, v in samples if n == "harmrank_consumer_lag_messages"}
                self.samples.append((time.time(), consumed, lag, group_status(self.worker.child.pid).get("cpu", 0.0),
                                     machine_busy()))
            self.stopping.wait(0.5)


def print_timeline(t0: float, send_times: list, arrivals: list, samples: list, consumed_before: int,
                   sent: dict, step: float = 2.0) -> None:
    """Every ``step`` s since the first send: events sent, consumed, outputs, their latency."""
    if not send_times:
        return
    end = max([a for a, _, _ in arrivals] + [s[0] for s in samples] + [send_times[-1]])
    say(f"  timeline (every {step:g} s from the first send): sent / consumed / outputs in the step "
        f"(median latency) / CPU (100% = one core; the machine has {os.cpu_count()}) / consumer lag")
    k = 0
    while t0 + k * step <= end + step:
        lo, hi = t0 + k * step, t0 + (k + 1) * step
        n_sent = sum(1 for t in send_times if t < hi)
        consumed = [c for (t, c, *_) in samples if t < hi]
        lags = [lg for (t, _, lg, *_) in samples if t < hi]
        inside = [x for x in samples if lo - 0.5 < x[0] < hi]
        cpu = ""
        if len(inside) >= 2 and inside[-1][0] > inside[0][0]:
            dt = inside[-1][0] - inside[0][0]
            cpu = (f"  worker {(inside[-1][3] - inside[0][3]) / dt * 100:3.0f}% CPU, machine "
                   f"{(inside[-1][4] - inside[0][4]) / dt * 100:3.0f}%")
        window = sorted((a - sent[c]) * 1000 for a, c, _ in arrivals if lo <= a < hi and c in sent)
        clock = sum(1 for a, c, _ in arrivals if lo <= a < hi and c.startswith("clock:"))
        lag = lags[-1] if lags else {}
        say(f"    {k * step:5.0f}-{(k + 1) * step:<4.0f}s sent {n_sent:>6}  consumed "
            f"{(consumed[-1] - consumed_before) if consumed else 0:>6}  outputs {len(window):>4}"
            + (f" (p50 {pct(window, 50):7.0f} ms)" if window else " " * 17)
            + (f" +{clock:<3} clock" if clock else " " * 10) + cpu
            + (("  lag " + " ".join(f"{s}={v}" for s, v in sorted(lag.items()) if v)) if any(lag.values()) else ""))
        k += 1
        if k > 400:
            break
    if samples and not any(any(lg.values()) for (_, _, lg, *_) in samples):
        say("    (harmrank_consumer_lag_messages read 0 for every stage in every sample)")


def first_feed_span(args) -> dict:
    """Where the first feed lies in time: its year ends a day before now (realtime), or in 2025 (sweep)."""
    if args.latency_span != "realtime":
        return {}
    from schemas.events import us_to_iso

    now_us = time.time_ns() // 1000
    return {"start": us_to_iso(now_us - 401 * US_PER_DAY), "days": 400.0}


def latency_feed(rate: float, seconds: float, after_us: Optional[int], span: str = "realtime",
                 population: Optional[int] = None):
    """The second feed: newer than the first one, and not in the future for the worker.

    ``realtime``: its event times advance as fast as the wall clock while it is sent
    (``seconds`` of event time), as in production, where a report's ``at`` is when it was
    recorded. ``sweep``: it spreads over every day from the first feed's newest event to
    today, so the window sweeps through the whole first feed while it is sent: the
    allegations of a year expire within ``seconds``, on top of the new events.
    """
    from schemas.events import us_to_iso
    from streams.simulate import generate

    events = max(1, int(rate * seconds))
    now_us = time.time_ns() // 1000
    note = ""
    if span == "realtime":
        start_us = max(after_us + 1_000_000 if after_us is not None else 0, now_us - int(seconds * 1_000_000))
        days = seconds / 86_400
    else:
        start_us = (after_us + US_PER_DAY) if after_us is not None else now_us - 200 * US_PER_DAY
        days = min(400.0, (now_us - start_us) / US_PER_DAY - 2.0)
        if days < 1.0:  # the first feed reaches (almost) today: start from it anyway, one day long
            days = 1.0
            note = " (the first feed reaches today: some events may be future_timestamp dead letters)"
    if span != "realtime":
        return list(generate(seed=2, events=events, start=us_to_iso(start_us), days=days)), us_to_iso(start_us), days, note
    # The simulator keeps whole seconds and sizes its population by the feed's rate, so the
    # realtime feed is made as one day among the first feed's suspects (the same ids, as the
    # next reports of a city would name) and its times are then pressed into `seconds`.
    from schemas.validate import parse_timestamp

    feed = list(generate(seed=2, events=events, start=us_to_iso(start_us), days=1.0, suspects=population))
    scale = seconds / 86_400
    for ev in feed:
        try:
            at = parse_timestamp(ev["at"])
        except (KeyError, TypeError, ValueError):
            continue  # a deliberately invalid event keeps its invalid `at`
        ev["at"] = us_to_iso(start_us + int((at - start_us) * scale))
    return feed, us_to_iso(start_us), days, note


def with_probes(events: list, rate: float, per_second: float) -> tuple[list, set]:
    """The latency feed with `per_second` probes woven in; returns (events, event_ids of the timed probe events).

    A feed of a city at 500 events/s moves the top 100 only now and then (a few
    times in 30 s), too few ranking events for a p99. A probe is a new suspect
    with two reports of the gravest VAWG offence of the harm table, half a second
    apart: the first makes him known (one allegation: not eligible), the second
    makes him eligible with a score (twice the gravest offence) above any rank-100
    score a simulated city reaches, so he enters the top 100 and someone leaves
    it, both caused by the second report, which is the one timed. Each takes the
    event time of the feed event it is sent beside, and both land in the feed
    file, so the batch check over both feeds includes them.
    """
    from schemas.harm_table import load_harm_table
    from schemas.validate import parse_timestamp

    if per_second <= 0 or not events:
        return events, set()
    now = time.time_ns() // 1000

    def good_at(ev: dict) -> Optional[str]:
        """The event's `at` if the worker would take it (the feed holds deliberately bad ones)."""
        at = ev.get("at")
        try:
            return at if isinstance(at, str) and parse_timestamp(at) <= now else None
        except (TypeError, ValueError):
            return None

    gravest = max((e for e in load_harm_table() if e.vawg), key=lambda e: (e.days_cents, e.code))
    every = max(1, int(rate / per_second))
    lead = max(1, int(rate / 2))  # half a second between the two reports of a probe
    out, timed = list(events), set()
    inserts: list = []  # (position in the original feed, event)
    for n, pos in enumerate(range(0, len(events) - lead, every)):
        for part, at_pos in (("a", pos), ("b", pos + lead)):
            ref = f"PROBE-{n}"
            eid = f"probe-{n}-{part}"
            # the time of the event it is sent beside, or of the next one with a good time
            at = next((good for good in map(good_at, events[at_pos:]) if good is not None), None)
            if at is None:
                continue
            inserts.append((at_pos, {"event_id": eid, "type": "report.recorded", "at": at,
                                     "crime_ref": f"{ref}-{part}", "offence_code": gravest.code,
                                     "suspects": [f"PROBE-S{n}"], "victims": [{"id": f"PROBE-V{n}", "sex": "F"}]}))
            if part == "b":
                timed.add(eid)
    for at_pos, ev in sorted(inserts, key=lambda x: x[0], reverse=True):
        out.insert(at_pos, ev)
    return out, timed


def write_latency_feed(tmp: Path, args, first_newest_us: Optional[int]) -> tuple[Path, list, set]:
    """The latency feed with its probes, written to a file: (its path, [(event_id, key, raw)], the probes)."""
    from agents.commands.publish import event_key
    from streams.simulate import dumps, suspect_population

    events, start_iso, days, note = latency_feed(args.latency_rate, args.latency_seconds, first_newest_us,
                                                 args.latency_span, suspect_population(args.events, 400.0))
    events, probes = with_probes(events, args.latency_rate, args.latency_probes)
    feed_path = tmp / "latency-feed.jsonl"
    msgs = []
    with open(feed_path, "w", encoding="utf-8", newline="\n") as fh:
        for ev in events:
            text = dumps(ev)
            fh.write(text + "\n")
            raw = text.encode()
            key, _ = event_key(raw)
            msgs.append((str(ev.get("event_id")), key, raw))
    say(f"  latency feed: seed=2, {len(msgs)} events from {start_iso} over {days:.0f} days{note}, "
        f"paced at {args.latency_rate:g} events/s, {len(probes)} probes among them")
    return feed_path, msgs, probes


def start_output_listener(bootstrap: str) -> OutputListener:
    """The harm-ranking listener, started and caught up with what the topic already holds."""
    listener = OutputListener(bootstrap)
    listener.start()
    if not listener.caught_up.wait(120):
        raise BenchError("the harm-ranking listener did not catch up within 120 s")
    if listener.error is not None:
        raise BenchError(f"harm-ranking listener failed: {listener.error!r}")
    say(f"  harm-ranking listener caught up ({listener.skipped} earlier output events skipped)")
    return listener


def send_paced(producer, msgs: list, rate: float) -> tuple[dict, list, float, int]:
    """Send ``msgs`` at ``rate`` a second and flush: (first send time by event_id, every send time,
    the time of the first send, the sends behind schedule)."""
    sent: dict[str, float] = {}
    send_log: list[float] = []  # every send, in order (duplicates included)
    t0 = time.time()
    late = 0
    for i, (eid, key, raw) in enumerate(msgs):
        ahead = t0 + i / rate - time.time()
        if ahead > 0:
            time.sleep(ahead)
        elif ahead < -0.05:
            late += 1
        now = time.time()
        sent.setdefault(eid, now)  # a re-sent duplicate's output is caused by the first
        send_log.append(now)
        producer.send(INPUT_TOPIC, key=key, value=raw)
    producer.flush(timeout=60)
    return sent, send_log, t0, late


def say_hop_latencies(hop, t0: float, t_sent: float) -> None:
    """The bare broker hop's latencies in the first and the last third of the sending."""
    third = (t_sent - t0) / 3
    for label, lo, hi in (("first", t0, t0 + third), ("last", t_sent - third, t_sent)):
        h = hop.latencies(lo, hi)
        say(f"  bare broker hop (bench-hop-probe, 10/s), {label} third of the feed: p50 {pct(h, 50):.1f} ms, "
            f"p99 {pct(h, 99):.1f} ms ({len(h)} messages)")


def wait_for_last_outputs(listener: OutputListener, t_done: float) -> None:
    """Let the last outputs arrive: 3 s without a new record (at most 60 s)."""
    quiet_deadline = time.monotonic() + 60
    while time.monotonic() < quiet_deadline:
        if time.time() - max(listener.last_arrival, t_done) >= 3.0:
            break
        time.sleep(0.2)


def stop_threads(listener: OutputListener, sampler: MetricsSampler) -> None:
    """Stop the listener and the sampler and wait (10 s each) for them to end."""
    listener.stopping.set()
    sampler.stopping.set()
    listener.join(10)
    sampler.join(10)


@dataclasses.dataclass
class TimedOutputs:
    """The output events of the latency feed by cause: the latencies (ms, sorted) of those caused by
    an event sent, those of them caused by the city's own events, and the rest counted."""

    lat: list
    city: list
    causes: set
    clock: int
    unknown: int


def time_outputs(arrivals: list, sent: dict, probes: set) -> TimedOutputs:
    """Each output's latency: its arrival less the send time of the input event it names as cause."""
    lat, clock, unknown = [], 0, 0
    causes = set()
    city = []  # the latencies of outputs caused by the city's own events, not by a probe
    for arrival, cause, _type in arrivals:
        if cause.startswith("clock:"):
            clock += 1
        elif cause in sent:
            lat.append((arrival - sent[cause]) * 1000.0)
            causes.add(cause)
            if cause not in probes:
                city.append(lat[-1])
        else:
            unknown += 1
    lat.sort()
    city.sort()
    return TimedOutputs(lat, city, causes, clock, unknown)


def say_output_latencies(res: dict, timed: TimedOutputs, probes: set, duplicates: int) -> None:
    """How many outputs were timed and what caused them, and their latency percentiles."""
    lat, city, causes = timed.lat, timed.city, timed.causes
    say(f"  output events timed: {len(lat)} (caused by {len(causes)} input events, {len(causes & probes)} of the "
        f"{len(probes)} probes among them); "
        f"{timed.clock} with a clock: cause not counted; {timed.unknown} with another cause; "
        f"{duplicates} records on harm-ranking repeat an earlier event_id")
    if lat:
        say(f"  latency publish -> harm-ranking: p50 {res['p50']:.1f} ms, p90 {res['p90']:.1f} ms, "
            f"p99 {res['p99']:.1f} ms, max {res['max']:.1f} ms, mean {res['mean']:.1f} ms")
        if city and probes:
            say(f"    of which caused by the city's own events ({len(city)}): p50 {pct(city, 50):.1f} ms, "
                f"p99 {pct(city, 99):.1f} ms, max {city[-1]:.1f} ms")
    else:
        say("  latency: no output event named an input event of the latency feed")


def consumed_delays(samples: list, send_log: list, consumed_before: int) -> list:
    """Intake delay (ms, sorted) for every event, not only those that move the ranking: the worker
    has counted k events of this feed at sample time t, so the k-th one sent took at most t - send."""
    delays = []
    prev = None
    for t_s, c, *_ in samples:  # only the first sample that saw each new count
        k = c - consumed_before
        if c != prev and 0 < k <= len(send_log):
            delays.append((t_s - send_log[k - 1]) * 1000.0)
        prev = c
    delays.sort()
    return delays


def run_latency(broker, worker: HarmrankWorker, tmp: Path, args, consumed_before: int,
                first_feed: Path, first_newest_us: Optional[int]) -> dict:
    """[2] Send the latency feed at its pace to the caught-up worker and time every output it causes."""
    from kafka import KafkaProducer

    from tests.bench.bench_broker import HopProbe

    feed_path, msgs, probes = write_latency_feed(tmp, args, first_newest_us)
    listener = start_output_listener(broker.bootstrap)
    meter = CpuMeter([worker.child.pid, broker.pid])
    sampler = MetricsSampler(worker)
    sampler.start()
    # The bare broker hop meanwhile (10 messages/s on a topic of its own): what one hop costs
    # on this broker at that moment, with everything the run has left in it (README).
    hop = HopProbe(broker.bootstrap, "bench-hop-probe", 0, rate=10.0)
    hop.start()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks=1, linger_ms=0,
                             max_request_size=4 * 1024 * 1024, client_id="bench-latency")
    cpu0 = group_status(worker.child.pid).get("cpu", 0.0)
    try:
        sent, send_log, t0, late = send_paced(producer, msgs, args.latency_rate)
    finally:
        producer.close(timeout=5)
    t_sent = time.time()
    achieved = len(msgs) / (t_sent - t0) if t_sent > t0 else float("nan")
    say(f"  sent {len(msgs)} events in {t_sent - t0:.1f} s ({achieved:.0f}/s; {late} sends behind schedule)")
    hop.stop()
    say_hop_latencies(hop, t0, t_sent)

    target = consumed_before + count_nonblank(feed_path)
    t_done, n = worker.wait_consumed(target, stall=120, cap=300 + len(msgs) / 50, label="latency feed")
    wait_for_last_outputs(listener, t_done)
    stop_threads(listener, sampler)
    cpu1 = group_status(worker.child.pid).get("cpu", 0.0)
    if listener.error is not None:
        raise BenchError(f"harm-ranking listener failed: {listener.error!r}")

    timed = time_outputs(list(listener.arrivals), sent, probes)
    lat = timed.lat
    res = {"n": len(lat), "causes": len(timed.causes), "clock": timed.clock, "unknown": timed.unknown,
           "rate": args.latency_rate, "achieved": achieved, "events": len(msgs),
           "cpu_per_event_ms": (cpu1 - cpu0) / len(msgs) * 1000.0, "cpu_share": (cpu1 - cpu0) / (t_done - t0),
           "feed": feed_path, "consumed": n, "target": target}
    for q in (50, 90, 99):
        res[f"p{q}"] = pct(lat, q)
    res["max"] = lat[-1] if lat else float("nan")
    res["mean"] = sum(lat) / len(lat) if lat else float("nan")
    say_output_latencies(res, timed, probes, listener.duplicates)
    delays = consumed_delays(sampler.samples, send_log, consumed_before)
    if delays:
        say(f"  consumed-by-worker delay (from /metrics every 0.5 s, all events): p50 {pct(delays, 50):.0f} ms, "
            f"p90 {pct(delays, 90):.0f} ms, p99 {pct(delays, 99):.0f} ms, max {delays[-1]:.0f} ms")
    res["consumed_delay"] = {q: pct(delays, q) for q in (50, 90, 99)} if delays else None
    print_timeline(t0, send_log, list(listener.arrivals), sampler.samples, consumed_before, sent,
                   step=max(2.0, round(args.latency_seconds / 15.0)))
    say(f"  CPU during the latency phase: {meter.report()}")
    say(f"  worker CPU during the latency feed: {res['cpu_per_event_ms']:.2f} ms per input event "
        f"({res['cpu_share'] * 100:.0f} % of one core)")
    return res


# --------------------------------------------------------------------------- baseline
def run_naive(broker, tmp: Path, args, n: int, no_table: bool, faust_defaults: bool = False) -> dict:
    name = ("naive-notable" if no_table else "naive") + ("-defaults" if faust_defaults else "")
    datadir = tmp / f"{name}-data"
    count_file = tmp / f"{name}.count"
    cmd = [sys.executable, "-m", "tests.bench.naive_app", "--broker", broker.url, "--datadir", str(datadir),
           "--count-file", str(count_file), "--partitions", str(args.partitions)]
    if no_table:
        cmd.append("--no-table")
    if faust_defaults:
        cmd.append("--faust-defaults")
    t_start = time.time()
    child = Child(name, cmd, clean_env(), tmp / f"{name}.log")
    CHILDREN.append(child)
    meter = CpuMeter([child.pid, broker.pid])
    try:
        stall, cap = 120.0, 300.0 + n / 100.0
        last_count, last_change = -1, time.monotonic()
        start = time.monotonic()
        last_print = start
        while True:
            if not child.alive():
                raise BenchError(f"{name} exited with code {child.proc.returncode}:\n{child.tail()}")
            count, first, last = 0, 0.0, 0.0
            with contextlib.suppress(OSError, ValueError):
                parts = count_file.read_text().split()
                count, first, last = int(parts[0]), float(parts[1]), float(parts[2])
            now = time.monotonic()
            if count >= n:
                break
            if count != last_count:
                last_count, last_change = count, now
            if now - last_print >= 15:
                last_print = now
                say(f"    ... {name}: {count}/{n} after {now - start:.0f} s")
            limit = stall if count else 180.0  # start-up (group join) gets its own allowance
            if now - last_change > limit:
                raise BenchError(f"{name}: no progress for {limit:g} s (at {count}/{n}):\n{child.tail()}")
            if now - start > cap:
                raise BenchError(f"{name}: only {count}/{n} after {cap:g} s:\n{child.tail()}")
            time.sleep(0.25)
        st = group_status(child.pid)
        cpu_note = meter.report()
    finally:
        child.stop(grace=10)
    rate = (count - 1) / (last - first) if last > first else float("nan")
    cpu_per_event = st.get("cpu", float("nan")) / count * 1000.0 if count else float("nan")
    return {"rate": rate, "count": count, "seconds": last - first, "startup": first - t_start,
            "rss": st.get("VmHWM", float("nan")), "cpu": st.get("cpu", float("nan")),
            "log": child.log, "cpu_note": cpu_note, "cpu_per_event": cpu_per_event}


# --------------------------------------------------------------------------- latency floor
def run_floor(broker, tmp: Path, args, hops: str = "faust", count: int = 4) -> dict:
    """The pipeline with the work taken out (``tests/bench/floor_app.py``), fed at the latency rate."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    from agents.kafka_admin import ensure_topics
    from tests.bench import floor_app

    in_topic, hop_topics = floor_app.topics_of(hops, count)
    out_topic = hop_topics[-1][0]
    ensure_topics([broker.bootstrap], {in_topic: 4, **dict(hop_topics)})
    cmd = [sys.executable, "-m", "tests.bench.floor_app", "--broker", broker.url,
           "--datadir", str(tmp / f"floor-data-{hops}-{count}"), "--hops", hops, "--count", str(count)]
    child = Child("floor", cmd, clean_env(), tmp / f"floor-{hops}-{count}.log")
    CHILDREN.append(child)
    arrivals: list = []  # latency in ms of every item that reached the last topic
    stopping = threading.Event()
    failed: list = []

    def listen() -> None:
        try:
            consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                                     fetch_max_wait_ms=5, max_partition_fetch_bytes=4 * 1024 * 1024)
            tp = TopicPartition(out_topic, 0)
            consumer.assign([tp])
            consumer.seek_to_end(tp)
            while not stopping.is_set():
                for recs in consumer.poll(timeout_ms=100).values():
                    now = time.time() * 1000.0
                    for r in recs:
                        arrivals.extend(now - item[0] for item in json.loads(r.value))
            consumer.close()
        except Exception as exc:  # reported by the caller
            failed.append(exc)

    listener = threading.Thread(target=listen, name="floor-listener", daemon=True)
    listener.start()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks=1, linger_ms=0, client_id="bench-floor")
    try:
        # Warm up until an item comes through (the app's groups have joined), at most 120 s.
        deadline = time.monotonic() + 120
        while not arrivals:
            if not child.alive():
                raise BenchError(f"the floor app exited with code {child.proc.returncode}:\n{child.tail()}")
            if time.monotonic() > deadline or failed:
                raise BenchError(f"the floor pipeline passed nothing on within 120 s ({failed}):\n{child.tail()}")
            producer.send(in_topic, key=b"warm-up", value=b"{}")
            producer.flush()
            time.sleep(0.5)
        time.sleep(2)
        feed = [line.encode() for line in (tmp / "latency-feed.jsonl").read_text().splitlines() if line.strip()]
        arrivals.clear()
        meter = CpuMeter([child.pid, broker.pid])
        cpu0 = group_status(child.pid).get("cpu", 0.0)
        n = min(len(feed), int(args.latency_rate * args.latency_seconds))
        t0 = time.time()
        for i in range(n):
            ahead = t0 + i / args.latency_rate - time.time()
            if ahead > 0:
                time.sleep(ahead)
            producer.send(in_topic, key=str(i).encode(), value=feed[i])
        producer.flush(timeout=60)
        wait_until = time.monotonic() + 30
        while len(arrivals) < n and time.monotonic() < wait_until:
            time.sleep(0.1)
        elapsed = time.time() - t0
        cpu = (group_status(child.pid).get("cpu", 0.0) - cpu0) / elapsed
        note = meter.report()
    finally:
        stopping.set()
        producer.close(timeout=5)
        listener.join(10)
        child.stop(grace=10)
    lat = sorted(arrivals)
    res = {"n": len(lat), "sent": n, "cpu_share": cpu, "cpu_note": note,
           "max": lat[-1] if lat else float("nan"), "mean": sum(lat) / len(lat) if lat else float("nan")}
    for q in (50, 90, 99):
        res[f"p{q}"] = pct(lat, q)
    return res


# --------------------------------------------------------------------------- main
CHILDREN: list[Child] = []


def start_broker():
    from agents.local_broker import BrokerError, LocalBroker, free_port

    last = None
    for _ in range(3):
        lb = LocalBroker(port=free_port())
        try:
            return lb.start(timeout=15)
        except BrokerError as exc:
            last = exc
    raise BenchError(f"cannot start the tansu broker: {last}")


def ranking_json(out: Path) -> Optional[list]:
    """The ranking in the log of `harmrank rank --json` (stdout and stderr share it: the JSON is the line
    that starts with '['), or None."""
    found = None
    for line in out.read_text(errors="replace").splitlines():
        if line.startswith("["):
            found = json.loads(line)
    return found


def worker_settings(p: argparse.ArgumentParser, given: list) -> dict:
    """--worker-setting NAME=VALUE pairs as {name: value}; NAME must be a worker setting."""
    from agents.settings import Settings

    known = {f.name for f in dataclasses.fields(Settings)} | {"tansu_fetch_wait_ms", "tansu_fix", "processes"}  # read elsewhere
    out = {}
    for setting in given:
        name, eq, value = setting.partition("=")
        name = name.strip().lower()
        if not eq or name not in known:
            p.error(f"--worker-setting {setting!r}: expected NAME=VALUE with NAME one of {', '.join(sorted(known))}")
        out[name] = value
    return out


def run_cli(args: list, env: dict, log: Path) -> Child:
    return Child(args[0], [sys.executable, "-m", "agents.cli", *map(str, args)], env, log)


def publish_feed(broker, feed: Path, log: Path, lines: int) -> Child:
    """`harmrank publish` of ``feed`` (``lines`` long) to ``broker``, waited for; BenchError if it fails.

    Returns the exited child, for its log; its process group is stopped whatever happens."""
    pub = run_cli(["publish", str(feed)], clean_env(broker=broker.url), log)
    try:
        if pub.proc.wait(timeout=max(600, lines / 50)) != 0:
            raise BenchError(f"harmrank publish exited {pub.proc.returncode}:\n{pub.tail()}")
    finally:
        pub.stop(grace=10)
    return pub


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    """The flags, checked; ``worker_settings`` holds the --worker-setting pairs as {name: value}."""
    p = argparse.ArgumentParser(prog="python -m tests.bench.bench_stream", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=200_000, help="events in the end-to-end feed (default 200000)")
    p.add_argument("--partitions", type=int, default=4, help="crime-reports partitions (default 4)")
    p.add_argument("--latency-rate", type=float, default=500.0, help="events/s of the latency feed (default 500)")
    p.add_argument("--latency-seconds", type=float, default=30.0, help="length of the latency feed (default 30)")
    p.add_argument("--latency-probes", type=float, default=2.0,
                   help="probes per second in the latency feed: new suspects whose second report enters the top N "
                        "(default 2; 0: the city's own events only)")
    p.add_argument("--latency-span", choices=["realtime", "sweep"], default="realtime",
                   help="event time of the latency feed: as fast as the wall clock (realtime, the default: the "
                        "first feed's year then ends a day before now), or spread from the first feed to today "
                        "(sweep: a year of allegations expires during the latency feed)")
    p.add_argument("--skip-baseline", action="store_true", help="do not run the naive Faust baselines")
    p.add_argument("--skip-floor", action="store_true", help="do not run the latency floor (the pipeline with no work)")
    p.add_argument("--worker-setting", action="append", default=[], metavar="NAME=VALUE",
                   help="run the worker with HARMRANK_<NAME>=VALUE (repeatable; NAME a worker setting), "
                        "e.g. batch_window_ms=2")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, data)")
    args = p.parse_args(argv)
    if args.events < 1 or args.partitions < 1 or args.latency_rate <= 0 or args.latency_seconds <= 0:
        p.error("--events, --partitions, --latency-rate and --latency-seconds must be positive")
    args.worker_settings = worker_settings(p, args.worker_setting)
    return args


def stop_on_signals() -> None:
    """SIGTERM and SIGINT stop the run like Ctrl-C: the finally block of :func:`main` stops every child."""
    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)  # even when started in the background (SIG_IGN inherited)


@dataclasses.dataclass
class BenchRun:
    """What the phases share: the flags, the work dir, the broker, the worker while it runs, the figures."""

    args: argparse.Namespace
    tmp: Path
    broker: object = None
    worker: Optional[HarmrankWorker] = None
    summary: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class FirstFeed:
    """The end-to-end feed: its file, its non-blank lines, its newest event time."""

    path: Path
    lines: int
    newest_us: Optional[int]


def write_first_feed(run: BenchRun) -> FirstFeed:
    """``generate(seed=1)`` with the flags' size, written to feed.jsonl."""
    from streams.simulate import generate

    feed = run.tmp / "feed.jsonl"
    t = time.monotonic()
    lines, _, newest_us = write_feed(feed, generate(seed=1, events=run.args.events, **first_feed_span(run.args)))
    say(f"  feed: seed=1, {lines} non-blank lines ({feed.stat().st_size / 1e6:.1f} MB), "
        f"written in {time.monotonic() - t:.1f} s")
    return FirstFeed(feed, lines, newest_us)


def say_publish(pub_out: str, pub_elapsed: float, summary: dict) -> None:
    """`harmrank publish`'s own rate line (kept in the summary), else the end of its output."""
    m = re.search(r"sent (\d+) events in ([\d.]+) s \((\d+)/s\), (\d+) failed", pub_out)
    if m:
        say(f"  harmrank publish: {m.group(0)}  (process wall time {pub_elapsed:.1f} s, "
            f"with `harmrank rank` running alongside)")
        summary["publish_rate"] = float(m.group(3))
    else:
        say(f"  harmrank publish finished in {pub_elapsed:.1f} s: {pub_out.strip()[-300:]}")


def publish_and_rank(run: BenchRun, feed: FirstFeed) -> list:
    """`harmrank publish` of the feed, with `harmrank rank --json` computing the batch reference alongside."""
    tmp = run.tmp
    t_rank = time.monotonic()
    rank = run_cli(["rank", str(feed.path), "--json"], clean_env(), tmp / "rank.out")
    CHILDREN.append(rank)
    t_pub = time.monotonic()
    pub = publish_feed(run.broker, feed.path, tmp / "publish.log", feed.lines)
    pub_elapsed = time.monotonic() - t_pub
    say_publish(pub.tail(2000), pub_elapsed, run.summary)
    if rank.proc.wait(timeout=max(600, feed.lines / 20)) != 0:
        raise BenchError(f"harmrank rank exited {rank.proc.returncode}")
    rank.stop()
    expected = ranking_json(tmp / "rank.out")
    for line in (tmp / "rank.out").read_text(errors="replace").splitlines():  # its summary, not the JSON
        if line.strip() and not line.startswith(("[", "line ")):
            say(f"  harmrank rank: {line.strip()}  ({time.monotonic() - t_rank:.1f} s)")
    if expected is None:
        raise BenchError(f"no JSON from harmrank rank:\n{tail(tmp / 'rank.out')}")
    return expected


def launch_worker(run: BenchRun) -> tuple[float, float]:
    """`harmrank worker` on the broker (event clock), in ``run.worker``: (launch time, ready time)."""
    from agents.local_broker import free_port

    args, tmp = run.args, run.tmp
    port = free_port()
    token = secrets.token_hex(16)
    data_dir = tmp / "worker-data"
    env = clean_env(broker=run.broker.url, data_dir=data_dir, clock="event", web_port=port,
                    api_token=token, partitions=args.partitions, **args.worker_settings)
    if args.worker_settings:
        say("  worker settings: " + ", ".join(f"HARMRANK_{k.upper()}={v}" for k, v in args.worker_settings.items()))
    t_launch = time.time()
    child = run_cli(["worker"], env, tmp / "worker.log")
    CHILDREN.append(child)
    run.worker = HarmrankWorker(child, port, token)
    return t_launch, run.worker.wait_ready(timeout=240)


def consumed_by_outcome(samples: list) -> dict:
    """harmrank_events_consumed_total summed by its outcome label."""
    outcomes: dict = {}
    for name, labels, v in samples:
        if name == "harmrank_events_consumed_total" and v:
            outcomes[labels.get("outcome", "?")] = outcomes.get(labels.get("outcome", "?"), 0) + int(v)
    return outcomes


def say_first_feed_figures(run: BenchRun, lines: int, cpu_note: str, t_launch: float, t_ready: float,
                           t_consumed: float, t_equal: Optional[float]) -> None:
    """The end-to-end rates, the worker's CPU and memory, into the summary and said."""
    summary, equal = run.summary, t_equal is not None
    st = group_status(run.worker.child.pid)
    samples = run.worker.metrics() or []
    outcomes = consumed_by_outcome(samples)
    outputs = int(sum(v for name, _, v in samples if name == "harmrank_output_events_total"))
    e2e = lines / (t_consumed - t_ready)
    e2e_rank = lines / (t_equal - t_ready) if equal else float("nan")
    say(f"  consumed by outcome: {outcomes}; ranking events emitted: {outputs}")
    say(f"  CPU from ready to all consumed: {cpu_note}")
    summary["others_e2e"] = cpu_note
    say(f"  END TO END: {e2e:.0f} events/s to all consumed; "
        + (f"{e2e_rank:.0f} events/s to ranking equal" if equal else "ranking never equal"))
    summary["cpu_per_event"] = st.get("cpu", float("nan")) / lines * 1000.0
    say(f"  worker CPU per input line: {summary['cpu_per_event']:.3f} ms (since launch, to ranking equal)")
    say(f"  worker: peak RSS (VmHWM) {st.get('VmHWM', float('nan')):.0f} MiB, RSS now "
        f"{st.get('VmRSS', float('nan')):.0f} MiB, CPU {st.get('cpu', float('nan')):.1f} s since launch "
        f"({st.get('cpu', float('nan')) / (t_consumed - t_launch) * 100:.0f} % of one core on average)")
    summary.update(e2e=e2e, e2e_rank=e2e_rank, equal=equal, lines=lines, rss=st.get("VmHWM"),
                   cpu=st.get("cpu"), ranking_events=outputs)


def phase_end_to_end(run: BenchRun) -> tuple[FirstFeed, int]:
    """[1] publish the whole feed, then run the worker over it: (the feed, the worker's consumed count)."""
    say("\n[1] end to end: publish everything, then run the worker over it")
    feed = write_first_feed(run)
    lines = feed.lines
    expected = publish_and_rank(run, feed)
    t_launch, t_ready = launch_worker(run)
    worker = run.worker
    meter = CpuMeter([worker.child.pid, run.broker.pid])
    at_ready = worker.consumed() or 0
    say(f"  worker ready {t_ready - t_launch:.1f} s after launch ({at_ready} events already consumed then)")
    t_consumed, n = worker.wait_consumed(lines, stall=180, cap=120 + lines / 100, label="feed")
    cpu_note = meter.report()
    say(f"  all {lines} lines consumed {t_consumed - t_ready:.1f} s after ready"
        + (f" (counter says {n}: {n - lines} counted twice)" if n != lines else ""))
    rank_timeout = 300 + lines / 500
    t_equal, got = worker.wait_ranking(expected, timeout=rank_timeout)
    if t_equal is not None:
        say(f"  /ranking equals `harmrank rank --json` {t_equal - t_ready:.1f} s after ready "
            f"({len(expected)} entries, as_of {got.get('as_of')})")
    else:
        say(f"  /ranking did NOT equal `harmrank rank --json` within {rank_timeout:.0f} s after all was consumed:")
        say(ranking_diff(expected, (got or {}).get("entries") or []))
    say_first_feed_figures(run, lines, cpu_note, t_launch, t_ready, t_consumed, t_equal)
    return feed, n


def say_stage_latencies(samples: list) -> None:
    """The per-stage batch latency histogram of the latency phase, by bucket bound."""
    rows = histogram_summary(samples, "harmrank_processing_latency_seconds")
    if rows:
        say("  harmrank_processing_latency_seconds (per stage batch, latency phase only; bucket bounds):")
        for r in rows:
            say(r)


def check_both_feeds(run: BenchRun, feed: FirstFeed, latency_feed_path: Path) -> None:
    """Stream and batch over both feeds (a check, not a figure: the latency feed's merges
    may race its corrections across partitions; see README "Ordering")."""
    tmp = run.tmp
    both = tmp / "both.jsonl"
    with open(both, "wb") as out:
        for part in (feed.path, latency_feed_path):
            out.write(part.read_bytes())
    rank2 = run_cli(["rank", str(both), "--json"], clean_env(), tmp / "rank2.out")
    CHILDREN.append(rank2)
    rank2_code = rank2.proc.wait(timeout=max(600, feed.lines / 20))
    expected2 = ranking_json(tmp / "rank2.out") if rank2_code == 0 else None
    if expected2 is None:  # a check that could not be made is said, not passed
        say(f"  harmrank rank over both feeds exited {rank2_code} without a ranking:\n{tail(tmp / 'rank2.out')}")
    t_eq2, got2 = run.worker.wait_ranking(expected2, timeout=60) if expected2 is not None else (None, None)
    run.summary["equal2"] = t_eq2 is not None
    say("  after the latency feed, /ranking equals `harmrank rank` over both feeds: "
        + ("yes" if t_eq2 is not None else "NO"))
    if t_eq2 is None and expected2 is not None:
        say(ranking_diff(expected2, (got2 or {}).get("entries") or []))


def stop_worker(run: BenchRun) -> None:
    """Stop the worker and say the WARNING/ERROR lines of its log."""
    child = run.worker.child
    child.stop(grace=20)
    log_text = tail(child.log, 10_000_000)
    bad = [ln for ln in log_text.splitlines() if re.search(r"\b(ERROR|CRITICAL|Traceback|WARNING)\b", ln)]
    run.summary["worker_log_warnings"] = len(bad)
    say(f"  worker stopped (exit code {child.proc.returncode}); its log has {len(bad)} WARNING/ERROR lines"
        + (":" if bad else ""))
    for ln in bad[:15]:
        say("    | " + ln[:300])
    run.worker = None


def phase_latency(run: BenchRun, feed: FirstFeed, consumed: int) -> None:
    """[2] the caught-up worker, a newer feed at the latency rate; then the check over both feeds."""
    args, worker = run.args, run.worker
    say(f"\n[2] latency: the caught-up worker, a newer feed at {args.latency_rate:g} events/s")
    before = worker.metrics() or []
    lat = run_latency(run.broker, worker, run.tmp, args, consumed, feed.path, feed.newest_us)
    run.summary["latency"] = lat
    say_stage_latencies(subtract_samples(worker.metrics() or [], before))
    check_both_feeds(run, feed, lat["feed"])
    st = group_status(worker.child.pid)
    run.summary["rss_end"] = st.get("VmHWM")
    say(f"  worker: peak RSS (VmHWM) {st.get('VmHWM', float('nan')):.0f} MiB, CPU {st.get('cpu', 0):.1f} s")
    stop_worker(run)


def say_naive(res: dict) -> None:
    """A naive agent's rate, start-up, memory and CPU."""
    say(f"  {res['count']} events in {res['seconds']:.1f} s from its first event: {res['rate']:.0f} events/s "
        f"(first event {res['startup']:.1f} s after launch; peak RSS {res['rss']:.0f} MiB)")
    say(f"  CPU: {res['cpu']:.1f} s since launch = {res['cpu_per_event']:.3f} ms per event; {res['cpu_note']}")


def phase_baselines(run: BenchRun, lines: int) -> None:
    """[3a] [3b] [4] the naive Faust agent (Faust's defaults, the worker's knobs) and the consume-only ceiling."""
    broker, tmp, args, summary = run.broker, run.tmp, run.args, run.summary
    say("\n[3a] naive Faust agent, Faust's defaults: one message at a time, one RocksDB table write per event")
    summary["naive_defaults"] = nd = run_naive(broker, tmp, args, lines, no_table=False, faust_defaults=True)
    say_naive(nd)
    say("\n[3b] the same naive agent with the worker's tuning knobs")
    summary["naive"] = nv = run_naive(broker, tmp, args, lines, no_table=False)
    say_naive(nv)
    say("\n[4] Faust ceiling: the same agent, consume and count only (--no-table)")
    summary["ceiling"] = nt = run_naive(broker, tmp, args, lines, no_table=True)
    say_naive(nt)


def phase_floor(run: BenchRun) -> None:
    """[5] the same four hops with no work in them, Faust hops and aiokafka hops; and three Faust hops."""
    say(f"\n[5] latency floor: the same four hops with no work in them, at {run.args.latency_rate:g} events/s "
        "(tests/bench/floor_app.py)")
    for hops, count, label in (("faust", 4, "hops 2-4 as Faust agents, as in the worker"),
                               ("aiokafka", 4, "every hop an aiokafka batch reader, no Faust stream"),
                               ("faust", 3, "three hops, the register's taken out (a register reading the "
                                            "input itself), hops 2-3 as Faust agents")):
        fl = run_floor(run.broker, run.tmp, run.args, hops, count)
        run.summary["floor_" + hops + ("" if count == 4 else f"_{count}")] = fl
        say(f"  {label}: {fl['n']} of {fl['sent']} items through: p50 {fl['p50']:.1f} ms, "
            f"p90 {fl['p90']:.1f} ms, p99 {fl['p99']:.1f} ms, max {fl['max']:.1f} ms, mean {fl['mean']:.1f} ms")
        say(f"    floor app {fl['cpu_share'] * 100:.0f} % of one core; {fl['cpu_note']}")


def say_baseline_ratios(summary: dict) -> None:
    """harmrank's rate against each naive agent's and the ceiling's, and the CPU per event of each."""
    nd, nv, nt = summary["naive_defaults"], summary["naive"], summary["ceiling"]
    equal = summary["equal"]
    # The worker's rate is the one to the ranking equal to the batch's: consuming the input
    # is only its first hop (the naive agents have no other).
    ours = summary["e2e_rank"] if equal else summary["e2e"]
    say(f"harmrank, for the ratios: {ours:.0f} events/s "
        + ("(to ranking equal)" if equal else "(to all consumed: the ranking was never equal)"))
    say(f"naive Faust agent, one table write per event, Faust's defaults: {nd['rate']:.0f} events/s  -> "
        f"harmrank is {ours / nd['rate']:.1f} times the baseline")
    say(f"the same naive agent with the worker's tuning knobs: {nv['rate']:.0f} events/s  -> harmrank is "
        f"{ours / nv['rate']:.1f} times that")
    say(f"Faust consume-only ceiling: {nt['rate']:.0f} events/s  -> harmrank is "
        f"{ours / nt['rate']:.2f} times the ceiling")
    say(f"CPU per event (independent of other load): harmrank worker {summary['cpu_per_event']:.2f} ms, "
        f"naive {summary['naive_defaults']['cpu_per_event']:.2f} ms (Faust's defaults), "
        f"{summary['naive']['cpu_per_event']:.2f} ms (tuned), consume-only {summary['ceiling']['cpu_per_event']:.2f} ms")


def say_summary(summary: dict, args: argparse.Namespace) -> None:
    """The figures of every phase run, in a few lines."""
    lines, equal = summary["lines"], summary["equal"]
    say("\n" + "=" * 78)
    say(f"end-to-end: {summary['e2e']:.0f} events/s ({lines} events, {args.partitions} partitions; "
        + (f"{summary['e2e_rank']:.0f} events/s to ranking equal), " if equal else "), ")
        + f"ranking equals batch: {'yes' if equal else 'NO'}")
    if "publish_rate" in summary:
        say(f"harmrank publish: {summary['publish_rate']:.0f} events/s")
    if "naive" in summary:
        say_baseline_ratios(summary)
    lat = summary["latency"]
    say(f"latency at {lat['rate']:g} events/s: p50 {lat['p50']:.0f} ms, p90 {lat['p90']:.0f} ms, "
        f"p99 {lat['p99']:.0f} ms, max {lat['max']:.0f} ms ({lat['n']} ranking events)"
        + (f"; consumed-by-worker delay p50 {lat['consumed_delay'][50]:.0f} ms, p99 {lat['consumed_delay'][99]:.0f} ms"
           if lat.get("consumed_delay") else ""))
    for hops in ("faust", "aiokafka"):
        fl = summary.get("floor_" + hops)
        if fl:
            say(f"latency floor (the same hops, no work; {hops} hops): p50 {fl['p50']:.0f} ms, "
                f"p90 {fl['p90']:.0f} ms, p99 {fl['p99']:.0f} ms ({fl['n']} of {fl['sent']} items)")
    say(f"worker peak RSS: {summary['rss']:.0f} MiB after the feed, {summary['rss_end']:.0f} MiB at the end; "
        f"CPU {summary['cpu']:.1f} s for the feed")
    if "others_e2e" in summary:
        say(f"CPU during end-to-end: {summary['others_e2e']}")
    say(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    say("=" * 78)


def run_phases(run: BenchRun) -> None:
    """The broker, then every phase the flags leave in, then the summary."""
    run.broker = start_broker()
    say(f"broker: tansu on {run.broker.bootstrap} (pid {run.broker.pid})")
    feed, consumed = phase_end_to_end(run)
    phase_latency(run, feed, consumed)
    if not run.args.skip_baseline:
        phase_baselines(run, feed.lines)
    if not run.args.skip_floor:
        phase_floor(run)
    say_summary(run.summary, run.args)


def stop_everything(run: BenchRun, ok: bool) -> None:
    """Stop every child and the broker; remove the work dir after a good run unless --keep."""
    for c in reversed(CHILDREN):
        with contextlib.suppress(Exception):
            c.stop(grace=10)
    if run.broker is not None:
        with contextlib.suppress(Exception):
            run.broker.stop()
    if ok and not run.args.keep:
        shutil.rmtree(run.tmp, ignore_errors=True)
    else:
        say(f"(work dir kept: {run.tmp})")


def main(argv: Optional[list] = None) -> int:
    args = parse_args(argv)
    stop_on_signals()
    run = BenchRun(args, Path(tempfile.mkdtemp(prefix="harmrank-bench-")))
    ok = False
    say(f"harmrank stream benchmark: {args.events} events, {args.partitions} partitions; "
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}; work dir {run.tmp}")
    try:
        run_phases(run)
        ok = True
    except BenchError as exc:
        say(f"\nBENCHMARK FAILED: {exc}")
    except KeyboardInterrupt:
        say("\ninterrupted")
    except Exception as exc:  # keep the diagnostics of an unexpected failure too
        import traceback

        traceback.print_exc()
        say(f"\nBENCHMARK FAILED: {type(exc).__name__}: {exc}")
        if run.worker is not None:
            say(f"worker log tail:\n{run.worker.child.tail()}")
    finally:
        stop_everything(run, ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
