"""Benchmark of harmrank side by side with its Quix Streams peer (not a test): prints one table.

    python -m tests.bench.bench_peer [--events 200000] [--suspects 48000] [--partitions 4]
                                     [--feed FILE] [--systems harmrank,peer] [--rounds 1] [--keep]
                                     [--processes 1,2]

The feed: ``streams.simulate.generate(seed=1, suspects=--suspects, invalid_rate=0)``
spread over 300 days that end a day before now, of which only the first ``--events``
``report.recorded`` events with a new crime_ref are kept (no corrections, no re-sent
duplicates, nothing invalid), so the peer, which knows only new reports, has the same
input as harmrank. A population of 48,000 names about 35,000 distinct heavy-tailed
suspects in 200,000 reports (the count is printed). Every report lies within 365 days of
both the newest report and the wall clock, so no allegation leaves the window: the peer's
simpler window (each suspect's own newest report, no global clock) and harmrank's (the
newest event, moved on by the wall clock) count the same allegations, and both final
rankings must equal ``harmrank rank FILE --json``. ``--feed`` takes such a file instead.

Each system runs on a FRESH local tansu broker (``agents.local_broker.LocalBroker``) whose
``crime-reports`` (``--partitions``, keyed by crime_ref) has been filled whole by
``harmrank publish`` before the system is launched:

* harmrank: one ``harmrank worker`` with the README's settings (wall clock) plus a data
  directory, web port and token; final when ``GET /ranking`` equals the batch ranking.
  ``--processes 1,2`` runs it once per HARMRANK_PROCESSES value given (``harmrank p1``,
  ``harmrank p2``), side by side on the same feed; without it, the command's default.
* peer: ``tests/bench/peer_quix.py``, its ``suspects`` and ``top`` processes launched
  together; final when ``GET /top`` equals the batch ranking.

events/s = reports / seconds from launch to final ranking (start-up included, for both).
Peak RSS is the sum of VmHWM over every process of the system, CPU s the sum of their
user and system seconds (the machine is shared: CPU s does not depend on the others' load
as much as the rate does). ``--rounds`` repeats the
pair, the order reversed each round, since the machine's load drifts. Nothing is asserted;
the exit code is 1 when a ranking never became final or a run failed.
"""
from __future__ import annotations

import argparse
import functools
import json
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from tests.bench import bench_stream as bs

FEED_DAYS = 300.0
POLL_SECONDS = 0.2


def reports_only(events: int, suspects: int, start: str, days: float = FEED_DAYS):
    """The simulator's first ``events`` report.recorded events with a new crime_ref."""
    from streams.simulate import generate

    refs: set = set()
    for ev in generate(seed=1, events=events * 5 // 4 + 1000, start=start, days=days, suspects=suspects,
                       invalid_rate=0):
        if ev["type"] == "report.recorded" and ev["crime_ref"] not in refs:
            refs.add(ev["crime_ref"])
            yield ev
            if len(refs) >= events:
                return


