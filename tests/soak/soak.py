"""The soak: a long replay on two workers in one group, killed with kill -9 at random points and restarted.

    python -m tests.soak.soak [--events 100000] [--kills 20] [--seed 1] [--rate 400] [--keep DIR]

`harmrank simulate` writes the feed and `harmrank publish --rate` sends it while a
worker of the two (one consumer group, clock=event) is killed and restarted
`kills` times at random points. Then it checks that /ranking equals `harmrank rank`
of the file, that the output topic, deduplicated by event_id, never enters a
suspect twice without an exit between and ends on the top N, and compares every
suspect's ledger record with the batch reference's. It prints the figures; a run
passes when lost and twice are 0. tests/e2e/test_soak.py runs a short one in CI.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from schemas.events import us_to_iso
from schemas.harm_table import load_harm_table
from streams.batch import rank_lines

from tests.e2e.conftest import (OUTPUT_TOPIC, REPO, Worker, clean_env, ranking_diff, read_topic,
                                replay_membership, run_cli)

from .diagnose import REGISTER_CHANGELOG, REGISTER_TOPIC, describe, never_applied
from .ledger_check import changelog_records, compare, reference_records

LEDGER_CHANGELOG = "harmrank-ledger-changelog"
TOP_N = 100


@dataclass
class Figures:
    events: int
    kills: int = 0
    lost: int = 0
    twice: int = 0
    wall_s: float = 0.0
    ranking_equal: bool = False
    membership_ok: bool = False
    output_events: int = 0
    resent: int = 0  # output events whose event_id came before (a consumer drops them)
    kill_log: list = field(default_factory=list)  # "HH:MM:SS.mmm <worker>", UTC
    problems: list = field(default_factory=list)

    def passed(self) -> bool:
        return self.ranking_equal and self.membership_ok and self.lost == 0 and self.twice == 0

    def report(self) -> str:
        return (f"events {self.events}, kills survived {self.kills}, events lost {self.lost}, "
                f"events counted twice {self.twice}, ranking equals `harmrank rank`: {self.ranking_equal}, "
                f"output membership sound and equal to the top {TOP_N}: {self.membership_ok}, "
                f"output events {self.output_events} ({self.resent} re-sent), wall time {self.wall_s:.0f} s")


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def simulate(path: Path, events: int, seed: int) -> Path:
    proc = run_cli(["simulate", "--seed", seed, "--events", events, "--out", path], clean_env(), timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"harmrank simulate failed: {proc.stderr.decode(errors='replace')[-2000:]}")
    return path


def start_publishing(broker, feed: Path, rate: int) -> subprocess.Popen:
    """`harmrank publish FILE --rate R` in the background."""
    return subprocess.Popen([sys.executable, "-m", "agents.cli", "publish", str(feed), "--rate", str(rate)],
                            env=clean_env(broker=broker.url), cwd=str(REPO), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def kill_and_restart(workers: list, kills: int, rng: random.Random, say: Callable, max_pause: float,
                     kill_log: list) -> int:
    """Kill a worker chosen at random after a random pause, restart it at once, wait until it is ready."""
    done = 0
    for k in range(kills):
        time.sleep(rng.uniform(0.2, max_pause))  # the random point: where the workers are now
        victim = rng.choice(workers)
        victim.kill9()
        kill_log.append(f"{utc_now()} {victim.name}")
        say(f"kill {k + 1}/{kills}: {victim.name}")
        victim.start()
        victim.wait_ready(timeout=180)
        done += 1
    return done


def wait_ranking(workers: list, expected: list, as_of: str, timeout: float, settle: float = 30.0) -> tuple[bool, dict]:
    """Poll /ranking until it answers `expected` at `as_of`, or has stood still at `as_of` for `settle` s
    (caught up, and different), or `timeout`; returns (equal, last answer)."""
    deadline = time.monotonic() + timeout
    last: dict = {}
    since = time.monotonic()
    while time.monotonic() < deadline:
        for w in workers:
            status, body = w.get("/ranking", token=w.token)
            if status != 200:
                continue
            answer = json.loads(body)
            if answer.get("entries") == expected and answer.get("as_of") == as_of:
                return True, answer
            if answer != last:
                last, since = answer, time.monotonic()
            elif answer.get("as_of") == as_of and time.monotonic() - since >= settle:
                return False, last
        time.sleep(1.0)
    return False, last


def check_ledger(broker, result, figures: Figures, timeout: float) -> None:
    """Compare the ledger changelog with the reference until they agree or `timeout` (last batches in flight)."""
    expected = reference_records(result)
    deadline = time.monotonic() + timeout
    while True:
        got = changelog_records(read_topic(broker, LEDGER_CHANGELOG, quiet=3.0, timeout=600))
        diff = compare(expected, got)
        if (diff.lost == 0 and diff.twice == 0) or time.monotonic() > deadline:
            break
        time.sleep(2.0)
    figures.lost += diff.lost
    figures.twice += diff.twice
    for suspect, e, g in diff.examples:
        figures.problems.append(f"suspect {suspect}: reference {e}\n  worker {g}")


def check_output(broker, expected_top: set, figures: Figures, keep: Path) -> None:
    """Replay the output topic (kept in `keep` as JSON lines) deduplicated by event_id: SPEC §3's invariants."""
    events = [json.loads(r.value) for r in read_topic(broker, OUTPUT_TOPIC, quiet=3.0, timeout=300)]
    with open(keep, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(e) + "\n" for e in events)
    figures.output_events = len(events)
    figures.resent = len(events) - len({e["event_id"] for e in events})
    try:
        members = replay_membership(events, TOP_N, dedup=True)
    except AssertionError as exc:
        figures.problems.append(f"output topic: {exc}")
        return
    figures.membership_ok = members == expected_top
    if not figures.membership_ok:
        figures.problems.append(f"output topic ends with {len(members)} members: missing "
                                f"{sorted(expected_top - members)[:10]}, stale {sorted(members - expected_top)[:10]}")


