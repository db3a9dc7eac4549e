"""Benchmark of the pure core (not a test): prints its figures.

    python -m tests.bench.bench_core [--suspects 1000000] [--events 300000]

1. Fills the state with --suspects suspects (each with allegations in the window).
2. Times --events further mixed events (new reports on existing suspects, merges,
   reclassifications, cancellations, links, unlinks) through the same Pipeline
   that `harmrank rank` runs, flushing the ranking after every event.
   Steps 1-2 run with CPython's default garbage collection, then again from
   scratch with the batch's collector policy (streams/gcpolicy.py: what
   `harmrank rank` runs with); --gc picks one of them only.
3. Times one from-scratch recomputation of the ranking over the same state, and
   prints how many times cheaper one incremental update is.
4. Prints peak RSS.

It first prints a yardstick of the machine's speed (a plain Python loop), since the
same code's figures swing with it from one day or machine to the next.
"""
from __future__ import annotations

import argparse
import random
import resource
import time

from schemas.events import US_PER_DAY
from streams.gcpolicy import long_lived_state
from streams.ledger import summarise
from streams.messages import rank_key
from streams.pipeline import Pipeline
from tests.streams.helpers import HARM, T0, cancelled, linked, merged, recorded, reclassified, unlinked

VAWG_CODES = ["105/01", "008/06", "019/08", "008/66"]


def fill(pipe: Pipeline, suspects: int, rng: random.Random, tick) -> int:
    at = T0
    step = (300 * US_PER_DAY) // (suspects * 2)
    for i in range(suspects):
        for j in range(2):
            at += step
            pipe.apply(recorded(f"F{i}-{j}", rng.choice(VAWG_CODES), [f"S{i}"], at,
                                victims=((f"V{i}", "F"),)))
            tick()
        if i % 1000 == 0:
            pipe.flush()
    pipe.flush()
    return at


def mixed(n: int, suspects: int, at: int, rng: random.Random):
    refs = []
    for k in range(n):
        at += 30_000_000  # 30 s of event time per event: the window moves, allegations expire
        r = rng.random()
        s = f"S{int(suspects * rng.random() ** 3)}"  # heavy tail: low ids are prolific
        if r < 0.80 or len(refs) < 10:
            ref = f"M{k}"
            refs.append(ref)
            yield recorded(ref, rng.choice(VAWG_CODES), [s], at, victims=((f"W{k % 5000}", "F"),))
        elif r < 0.85:
            yield reclassified(rng.choice(refs), rng.choice(VAWG_CODES), at)
        elif r < 0.88:
            ref = refs.pop(rng.randrange(len(refs)))
            yield cancelled(ref, at)
        elif r < 0.93:
            yield linked(rng.choice(refs), s, at)
        elif r < 0.98:
            yield unlinked(rng.choice(refs), s, at)
        else:
            yield merged(s, f"S{rng.randrange(suspects)}", at)


def recompute(pipe: Pipeline, top_n: int) -> list:
    """The batch way: every suspect's score summed afresh, then sorted."""
    keys = []
    for key, rec in pipe.ledger.store.scan("p:"):
        summary = summarise(rec)
        if summary.allegations >= 2:
            keys.append(rank_key(key[2:], summary))
    keys.sort()
    return keys[:top_n]


def yardstick() -> float:
    """ns per iteration of the plainest Python loop (`x += i`): this machine's speed today, to compare runs by."""
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        x = 0
        for i in range(2_000_000):
            x += i
        best = min(best, (time.perf_counter() - t) / 2_000_000 * 1e9)
    return best


class _default_gc:
    """CPython's collector as it comes: nothing to do per event."""

    def __enter__(self):
        return lambda: None

    def __exit__(self, *exc):
        return False


def run(args, policy: str, tick) -> None:
    rng = random.Random(7)
    pipe = Pipeline(HARM, top_n=args.top)
    print(f"-- {policy} --")

    t, c = time.perf_counter(), time.process_time()
    at = fill(pipe, args.suspects, rng, tick)
    fill_s, fill_cpu = time.perf_counter() - t, time.process_time() - c
    print(f"fill: {args.suspects:,} suspects ({2 * args.suspects:,} reports) in {fill_s:.1f} s "
          f"({2 * args.suspects / fill_s:,.0f} events/s; CPU {fill_cpu:.1f} s)")

    events = list(mixed(args.events, args.suspects, at, rng))
    t, c = time.perf_counter(), time.process_time()
    emitted = 0
    for ev in events:
        pipe.apply(ev)
        tick()
        emitted += len(pipe.flush())
    run_s, run_cpu = time.perf_counter() - t, time.process_time() - c
    rate = len(events) / run_s
    print(f"core: {len(events):,} mixed events on {args.suspects:,} suspects in {run_s:.2f} s = {rate:,.0f} events/s "
          f"(CPU {len(events) / run_cpu:,.0f} events/s; flush after every event; {emitted:,} ranking events emitted)")

    t = time.perf_counter()
    top = recompute(pipe, args.top)
    recompute_s = time.perf_counter() - t
    assert [k[-1] for k in top] == [s for _, s, _ in pipe.ranking()], "incremental top N differs from recomputation"
    per_event_s = run_s / len(events)
    print(f"recompute from scratch: {recompute_s:.3f} s; one incremental update: {per_event_s * 1e6:.1f} us "
          f"=> {recompute_s / per_event_s:,.0f} times cheaper (top N identical)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suspects", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--top", type=int, default=100)
    ap.add_argument("--gc", choices=["both", "default", "batch"], default="both",
                    help="CPython's default garbage collection, the batch's policy, or both in turn (the default)")
    args = ap.parse_args(argv)
    print(f"this machine now: {yardstick():.0f} ns an iteration of a plain Python loop (x += i); "
          "the figures below scale with it")
    for policy in (["default", "batch"] if args.gc == "both" else [args.gc]):
        with long_lived_state() if policy == "batch" else _default_gc() as tick:
            run(args, f"{policy} GC" if policy == "default" else "batch GC policy (streams/gcpolicy.py)", tick)
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