def make_feed(path: Path, events: int, suspects: int) -> tuple[int, int]:
    """Write the reports-only feed, ending a day before now; (reports written, distinct suspects named)."""
    from schemas.events import US_PER_DAY, us_to_iso

    start = us_to_iso(time.time_ns() // 1000 - int((FEED_DAYS + 1) * US_PER_DAY))
    named: set = set()

    def naming(feed):
        for ev in feed:
            named.update(ev["suspects"])
            yield ev

    lines, _, _ = bs.write_feed(path, naming(reports_only(events, suspects, start)))
    return lines, len(named)


def suspects_in(path: Path) -> int:
    named: set = set()
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                named.update(json.loads(line).get("suspects") or [])
    return len(named)


def peak_rss(children: list) -> float:
    """Sum of VmHWM (MiB) over the live processes of the children's process groups."""
    return sum(bs.group_status(c.pid).get("VmHWM", 0.0) for c in children)


def cpu_seconds(children: list) -> float:
    return sum(bs.group_status(c.pid).get("cpu", 0.0) for c in children)


def fresh_broker(feed: Path, partitions: int, tmp: Path):
    """A new tansu broker whose crime-reports holds the whole feed."""
    from agents.kafka_admin import ensure_topics

    broker = bs.start_broker()
    try:
        ensure_topics(broker.bootstrap, {bs.INPUT_TOPIC: partitions})
        with feed.open("rb") as lines:
            bs.publish_feed(broker, feed, tmp / "publish.log", sum(1 for _ in lines))
    except BaseException:
        broker.stop()
        raise
    return broker


def wait_final(entries: Callable[[], Optional[list]], expected: list, children: list,
               timeout: float) -> tuple[Optional[float], Optional[list]]:
    """Poll ``entries()`` until it equals ``expected``; (time it did, or None; the last answer)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for c in children:
            if not c.alive():
                raise bs.BenchError(f"{c.name} exited with code {c.proc.returncode}:\n{c.tail()}")
        got = entries()
        if got is not None:
            last = got
            if got == expected:
                return time.time(), got
        time.sleep(POLL_SECONDS)
    return None, last


def launch_harmrank(broker, tmp: Path, processes: Optional[int] = None) -> tuple[list, Callable]:
    """One ``harmrank worker`` as the README runs it (``processes``: its HARMRANK_PROCESSES, None for the
    default); (its children, a reader of /ranking's entries)."""
    from agents.local_broker import free_port

    port, token = free_port(), secrets.token_hex(16)
    env = bs.clean_env(broker=broker.url, data_dir=tmp / "harmrank-data", web_port=port, api_token=token,
                       processes=processes)
    child = bs.run_cli(["worker"], env, tmp / "harmrank-worker.log")
    worker = bs.HarmrankWorker(child, port, token)

    def entries() -> Optional[list]:
        got = worker.ranking()
        return got.get("entries") if got else None

    return [child], entries


def launch_peer(broker, tmp: Path) -> tuple[list, Callable]:
    """The two processes of tests/bench/peer_quix.py; (its children, a reader of /top)."""
    from agents.local_broker import free_port

    port = free_port()
    env = bs.clean_env()
    children = []
    for stage, extra in (("top", ["--port", str(port)]), ("suspects", [])):
        cmd = [sys.executable, "-m", "tests.bench.peer_quix", stage, "--broker", broker.bootstrap,
               "--state-dir", str(tmp / f"peer-{stage}-state"), *extra]
        children.append(bs.Child(f"peer {stage}", cmd, env, tmp / f"peer-{stage}.log"))

    def entries() -> Optional[list]:
        status, body = bs.http_get(f"http://127.0.0.1:{port}/top")
        return json.loads(body) if status == 200 else None

    return children, entries


LAUNCHERS = {"harmrank": launch_harmrank, "peer": launch_peer}


def run_system(name: str, launch: Callable, feed: Path, reports: int, expected: list, args,
               tmp: Path) -> dict:
    """Fresh broker, whole feed published, then launch the system and time it to its final ranking."""
    broker = fresh_broker(feed, args.partitions, tmp)
    children: list = []
    try:
        t0 = time.time()
        children, entries = launch(broker, tmp)
        cpu = bs.CpuMeter([*(c.pid for c in children), broker.pid])  # whole process groups; the rest: not ours
        t_final, last = wait_final(entries, expected, children, timeout=args.timeout)
        rss, cpu_s = peak_rss(children), cpu_seconds(children)
        if t_final is None:
            bs.say(f"{name}: no final ranking after {args.timeout:g} s\n"
                   + bs.ranking_diff(expected, last or []))
        return {"system": name, "seconds": (t_final - t0) if t_final else None, "rss": rss, "cpu": cpu_s,
                "rate": reports / (t_final - t0) if t_final else None, "equal": t_final is not None,
                "machine": cpu.report()}
    finally:
        for c in reversed(children):
            c.stop(grace=10)
        broker.stop()


def batch_ranking(feed: Path, tmp: Path) -> list:
    rank = bs.run_cli(["rank", str(feed), "--json"], bs.clean_env(), tmp / "rank.out")
    if rank.proc.wait(timeout=3600) != 0:
        raise bs.BenchError(f"harmrank rank exited {rank.proc.returncode}:\n{rank.tail()}")
    rank.stop()
    expected = bs.ranking_json(tmp / "rank.out")
    if expected is None:
        raise bs.BenchError(f"no JSON from harmrank rank:\n{rank.tail()}")
    return expected


def print_table(results: list, reports: int) -> None:
    bs.say(f"\n{'round':<6} {'system':<12} {'events/s launch to final ranking':>33} {'seconds':>8} "
           f"{'peak RSS MiB':>13} {'CPU s':>7}  ranking equals harmrank rank")
    for r in results:
        rate = f"{r['rate']:.0f}" if r["rate"] else "-"
        secs = f"{r['seconds']:.1f}" if r["seconds"] else "-"
        bs.say(f"{r['round']:<6} {r['system']:<12} {rate:>33} {secs:>8} {r['rss']:>13.0f} {r['cpu']:>7.1f}  "
               + ("yes" if r["equal"] else "NO"))
    for r in results:
        bs.say(f"  round {r['round']} {r['system']}: {r['machine']}")
    bs.say(f"({reports} reports; the systems ran on the same machine one after the other, "
           "in the opposite order each round)")


def main(argv: Optional[list] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.bench_peer", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=200_000, help="report.recorded events in the feed (default 200000)")
    p.add_argument("--suspects", type=int, default=48_000, help="the simulator's suspect population (default 48000)")
    p.add_argument("--partitions", type=int, default=4, help="crime-reports partitions (default 4)")
    p.add_argument("--feed", type=Path, help="use this reports-only JSON-lines file instead of generating one")
    p.add_argument("--systems", default="harmrank,peer", help="which to run, in order (default harmrank,peer)")
    p.add_argument("--rounds", type=int, default=1, help="runs of each system, the order reversed each round")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for a final ranking (default 1800)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, state)")
    p.add_argument("--processes", default=None,
                   help="HARMRANK_PROCESSES values, comma-separated: harmrank runs once with each (default: "
                        "once, with the command's default of one process per core)")
    args = p.parse_args(argv)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    try:
        counts = [int(n) for n in args.processes.split(",")] if args.processes else []
    except ValueError:
        counts = [0]
    if min(args.events, args.suspects, args.partitions, args.rounds, *counts) < 1 or \
            not set(systems) <= set(LAUNCHERS):
        p.error("--events, --suspects, --partitions, --rounds and --processes must be positive; "
                "--systems lists harmrank and/or peer")
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    tmp = Path(tempfile.mkdtemp(prefix="harmrank-peer-"))
    try:
        return run(args, _systems(systems, counts), tmp)
    except bs.BenchError as exc:
        bs.say(f"FAILED: {exc}")
        return 1
    finally:
        if args.keep:
            bs.say(f"(kept {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _systems(names: list, counts: list) -> list:
    """(label, launcher) of each system to run: harmrank once per process count given."""
    out = []
    for name in names:
        if name == "harmrank" and counts:
            out += [(f"harmrank p{n}", functools.partial(launch_harmrank, processes=n)) for n in counts]
        else:
            out.append((name, LAUNCHERS[name]))
    return out


def run(args, systems: list, tmp: Path) -> int:
    """Run each (label, launcher) of ``systems`` on the feed, ``--rounds`` times; print the table."""
    feed = args.feed or tmp / "feed.jsonl"
    if args.feed is None:
        reports, named = make_feed(feed, args.events, args.suspects)
    else:
        reports, named = bs.count_nonblank(feed), suspects_in(feed)
    bs.say(f"feed: {reports} reports naming {named} distinct suspects, {args.partitions} partitions")
    expected = batch_ranking(feed, tmp)
    bs.say(f"harmrank rank: {len(expected)} entries")
    results = []
    for round_no in range(1, args.rounds + 1):
        for name, launch in (systems if round_no % 2 else systems[::-1]):
            bs.say(f"round {round_no}: running {name} ...")
            run_dir = tmp / f"{name.replace(' ', '-')}-{round_no}"
            run_dir.mkdir()
            result = run_system(name, launch, feed, reports, expected, args, run_dir)
            results.append({"round": round_no, **result})
    print_table(results, reports)
    return 0 if all(r["equal"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
