"""`harmrank demo`: the whole system on one machine, watched live in the terminal.

It starts the local broker and a worker (wall clock), publishes a year of
synthetic history so the top N is realistic from the first minute, then keeps
a live synthetic feed going at a visible pace, and shows the top N, the
entries and exits as they happen, and the figures ops would watch. Ctrl-C (or
--duration) stops everything it started.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import deque
from itertools import islice
from pathlib import Path
from typing import Optional

import schemas
from schemas.events import US_PER_DAY, us_to_iso
from streams import simulate

from ..local_broker import BrokerError, LocalBroker, free_port
from ..settings import Settings
from . import EXIT_FAILED, Fail, command
from .follow import FirstSeen, event_of

#: The topics and web port the demo's worker uses: the settings' defaults.
DEFAULTS = Settings()


def _get(url: str, token: Optional[str] = None, timeout: float = 2.0):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.read()


def _metrics(text: str) -> dict:
    """Sum each harmrank_ family over its labels (enough for the demo's panel)."""
    out: dict = {}
    for line in text.splitlines():
        if line.startswith("harmrank_"):
            name_labels, _, value = line.rpartition(" ")
            name = name_labels.split("{")[0]
            try:
                out[name] = out.get(name, 0.0) + float(value)
            except ValueError:
                pass
            if "{" in name_labels:
                out[name_labels] = float(value)
    return out


class Feed(threading.Thread):
    """Publishes the backfill, then the live events, to crime-reports."""

    def __init__(self, bootstrap: list[str], backfill: int, rate: float, seed: int):
        super().__init__(daemon=True)
        self.bootstrap, self.backfill, self.rate, self.seed = bootstrap, backfill, rate, seed
        self.sent = 0
        self.stop = threading.Event()
        self.error: Optional[str] = None

    def run(self) -> None:
        from kafka import KafkaProducer

        from .publish import event_key

        try:
            producer = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=20, acks=1)
            now = time.time()
            live = 10_000_000
            start = us_to_iso(int(now * 1e6) - 365 * US_PER_DAY)
            span_days = 365.0 * (self.backfill + live) / max(self.backfill, 1)
            events = simulate.generate(seed=self.seed, events=self.backfill + live, start=start, days=span_days)
            for ev in islice(events, self.backfill):
                line = json.dumps(ev).encode()
                producer.send(DEFAULTS.input_topic, key=event_key(line)[0], value=line)
                self.sent += 1
                if self.stop.is_set():
                    return
            producer.flush()
            for ev in simulate._live(events, self.rate):
                if self.stop.is_set():
                    break
                line = json.dumps(ev).encode()
                producer.send(DEFAULTS.input_topic, key=event_key(line)[0], value=line)
                self.sent += 1
            producer.flush(timeout=5)
            producer.close(timeout=5)
        except Exception as exc:  # shown on screen, never a traceback
            self.error = f"feed stopped: {exc}"


class Follower(threading.Thread):
    """Collects the ranking events as they arrive."""

    def __init__(self, bootstrap: list[str], topic: str = DEFAULTS.output_topic):
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.topic = topic
        self.recent: deque = deque(maxlen=12)
        self.counts: dict = {}  # list name -> [entered, exited], in the order first seen
        self.stop = threading.Event()

    def run(self) -> None:
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(self.topic, bootstrap_servers=self.bootstrap, group_id=None,
                                 auto_offset_reset="earliest", consumer_timeout_ms=500)
        first_seen = FirstSeen()  # a re-send after a rebalance or restart is counted once
        while not self.stop.is_set():
            for record in consumer:
                ev = event_of(record.value)
                if ev is None or not first_seen(ev):
                    continue
                tally = self.counts.setdefault(ev.get("list", "-"), [0, 0])
                if ev.get("type") == "ranking.entered":
                    tally[0] += 1
                elif ev.get("type") == "ranking.exited":
                    tally[1] += 1
                self.recent.appendleft(ev)
                if self.stop.is_set():
                    break
        consumer.close()


def _render(ranking: dict, follower: Follower, metrics: dict, feed: Feed, info: dict, top: int):
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table

    table = Table(title=f"list {ranking.get('list', '-')}: top {top} as of {ranking.get('as_of') or '-'}",
                  expand=True)
    for col, justify in (("rank", "right"), ("suspect", "left"), ("score (days)", "right"),
                         ("allegations", "right"), ("victims", "right")):
        table.add_column(col, justify=justify)
    for e in ranking.get("entries", [])[:top]:
        table.add_row(str(e["rank"]), e["suspect_id"], f"{e['score']:.2f}", str(e["allegations"]), str(e["victims"]))
    events = Table(title="ranking events of every list (newest first)", expand=True)
    for col in ("list", "type", "suspect", "detail", "cause"):
        events.add_column(col)
    for ev in list(follower.recent):
        name = ev.get("list", "-")
        if ev.get("type") == "ranking.entered":
            events.add_row(name, "[green]ENTER[/]", ev["suspect_id"], f"#{ev['rank']} score {ev['score']}",
                           ev["cause"][:28])
        elif ev.get("type") == "ranking.updated":
            events.add_row(name, "[yellow]UPDATE[/]", ev["suspect_id"], f"#{ev['rank']} score {ev['score']}",
                           ev["cause"][:28])
        else:
            events.add_row(name, "[red]EXIT[/]", ev["suspect_id"], f"{ev['reason']} score {ev['score']}",
                           ev["cause"][:28])
    consumed = metrics.get("harmrank_events_consumed_total", 0)
    stats = (f"published {feed.sent:,}   consumed {consumed:,.0f}   dead letters "
             f"{metrics.get('harmrank_dead_letters_total', 0):,.0f}   threshold "
             f"{metrics.get('harmrank_threshold_score_days', 0):,.2f} days   suspects tracked "
             f"{metrics.get('harmrank_suspects_tracked', 0):,.0f}\n"
             + "   ".join(f"{name}: {n_in} in, {n_out} out" for name, (n_in, n_out) in follower.counts.items()))
    header = (f"harmrank demo   broker {info['broker']}   API {info['api']}   token {info['token']}\n"
              f"try: curl -H 'Authorization: Bearer {info['token']}' {info['api']}/ranking     Ctrl-C stops everything")
    parts = [Panel(header), Panel(stats + (f"\n[red]{feed.error}[/]" if feed.error else "")), table, events]
    return Group(*parts)