def soak(workdir: Path, events: int, kills: int, seed: int, rate: int, max_pause: float = 8.0,
         say: Callable = print) -> Figures:
    from tests.conftest import start_local_broker

    figures = Figures(events)
    feed = simulate(workdir / "feed.jsonl", events, seed)
    result = rank_lines(feed.read_bytes().splitlines(), load_harm_table())
    proc = run_cli(["rank", feed, "--json"], clean_env(), timeout=600)
    expected = json.loads(proc.stdout)
    say(f"feed: {events} events, {result.accepted} accepted, {result.rejected} dead-lettered; top {len(expected)}")
    t0 = time.monotonic()
    broker = start_local_broker()
    pair = [Worker(broker, workdir / f"{name}-data", workdir, name=name, partitions=4) for name in ("a", "b")]
    publisher: Optional[subprocess.Popen] = None
    try:
        for w in pair:
            w.start()
        for w in pair:
            w.wait_ready(timeout=180)
        publisher = start_publishing(broker, feed, rate)
        figures.kills = kill_and_restart(pair, kills, random.Random(seed), say, max_pause, figures.kill_log)
        if publisher.wait(timeout=3600) != 0:
            raise RuntimeError(f"harmrank publish failed: {publisher.stderr.read().decode(errors='replace')[-2000:]}")
        figures.ranking_equal, last = wait_ranking(pair, expected, us_to_iso(result.as_of), timeout=600)
        if not figures.ranking_equal:
            figures.problems.append(f"/ranking at as_of {last.get('as_of')} is not `harmrank rank`'s:\n"
                                    + ranking_diff(expected, last.get("entries") or []))
        figures.wall_s = time.monotonic() - t0
        check_output(broker, {r["suspect_id"] for r in expected}, figures, workdir / "harm-ranking.jsonl")
        check_ledger(broker, result, figures, timeout=60)
        if figures.lost:
            figures.problems.extend(describe(never_applied(read_topic(broker, REGISTER_TOPIC, timeout=300),
                                                           read_topic(broker, REGISTER_CHANGELOG, timeout=300))))
            figures.problems.append("kills (UTC): " + ", ".join(figures.kill_log))
    finally:
        if publisher is not None and publisher.poll() is None:
            publisher.kill()
        for w in pair:
            w.kill9()
        broker.stop()
    return figures


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=int, default=400, help="events per second published (default 400)")
    parser.add_argument("--keep", type=Path, help="work here and keep the feed, data and worker logs")
    args = parser.parse_args(argv)

    def say(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    with tempfile.TemporaryDirectory(prefix="harmrank-soak-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        figures = soak(workdir, args.events, args.kills, args.seed, args.rate, say=say)
    for problem in figures.problems:
        print(problem)
    print(figures.report())
    return 0 if figures.passed() else 1


if __name__ == "__main__":
    sys.exit(main())
