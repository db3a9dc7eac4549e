"""Benchmark of the worker's memory as suspects grow (not a test): peak RSS at two feed sizes and their ratio.

    python -m tests.bench.bench_memory [--suspects 100000,1000000] [--small] [--partitions 4]
                                       [--events E --population P1,P2]

For each target of distinct suspects N: the feed is ``harmrank simulate --seed 1
--events 2N --suspects 4N --invalid-rate 0`` (a heavy-tailed population of 4N names
about N distinct suspects in 2N events; the count is printed). With ``--events E``,
both feeds have E events, drawn from populations P1 and P2: the suspects change and
the events do not (``--events 2000000 --population 107500,4000000`` names about
100,000 and 984,534). Each feed is published whole to a
fresh local tansu broker, then one ``harmrank worker`` (``HARMRANK_CLOCK=event``)
replays it. Peak RSS is the worker's VmHWM once its ``harmrank_events_consumed_total``
reaches the feed, summed over the worker's processes (the supervisor and each worker process under
HARMRANK_PROCESSES, one per core by default); RSS is the sum of VmRSS then. ``--small`` runs 10,000 and 100,000 for a quick try.
The ranking is not compared (``bench_scale`` and ``bench_peer`` do that); nothing is asserted.
The worker, the broker and this script share the machine's cores.
"""
from __future__ import annotations

import argparse
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.bench import bench_stream as bs
from tests.bench.bench_stream import group_pids


def feed_of(path: Path, events: int, pool: int) -> tuple[int, int]:
    """Write the feed of ``events`` events drawn from a population of ``pool``; (lines, distinct suspects named)."""
    from streams.simulate import generate

    named: set = set()

    def naming(feed):
        for ev in feed:
            named.update(ev.get("suspects") or ())
            yield ev

    lines, _, _ = bs.write_feed(path, naming(generate(seed=1, events=events, suspects=pool,
                                                      invalid_rate=0)))
    return lines, len(named)


def replay(feed: Path, lines: int, partitions: int, tmp: Path) -> dict:
    """Publish ``feed`` to a fresh broker, replay it through one worker; its memory and times."""
    from agents.local_broker import free_port

    broker = bs.start_broker()
    children: list = []
    try:
        t0 = time.monotonic()
        pub = bs.run_cli(["publish", str(feed)], bs.clean_env(broker=broker.url), tmp / "publish.log")
        children.append(pub)
        if pub.proc.wait(timeout=max(600, lines / 50)) != 0:
            raise bs.BenchError(f"harmrank publish exited {pub.proc.returncode}:\n{pub.tail()}")
        published = time.monotonic() - t0
        port = free_port()
        env = bs.clean_env(broker=broker.url, data_dir=tmp / "worker", clock="event", web_port=port,
                           api_token=secrets.token_hex(16), partitions=partitions)
        child = bs.run_cli(["worker"], env, tmp / "worker.log")
        children.append(child)
        worker = bs.HarmrankWorker(child, port, env["HARMRANK_API_TOKEN"])
        t_ready = worker.wait_ready(timeout=240)
        deadline = time.monotonic() + 300 + lines / 100
        while (worker.consumed() or 0) < lines:
            worker.check_alive("the feed")
            if time.monotonic() > deadline:
                raise bs.BenchError(f"only {worker.consumed()}/{lines} consumed")
            time.sleep(0.5)
        status = bs.group_status(child.pid)
        return {"publish_s": published, "replay_s": time.time() - t_ready, "processes": len(group_pids(child.pid)),
                **{name: status.get(field, 0.0)
                   for name, field in (("peak", "VmHWM"), ("rss", "VmRSS"), ("cpu", "cpu"))}}
    finally:
        for c in reversed(children):
            c.stop(grace=10)
        broker.stop()


def run(events: int, pool: int, partitions: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="harmrank-memory-"))
    try:
        t0 = time.monotonic()
        lines, named = feed_of(tmp / "feed.jsonl", events, pool)
        feed_s = time.monotonic() - t0
        return {"lines": lines, "named": named, "feed_s": feed_s, **replay(tmp / "feed.jsonl", lines, partitions, tmp)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.bench_memory", description=__doc__.split("\n\n")[0])
    p.add_argument("--suspects", default="100000,1000000", help="two targets of distinct suspects, comma-separated")
    p.add_argument("--small", action="store_true", help="10,000 and 100,000 instead")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--events", type=int, default=0,
                   help="events in each feed (default: twice its target, drawn from four times as many names); "
                        "with it, each target's population is --population's")
    p.add_argument("--population", default="", help="with --events: the two populations, comma-separated")
    args = p.parse_args(argv)
    sizes = [10_000, 100_000] if args.small else [int(x) for x in args.suspects.split(",") if x.strip()]
    if len(sizes) != 2 or min(sizes) < 1 or args.partitions < 1:
        p.error("--suspects must name two positive targets and --partitions must be positive")
    feeds = [(2 * n, 4 * n) for n in sizes]
    if args.events:
        pools = [int(x) for x in args.population.split(",") if x.strip()]
        if args.events < 1 or len(pools) != 2 or min(pools) < 1:
            p.error("--events must be positive, with --population naming two positive populations")
        feeds = [(args.events, pool) for pool in pools]
    results = []
    for size, (events, pool) in zip(sizes, feeds):
        try:
            r = run(events, pool, args.partitions)
        except bs.BenchError as exc:
            bs.say(f"{size} suspects: FAILED: {exc}")
            return 1
        results.append(r)
        bs.say(f"{r['named']} suspects in {r['lines']} events: peak RSS {r['peak']:.0f} MiB over {r['processes']} "
               f"processes, RSS at the end "
               f"{r['rss']:.0f} MiB; replay {r['replay_s']:.1f} s, worker CPU {r['cpu']:.1f} s "
               f"(feed {r['feed_s']:.1f} s, publish {r['publish_s']:.1f} s)")
    small, large = results
    bs.say(f"peak RSS at {large['named']} / at {small['named']} suspects: {large['peak'] / small['peak']:.2f} times")
    return 0


if __name__ == "__main__":
    sys.exit(main())