#: The demo's three lists (VAWG, a VAWG escalation watch, drugs supply), unless HARMRANK_LISTS names others.
DEMO_LISTS = str(Path(schemas.__file__).parent / "data" / "demo-lists.toml")


@command("harmrank demo")
def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="harmrank demo", description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=None, help="broker port (default: a free one)")
    ap.add_argument("--web-port", type=int, default=None,
                    help=f"worker API port (default {DEFAULTS.web_port} if free)")
    ap.add_argument("--backfill", type=int, default=20_000, help="events of history published first")
    ap.add_argument("--rate", type=float, default=40.0, help="live events per second")
    ap.add_argument("--top", type=int, default=20, help="rows of the ranking to show")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    ap.add_argument("--plain", action="store_true", help="print a summary line each second instead of the live view")
    args = ap.parse_args(argv)

    token = secrets.token_urlsafe(16)
    web_port = args.web_port or (DEFAULTS.web_port if _free(DEFAULTS.web_port) else free_port())
    data_dir = tempfile.mkdtemp(prefix="harmrank-demo-")
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    broker = LocalBroker(port=args.port or free_port())
    worker = None
    feed = follower = None
    try:
        try:
            broker.start()
        except BrokerError as exc:
            raise Fail(str(exc), EXIT_FAILED) from None
        # The demo's own broker speaks plaintext: no HARMRANK_KAFKA_* setting of the caller applies to it.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("HARMRANK_KAFKA_")}
        env = dict(inherited, HARMRANK_BROKER=broker.url, HARMRANK_DATA_DIR=data_dir, HARMRANK_CLOCK="wall",
                   HARMRANK_API_TOKEN=token, HARMRANK_WEB_PORT=str(web_port), HARMRANK_TICK_SECONDS="5",
                   HARMRANK_LISTS=os.environ.get("HARMRANK_LISTS", DEMO_LISTS),
                   # Fewer, larger batches: the local broker slows with every record batch it holds
                   # (README), and a quarter of a second a hop does not show on a screen.
                   HARMRANK_BATCH_WINDOW_MS=os.environ.get("HARMRANK_BATCH_WINDOW_MS", "250"))
        log = open(os.path.join(data_dir, "worker.log"), "wb")
        worker = subprocess.Popen([sys.executable, "-m", "agents.cli", "worker"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        api = f"http://127.0.0.1:{web_port}"
        print(f"starting: broker {broker.url}, worker API {api} (log {log.name}) ...", flush=True)
        if not _wait_ready(api, worker, stopping, timeout=90):
            raise Fail(f"the worker did not become ready; see {log.name}", EXIT_FAILED)
        bootstrap = [broker.bootstrap] if isinstance(broker.bootstrap, str) else list(broker.bootstrap)
        feed = Feed(bootstrap, args.backfill, args.rate, args.seed)
        follower = Follower(bootstrap)
        feed.start()
        follower.start()
        info = {"broker": broker.url, "api": api, "token": token}
        deadline = None if args.duration is None else time.monotonic() + args.duration
        return _watch(api, token, follower, feed, info, args, stopping, deadline, worker)
    except KeyboardInterrupt:
        return 0
    finally:
        for part in (feed, follower):
            if part is not None:
                part.stop.set()
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        broker.stop()
        print("demo stopped: worker and broker are down", flush=True)


def _watch(api, token, follower, feed, info, args, stopping, deadline, worker) -> int:
    def snapshot():
        try:
            ranking = json.loads(_get(api + "/ranking", token))
            metrics = _metrics(_get(api + "/metrics").decode())
        except Exception:
            ranking, metrics = {"entries": []}, {}
        return ranking, metrics

    def running() -> bool:
        return not stopping.is_set() and worker.poll() is None and (deadline is None or time.monotonic() < deadline)

    if args.plain:
        while running():
            ranking, metrics = snapshot()
            default = ranking.get("list", "-")
            n_in, n_out = follower.counts.get(default, [0, 0])
            others = "".join(f" | {name}: {a} in, {b} out" for name, (a, b) in follower.counts.items()
                             if name != default)
            print(f"published {feed.sent} consumed {metrics.get('harmrank_events_consumed_total', 0):.0f} "
                  f"list {default} members {len(ranking.get('entries', []))} entries {n_in} exits {n_out}{others}",
                  flush=True)
            time.sleep(1)
    else:
        from rich.live import Live

        with Live(refresh_per_second=2, screen=False) as live:
            while running():
                ranking, metrics = snapshot()
                live.update(_render(ranking, follower, metrics, feed, info, args.top))
                time.sleep(1)
    if worker.poll() is not None:
        print(f"harmrank demo: the worker exited (code {worker.returncode})", file=sys.stderr)
        return 1
    return 0


def _wait_ready(api: str, worker, stopping, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stopping.is_set():
        if worker.poll() is not None:
            return False
        try:
            _get(api + "/readyz", timeout=1)
            return True
        except Exception:
            time.sleep(0.5)
    return False


def _free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
