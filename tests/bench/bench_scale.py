"""Benchmark of scale-out (not a test): the same replay through one worker, then through several.

    python -m tests.bench.bench_scale [--events 200000] [--workers 1,2]

For each worker count, on a fresh tansu broker of its own: the feed
(``streams.simulate.generate(seed=1)``) is published whole, then that many
``harmrank worker`` processes start in one consumer group (``HARMRANK_CLOCK=event``,
4 partitions, a data directory and web port each). events/s = lines / time from
the moment all are ready until their ``harmrank_events_consumed_total`` add up to the
feed; then the first worker's ``/ranking`` (which asks the ranker's owner) must equal
``harmrank rank`` on the same feed. It prints the figures; nothing is asserted.
The workers, the broker and this script share the machine's cores.
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


def run(workers: int, events: int, partitions: int) -> dict:
    from agents.local_broker import free_port
    from streams.simulate import generate

    tmp = Path(tempfile.mkdtemp(prefix="harmrank-scale-"))
    broker = bs.start_broker()
    children: list = []
    try:
        feed = tmp / "feed.jsonl"
        span = bs.first_feed_span(argparse.Namespace(latency_span="realtime", events=events))
        lines, _, _ = bs.write_feed(feed, generate(seed=1, events=events, **span))
        rank = bs.run_cli(["rank", str(feed), "--json"], bs.clean_env(), tmp / "rank.out")
        children.append(rank)
        bs.publish_feed(broker, feed, tmp / "publish.log", lines)
        if rank.proc.wait(timeout=max(600, lines / 20)) != 0:
            raise bs.BenchError(f"harmrank rank exited {rank.proc.returncode}:\n{rank.tail()}")
        expected = bs.ranking_json(tmp / "rank.out")
        if expected is None:
            raise bs.BenchError(f"no JSON from harmrank rank:\n{rank.tail()}")
        token = secrets.token_hex(16)
        ws = []
        for i in range(workers):
            port = free_port()
            env = bs.clean_env(broker=broker.url, data_dir=tmp / f"worker-{i}", clock="event", web_port=port,
                               api_token=token, partitions=partitions)
            child = bs.run_cli(["worker"], env, tmp / f"worker-{i}.log")
            children.append(child)
            ws.append(bs.HarmrankWorker(child, port, token))
        t_ready = max(w.wait_ready(timeout=240) for w in ws)
        cpu0 = sum(bs.group_status(w.child.pid).get("cpu", 0.0) for w in ws)
        deadline = time.monotonic() + 300 + lines / 100
        while True:
            for w in ws:
                w.check_alive("the feed")
            n = sum(w.consumed() or 0 for w in ws)
            if n >= lines:
                break
            if time.monotonic() > deadline:
                raise bs.BenchError(f"only {n}/{lines} consumed by {workers} workers")
            time.sleep(0.25)
        t_done = time.time()
        cpu = sum(bs.group_status(w.child.pid).get("cpu", 0.0) for w in ws) - cpu0
        rss = [bs.group_status(w.child.pid).get("VmHWM", float("nan")) for w in ws]
        t_equal, _ = ws[0].wait_ranking(expected, timeout=300 + lines / 500)
        return {"workers": workers, "lines": lines, "seconds": t_done - t_ready, "rate": lines / (t_done - t_ready),
                "cpu": cpu, "rss": rss, "equal": t_equal is not None}
    finally:
        for c in reversed(children):
            c.stop(grace=10)
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.bench_scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--workers", default="1,2", help="worker counts to run, comma-separated (default 1,2)")
    p.add_argument("--partitions", type=int, default=4)
    args = p.parse_args(argv)
    counts = [int(x) for x in args.workers.split(",") if x.strip()]
    if not counts or min(counts) < 1 or args.events < 1:
        p.error("--workers must list positive counts and --events must be positive")
    results = []
    for count in counts:
        try:
            r = run(count, args.events, args.partitions)
        except bs.BenchError as exc:
            bs.say(f"{count} worker(s): FAILED: {exc}")
            return 1
        results.append(r)
        bs.say(f"{count} worker(s): {r['lines']} events consumed {r['seconds']:.1f} s after all were ready = "
               f"{r['rate']:.0f} events/s; worker CPU {r['cpu']:.1f} s; peak RSS "
               + ", ".join(f"{x:.0f}" for x in r["rss"]) + " MiB; ranking equals batch: "
               + ("yes" if r["equal"] else "NO"))
    base = results[0]["rate"]
    for r in results[1:]:
        bs.say(f"{r['workers']} workers / {results[0]['workers']}: {r['rate'] / base:.2f} times")
    return 0


if __name__ == "__main__":
    sys.exit(main())
