"""The Quix Streams peer of harmrank (not a test): the same ranking, written the textbook Quix way.

    python -m tests.bench.peer_quix suspects --broker HOST:PORT --state-dir DIR
    python -m tests.bench.peer_quix top --broker HOST:PORT --state-dir DIR --port PORT

Two processes, the shape of harmrank's pipeline:

1. ``suspects``: consumes ``crime-reports`` (``report.recorded`` only; other types are
   passed over), splits each report into one allegation per distinct suspect, re-keys by
   suspect (``group_by``, a repartition topic), keeps each suspect's allegations in
   RocksDB state and sends his standing (score in exact hundredths of a day, VAWG
   allegations, newest recorded_at, distinct victims) to ``peer-standings`` whenever it
   changes. Its window is the suspect's own: an allegation counts while it is less than
   365 days older than his newest one (no global clock, no expiry without input).
2. ``top``: one partition of ``peer-standings``; keeps each standing in RocksDB state and
   all eligible suspects (at least 2 VAWG allegations) in a sorted book in the order of
   SPEC §1; emits entered / updated / exited to ``peer-ranking`` and serves its top 100
   as JSON at ``GET /top``. The book lives in memory (a restart would rebuild it from the
   standings; the benchmark always starts it fresh).

Harm days and the VAWG set come from the shipped harm table; VAWG is the event's ``vawg``
when given, else a female victim and a VAWG offence code (SPEC §1).
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from sortedcontainers import SortedList

from schemas.harm_table import load_harm_table
from schemas.validate import parse_timestamp

INPUT_TOPIC = "crime-reports"
STANDINGS_TOPIC = "peer-standings"
RANKING_TOPIC = "peer-ranking"
WINDOW_US = 365 * 86_400_000_000
TOP_N = 100
MIN_ALLEGATIONS = 2


def allegations(report: dict, harm_table) -> list:
    """One allegation a distinct suspect of a ``report.recorded`` event (none for another type)."""
    if not isinstance(report, dict) or report.get("type") != "report.recorded":
        return []
    entry = harm_table.get(report["offence_code"])
    if entry is None:
        return []
    victims = report.get("victims") or []
    vawg = report.get("vawg")
    if not isinstance(vawg, bool):
        vawg = entry.vawg and any(v.get("sex") == "F" for v in victims)
    recorded = parse_timestamp(report["at"])
    victim_ids = sorted({v["id"] for v in victims})
    return [{"suspect_id": s, "crime_ref": report["crime_ref"], "recorded_us": recorded,
             "cents": entry.days_cents, "vawg": vawg, "victims": victim_ids}
            for s in dict.fromkeys(report.get("suspects") or [])]


def update_standing(allegation: dict, state) -> Optional[dict]:
    """Store the allegation in the suspect's state; his new standing, or None when it is unchanged."""
    held = state.get("allegations", {})
    before = state.get("standing")
    held[allegation["crime_ref"]] = [allegation["recorded_us"], allegation["cents"], allegation["vawg"],
                                     allegation["victims"]]
    newest = max(a[0] for a in held.values())
    held = {ref: a for ref, a in held.items() if a[0] > newest - WINDOW_US}
    state.set("allegations", held)
    vawg = [a for a in held.values() if a[2]]
    standing = {"suspect_id": allegation["suspect_id"], "score": sum(a[1] for a in vawg),
                "allegations": len(vawg), "newest": max((a[0] for a in vawg), default=0),
                "victims": len({v for a in vawg for v in a[3]})}
    if standing == before:
        return None
    state.set("standing", standing)
    return standing


def order_key(standing: dict) -> tuple:
    """SPEC §1's order: score desc, allegations desc, newest desc, suspect_id asc."""
    return (-standing["score"], -standing["allegations"], -standing["newest"], standing["suspect_id"])


