"""Benchmark of the worker's memory as suspects grow (not a test): peak RSS at two feed sizes and their ratio.

    python -m tests.bench.bench_memory [--suspects 100000,1000000] [--small] [--partitions 4]
                                       [--events E --population P1,P2] [--restart]

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
With ``--restart``, each replay's worker is stopped and started again on its data, and a
report is published for each ledger partition, about a suspect of the feed: each partition
then rebuilds its books from every suspect it stores. Its peak RSS is read once ``/suspects``
shows every one of those reports.
The ranking is not compared (``bench_scale`` and ``bench_peer`` do that); nothing is asserted.
The worker, the broker and this script share the machine's cores.
"""
from __future__ import annotations

import argparse
import json
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


def start_worker(broker, tmp: Path, partitions: int, log: str):
    """A `harmrank worker` (event clock) on ``tmp``'s data directory, ready; (child, worker, seconds to ready)."""
    from agents.local_broker import free_port

    port = free_port()
    env = bs.clean_env(broker=broker.url, data_dir=tmp / "worker", clock="event", web_port=port,
                       api_token=secrets.token_hex(16), partitions=partitions)
    child = bs.run_cli(["worker"], env, tmp / log)
    worker = bs.HarmrankWorker(child, port, env["HARMRANK_API_TOKEN"])
    t0 = time.monotonic()
    worker.wait_ready(timeout=600)
    return child, worker, time.monotonic() - t0


def measured(child, **figures) -> dict:
    status = bs.group_status(child.pid)
    return {**figures, "processes": len(group_pids(child.pid)),
            **{name: status.get(field, 0.0) for name, field in (("peak", "VmHWM"), ("rss", "VmRSS"), ("cpu", "cpu"))}}


def publish(broker, path: Path, tmp: Path, lines: int) -> float:
    t0 = time.monotonic()
    bs.publish_feed(broker, path, tmp / "publish.log", lines)
    return time.monotonic() - t0


def replay(feed: Path, lines: int, partitions: int, tmp: Path, restart: bool) -> dict:
    """Publish ``feed`` to a fresh broker, replay it through one worker; its memory and times. With
    ``restart``, the figures of a second worker on the same data as well (key "restart")."""
    broker = bs.start_broker()
    child = None
    try:
        published = publish(broker, feed, tmp, lines)
        child, worker, _ = start_worker(broker, tmp, partitions, "worker.log")
        t0 = time.monotonic()
        deadline = t0 + 300 + lines / 100
        while (worker.consumed() or 0) < lines:
            worker.check_alive("the feed")
            if time.monotonic() > deadline:
                raise bs.BenchError(f"only {worker.consumed()}/{lines} consumed")
            time.sleep(0.5)
        result = measured(child, publish_s=published, replay_s=time.monotonic() - t0)
        if restart:
            child.stop(grace=60)
            child = None
            result["restart"] = restarted(broker, feed, partitions, tmp)
        return result
    finally:
        if child is not None:
            child.stop(grace=10)
        broker.stop()


def probes_of(feed: Path, partitions: int) -> list:
    """One new report for each ledger partition, about a suspect of the feed (a copy of his last report)."""
    from streams.partitioning import partition_for

    last: dict = {}
    with open(feed, "rb") as fh:
        for line in fh:
            ev = json.loads(line)
            if ev.get("type") == "report.recorded" and ev.get("suspects"):
                last[partition_for(ev["suspects"][0], partitions)] = ev
    return [{**ev, "event_id": f"restart-probe-{p}", "crime_ref": f"CR-PROBE-{p}", "suspects": ev["suspects"][:1]}
            for p, ev in sorted(last.items())]


def restarted(broker, feed: Path, partitions: int, tmp: Path) -> dict:
    """A worker started again on the replayed data, then one report for each ledger partition, so that
    each rebuilds its books from every stored suspect: its figures once /suspects shows every report."""
    probes = probes_of(feed, partitions)
    child, worker, ready_s = start_worker(broker, tmp, partitions, "worker-restart.log")
    try:
        path = tmp / "probes.jsonl"
        path.write_text("".join(json.dumps(p) + "\n" for p in probes))
        publish(broker, path, tmp, len(probes))
        t0 = time.monotonic()
        pending = {p["suspects"][0]: p["crime_ref"].encode() for p in probes}
        while pending:
            worker.check_alive("the probes")
            if time.monotonic() > t0 + 600:
                raise bs.BenchError(f"the probes about {sorted(pending)} were not applied in 600 s")
            for suspect, ref in list(pending.items()):
                status, body = bs.http_get(f"{worker.base}/suspects/{suspect}", token=worker.token)
                if status == 200 and ref in body:
                    del pending[suspect]
            time.sleep(0.5)
        return measured(child, ready_s=ready_s, applied_s=time.monotonic() - t0)
    finally:
        child.stop(grace=10)


def run(events: int, pool: int, partitions: int, restart: bool = False) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="harmrank-memory-"))
    try:
        t0 = time.monotonic()
        lines, named = feed_of(tmp / "feed.jsonl", events, pool)
        feed_s = time.monotonic() - t0
        return {"lines": lines, "named": named, "feed_s": feed_s,
                **replay(tmp / "feed.jsonl", lines, partitions, tmp, restart)}
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
    p.add_argument("--restart", action="store_true",
                   help="after each replay, start the worker again on its data and have every ledger partition "
                        "rebuild its books; print its figures too")
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
            r = run(events, pool, args.partitions, args.restart)
        except bs.BenchError as exc:
            bs.say(f"{size} suspects: FAILED: {exc}")
            return 1
        results.append(r)
        bs.say(f"{r['named']} suspects in {r['lines']} events: peak RSS {r['peak']:.0f} MiB over {r['processes']} "
               f"processes, RSS at the end "
               f"{r['rss']:.0f} MiB; replay {r['replay_s']:.1f} s, worker CPU {r['cpu']:.1f} s "
               f"(feed {r['feed_s']:.1f} s, publish {r['publish_s']:.1f} s)")
        if "restart" in r:
            x = r["restart"]
            bs.say(f"  restarted on that data: ready in {x['ready_s']:.1f} s; a report to each ledger partition "
                   f"applied {x['applied_s']:.1f} s after it was sent: peak RSS {x['peak']:.0f} MiB, RSS "
                   f"{x['rss']:.0f} MiB, CPU {x['cpu']:.1f} s since the start")
    small, large = results
    bs.say(f"peak RSS at {large['named']} / at {small['named']} suspects: {large['peak'] / small['peak']:.2f} times")
    return 0


if __name__ == "__main__":
    sys.exit(main())