class Book:
    """Every eligible suspect in ranking order; the members of the top N are its first N."""

    def __init__(self, top_n: int = TOP_N):
        self.top_n = top_n
        self.order = SortedList()
        self.keys: dict = {}  # suspect_id -> his key in ``order``
        self.standings: dict = {}  # suspect_id -> standing, eligible ones
        self.lock = threading.Lock()

    def rank(self, key: Optional[tuple]) -> Optional[int]:
        """0-based rank of a key in the book, or None when it is not a member."""
        if key is None:
            return None
        i = self.order.bisect_left(key)
        return i if i < self.top_n else None

    def update(self, standing: dict, state) -> list:
        """Apply one suspect's standing; the ranking events it causes."""
        state.set("standing", standing)
        sid = standing["suspect_id"]
        with self.lock:
            old_key = self.keys.pop(sid, None)
            was = self.rank(old_key)
            if old_key is not None:
                self.order.remove(old_key)
                del self.standings[sid]
            new_key = None
            if standing["allegations"] >= MIN_ALLEGATIONS:
                new_key = order_key(standing)
                self.order.add(new_key)
                self.keys[sid] = new_key
                self.standings[sid] = standing
            now = self.rank(new_key)
            return self._events(sid, was, now)

    def _events(self, sid: str, was: Optional[int], now: Optional[int]) -> list:
        """Entered / updated / exited for the suspect, and for whom his move pushed out or let in."""
        n = self.top_n
        if was is None and now is None:
            return []
        if was is not None and now is not None:
            return [self._event("ranking.updated", sid, now)]
        if now is not None:  # he entered: the one now just past the top N left it
            out = [self._event("ranking.entered", sid, now)]
            if len(self.order) > n:
                out.append(self._event("ranking.exited", self.order[n][3], None))
            return out
        out = [self._event("ranking.exited", sid, None)]  # he left: the one now at N entered
        if len(self.order) >= n:
            out.append(self._event("ranking.entered", self.order[n - 1][3], n - 1))
        return out

    def _event(self, kind: str, sid: str, rank: Optional[int]) -> dict:
        s = self.standings.get(sid)
        event = {"type": kind, "suspect_id": sid}
        if rank is not None:
            event["rank"] = rank + 1
        if s is not None:
            event.update(score=s["score"] / 100, allegations=s["allegations"], victims=s["victims"])
        return event

    def top(self) -> list:
        """The top N as ``harmrank rank --json`` prints it."""
        with self.lock:
            keys = list(self.order.islice(0, self.top_n))
            return [{"rank": i + 1, "suspect_id": k[3], "score": self.standings[k[3]]["score"] / 100,
                     "allegations": self.standings[k[3]]["allegations"],
                     "victims": self.standings[k[3]]["victims"]} for i, k in enumerate(keys)]


def report_tansu_retention() -> None:
    """Make Quix read tansu's topics as keeping everything: tansu answers DescribeConfigs with no
    config at all, and Quix's ``group_by`` needs ``retention.ms`` of its source topic."""
    from quixstreams.models.topics.admin import TopicAdmin

    inspect = TopicAdmin.inspect_topics

    def inspect_topics(self, topic_names, timeout=30):
        configs = inspect(self, topic_names, timeout=timeout)
        for config in configs.values():
            if config is not None:
                config.extra_config.setdefault("retention.ms", "-1")
                config.extra_config.setdefault("retention.bytes", "-1")
        return configs

    TopicAdmin.inspect_topics = inspect_topics


def application(args, group: str):
    """A Quix application on the local broker: earliest offsets, and a short session timeout
    (tansu holds a JoinGroup for half of it)."""
    from quixstreams import Application

    report_tansu_retention()
    return Application(broker_address=args.broker, consumer_group=group, auto_offset_reset="earliest",
                       state_dir=args.state_dir, loglevel="WARNING",
                       consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000})


def run_suspects(args) -> None:
    """Process 1: reports -> allegations -> re-keyed by suspect -> standings."""
    from quixstreams.models import TopicConfig

    harm_table = load_harm_table()
    app = application(args, "peer-suspects")
    reports = app.topic(INPUT_TOPIC, value_deserializer="json")
    standings = app.topic(STANDINGS_TOPIC, key_serializer="str", value_serializer="json",
                          config=TopicConfig(num_partitions=1, replication_factor=1))
    sdf = app.dataframe(reports)
    sdf = sdf.apply(lambda report: allegations(report, harm_table), expand=True)
    sdf = sdf.group_by(lambda allegation: allegation["suspect_id"], name="suspect")
    sdf = sdf.apply(update_standing, stateful=True).filter(lambda standing: standing is not None)
    sdf.to_topic(standings)
    app.run()


def serve_top(book: Book, port: int) -> ThreadingHTTPServer:
    """``GET /top``: the book's top N as JSON, from a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the http.server name)
            body = json.dumps(book.top()).encode() if self.path == "/top" else b"[]"
            self.send_response(200 if self.path == "/top" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, name="peer-top-http", daemon=True).start()
    return server


def run_top(args) -> None:
    """Process 2: standings (one partition) -> the book -> ranking events, and ``GET /top``."""
    from quixstreams.models import TopicConfig

    book = Book()
    serve_top(book, args.port)
    app = application(args, "peer-top")
    standings = app.topic(STANDINGS_TOPIC, key_deserializer="str", value_deserializer="json",
                          config=TopicConfig(num_partitions=1, replication_factor=1))
    ranking = app.topic(RANKING_TOPIC, key_serializer="str", value_serializer="json",
                        config=TopicConfig(num_partitions=1, replication_factor=1))
    sdf = app.dataframe(standings)
    sdf = sdf.apply(book.update, stateful=True, expand=True)
    sdf.to_topic(ranking, key=lambda event: event["suspect_id"])
    app.run()


def main(argv: Optional[list] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.peer_quix", description=__doc__.split("\n\n")[0])
    p.add_argument("stage", choices=["suspects", "top"])
    p.add_argument("--broker", required=True, help="bootstrap HOST:PORT")
    p.add_argument("--state-dir", required=True, help="RocksDB state directory of this process")
    p.add_argument("--port", type=int, default=0, help="HTTP port of GET /top (stage top)")
    args = p.parse_args(argv)
    if args.stage == "top" and not args.port:
        p.error("the top stage needs --port")
    (run_suspects if args.stage == "suspects" else run_top)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
