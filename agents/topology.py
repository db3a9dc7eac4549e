"""The streaming topology: the core's stages wired to Kafka topics and RocksDB tables.

    crime-reports ─intake─▶ harmrank-register (by crime_ref; ─register─▶ harmrank-ledger (by suspect)
                            merges to every partition)                  │ ledger: local top N
                                                                        ▼
    harm-ranking ◀─ranker─ harmrank-candidates (1 partition) ◀──────────┘

Faust pays a fixed price for every message a stream hands an agent, so no
topic after the input speaks in one Kafka message per fact: each stage sends,
per batch, one envelope per destination partition holding all the facts for it
(the partition chosen by a stable hash of crime_ref or suspect id). The input
topic itself is read in bulk by the intake's batch consumer (`agents/intake.py`);
the register, ledger and ranker are Faust agents over Faust tables.

Every stage works a batch against a write-back cache over its table
partition, sends its envelopes and waits for the broker's acknowledgement,
and only then writes its state (`ChangelogPipe`): a crash replays the batch,
and the facts are absolute state, so nothing is counted twice or lost. Bad
input goes to `crime-reports.dlq` from the stage that can tell it is bad.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Optional

import faust
from faust.types import TP

from schemas.events import US_PER_SECOND, SuspectsMerged, event_from_row, event_to_row
from schemas.harm_table import HarmTable
from schemas.validate import Rejected, dead_letter, validate
from streams.ledger import Ledger
from streams.messages import (allegation_update_from_json, allegation_update_to_json,
                              candidate_update_from_json, candidate_update_to_json)
from streams.ranker import Ranker
from streams.register import ACCEPTED, DUPLICATE, Register

from . import codec, faust_store, metrics, tansu_fetch
from .access import Access, gate
from .audit import AuditTrail
from .faust_store import ChangelogPipe, PartitionStore, resend_pending
from .intake import IntakeReader, merge_partition
from .publish import MERGE_KEY
from .settings import Settings

log = logging.getLogger("harmrank")

REGISTER_TOPIC = "harmrank-register"
LEDGER_TOPIC = "harmrank-ledger"
CANDIDATES_TOPIC = "harmrank-candidates"
STAGE_INPUTS = (REGISTER_TOPIC, LEDGER_TOPIC, CANDIDATES_TOPIC)  # the topics the Faust agents read
BATCH = 2000
ENVELOPE_ITEMS = 1000  # facts per envelope: keeps a message far below the broker's 1 MiB request limit
TICK_INTERVAL = 0.2  # seconds: the register ticks every ledger partition at most this often
TICK_TIMER_INTERVAL = 1.0  # seconds: how often a timer sends the tick the last batches left pending
BOOK_CAPACITY_FACTOR = 10  # a ledger partition keeps its best 10 x N in memory
LEDGER_CACHE = 4096  # decoded values a ledger partition keeps between batches (its hot suspects and buckets)
MIB = 1024 * 1024
#: RocksDB's memory per table partition. Faust's defaults are per database (64 MiB
#: memtables x 3 and a 2 GiB block cache each), so a worker with ten partition databases
#: could grow by gigabytes as the state grows; these bound each to 2 x 8 MiB of
#: memtables and a 16 MiB block cache.
ROCKSDB_OPTIONS = {"write_buffer_size": 8 * MIB, "max_write_buffer_number": 2, "block_cache_size": 16 * MIB}
OFFSET_KEY = "offset"  # in each stage partition's store: the last input offset its state includes
CLOCK_KEY = "clock"  # in each register partition's store: the newest event time it applied


def partition_for(key: str, partitions: int) -> int:
    """The register / ledger partition that owns `key`: stable across processes and restarts."""
    return zlib.crc32(key.encode()) % partitions


_dumps = codec.dumps


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass
class Runtime:
    """What the stages and the web views share inside one worker process."""

    settings: Settings
    harm: HarmTable
    ledgers: dict = field(default_factory=dict)  # ledger partition -> Ledger
    ranker: Optional[Ranker] = None
    offsets: dict = field(default_factory=dict)  # (topic, partition) -> last offset processed
    ticks: "Ticks" = field(default_factory=lambda: Ticks(TICK_INTERVAL))
    intake: Optional[IntakeReader] = None  # the input topic's batch reader, once the app started it
    ready: bool = False


class Ticks:
    """The register's clock ticks to every ledger partition: at most one per `interval`, none lost.

    Event time reaches a ledger partition with the updates sent to it; the ones
    that get none in a batch need a tick. Ticking all of them after every batch
    made most of the traffic between stages at a few hundred events/s, so the
    register ticks at most every `interval` and a timer sends what is left.
    Each register partition keeps the newest event time it applied in its
    store, with its state, and a restart or a new owner ticks it again
    (`primed` is False until then), so a crash loses no tick.
    """

    def __init__(self, interval: float):
        self.interval = interval
        self.pending: Optional[int] = None  # the newest event time applied and not yet ticked
        self.sent_at = float("-inf")  # monotonic time of the last tick taken
        self.primed = False

    def later(self, as_of: Optional[int]) -> None:
        """Remember `as_of` for the next tick (a tick that could not be sent comes back here)."""
        if as_of is not None and (self.pending is None or as_of > self.pending):
            self.pending = as_of

    def take(self, now: float, force: bool = False) -> Optional[int]:
        """The pending tick if one is due (always when `force`), or None; taking it clears it."""
        tick = self.pending
        if tick is None or (not force and now - self.sent_at < self.interval):
            return None
        self.pending = None
        self.sent_at = now
        return tick


class Outbox:
    """A batch's outgoing messages: facts grouped into one envelope per destination partition."""

    def __init__(self):
        self._envelopes: dict = {}  # (topic, partition) -> list of items
        self._clock: dict = {}  # (topic, partition) -> as_of
        self._t0: dict = {}
        self.singles: list = []  # (topic, key, value bytes, partition) sent as they are

    def add(self, topic, partition: int, item: Any, t0: float = 0.0) -> None:
        self._envelopes.setdefault((topic, partition), []).append(item)
        if t0 > self._t0.get((topic, partition), 0.0):
            self._t0[(topic, partition)] = t0

    def clock(self, topic, partition: int, as_of: int) -> None:
        if as_of > self._clock.get((topic, partition), 0):
            self._clock[(topic, partition)] = as_of

    def messages(self) -> list:
        """The singles, then each destination's envelopes, in order: at most ENVELOPE_ITEMS facts each.

        A destination's envelopes go to one partition from one producer, so they
        arrive in order; its clock travels in the last of them.
        """
        out = list(self.singles)
        for dest in set(self._envelopes) | set(self._clock):
            topic, partition = dest
            items = self._envelopes.get(dest, [])
            t0 = self._t0.get(dest, 0.0)
            for start in range(0, max(len(items), 1), ENVELOPE_ITEMS):
                body = {"items": items[start:start + ENVELOPE_ITEMS], "t0": t0}
                if start + ENVELOPE_ITEMS >= len(items) and dest in self._clock:
                    body["as_of"] = self._clock[dest]
                out.append((topic, None, _dumps(body), partition))
        return out


def build_app(settings: Settings, harm: HarmTable) -> tuple[faust.App, Runtime]:
    rt = Runtime(settings, harm)
    partitions = settings.partitions
    app = faust.App(
        "harmrank",
        broker=settings.broker,
        store="rocksdb://",
        datadir=settings.data_dir,
        topic_partitions=partitions,
        topic_replication_factor=1,
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
        producer_linger=0.0,
        broker_commit_interval=10.0,
        broker_commit_every=100_000,
        consumer_auto_offset_reset="earliest",
        table_standby_replicas=0,
        web_enabled=True,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_host=settings.web_host,
        canonical_url=_canonical_url(settings),
        # Faust's own views (tables, router, stats, graph) would show state to anyone: none is
        # mounted, and every path but the public ones passes the token gate (agents/access.py).
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        web_application_options={"middlewares": [gate(Access.from_settings(settings), AuditTrail(lambda: app))]},
        stream_wait_empty=False,
        logging_config=None,
    )

    def topic(name: str, n: int, internal: bool = True):
        return app.topic(name, partitions=n, key_serializer="raw", value_serializer="raw", internal=internal)

    register_topic = topic(REGISTER_TOPIC, partitions)
    ledger_topic = topic(LEDGER_TOPIC, partitions)
    candidates_topic = topic(CANDIDATES_TOPIC, 1)
    input_topic = app.topic(settings.input_topic, key_serializer="raw", value_serializer="raw")
    output_topic = topic(settings.output_topic, 1, internal=False)
    dlq_topic = topic(settings.dlq_topic, 1, internal=False)

    def table(name: str, n: int):
        return app.Table(name, partitions=n, key_type=bytes, value_type=bytes,  # bytes: raw serializers
                         options=dict(ROCKSDB_OPTIONS))  # a copy: Faust's store pops from it

    register_table = table("register", partitions)
    ledger_table = table("ledger", partitions)
    ranker_table = table("ranker", 1)
    resent: set = set()  # changelog partitions whose last local write was sent again in this process
    if faust_store.crash_point_armed():
        log.warning("HARMRANK_TEST_CRASH_AFTER_LOCAL_WRITE is set: this worker kills itself on purpose (a test)")

    @app.on_rebalance_complete.connect
    async def resend_last_local_writes(sender, **kwargs):
        """Before the stages resume: the changelog gets what a kill -9 left only in RocksDB (faust_store)."""
        count = await resend_pending(app, [register_table, ledger_table, ranker_table], resent)
        if count:
            log.info("sent the last local write of newly assigned partitions to the changelogs again "
                     "(%d records)", count)

    def seen(event) -> None:
        msg = event.message
        rt.offsets[(msg.topic, msg.partition)] = msg.offset

    def unapplied(store: PartitionStore, events: list) -> list:
        """The events this partition's state does not include yet.

        A stage writes the offset of the last message it applied together with
        its state, so the replay that follows a crash (Faust commits offsets
        later than we write state) skips what was applied, instead of applying
        older absolute facts over newer ones and going back in time.
        """
        last = store.get(OFFSET_KEY)
        fresh = events if last is None else [e for e in events if e.message.offset > last]
        if fresh:
            store[OFFSET_KEY] = fresh[-1].message.offset
        return fresh

    async def send_all(outbox: Outbox) -> None:
        """Send the batch's messages; return once the broker has acknowledged them all."""
        futures = [await t.send(key=k, value=v, partition=p) for t, k, v, p in outbox.messages()]
        if futures:
            await asyncio.gather(*futures)

    def dlq(outbox: Outbox, reason: str, src: list, raw: Any) -> None:
        # The standard library's encoder: it never refuses a string (orjson refuses lone surrogates).
        letter = dead_letter(reason, src[0], src[1], src[2], raw)
        outbox.singles.append((dlq_topic, None, json.dumps(letter, separators=(",", ":")).encode(), None))

    def by_partition(events) -> dict:
        groups: dict = {}
        for e in events:
            groups.setdefault(e.message.partition, []).append(e)
        return groups

    def items_of(events):
        """(event, envelope body, item) for every fact in a batch of envelopes."""
        for e in events:
            seen(e)
            body = codec.loads(e.message.value)
            for item in body["items"]:
                yield e, body, item

    def apply_envelopes(store: PartitionStore, events: list, decode, apply_all, advance) -> float:
        """Apply the facts and clock of every envelope the store's state does not include yet.

        `apply_all` takes the list of one envelope's facts, in order. Returns the
        newest publish time (`t0`) among them, for the latency metric.
        """
        t0 = 0.0
        for e in unapplied(store, events):
            seen(e)
            body = codec.loads(e.message.value)
            t0 = max(t0, body.get("t0", 0.0))
            apply_all([decode(item) for item in body["items"]])
            if "as_of" in body:
                advance(body["as_of"])
        return t0

    def tick_all_ledgers(outbox: Outbox, as_of: int) -> None:
        for p in range(partitions):
            outbox.clock(ledger_topic, p, as_of)

    async def send_with_tick(outbox: Outbox, force: bool = False) -> None:
        """Send `outbox` with the pending tick if one is due; a tick not sent stays pending."""
        tick = rt.ticks.take(time.monotonic(), force)
        if tick is not None:
            tick_all_ledgers(outbox, tick)
        try:
            await send_all(outbox)
        except BaseException:
            rt.ticks.later(tick)
            raise

    # -- intake: validate, route -----------------------------------------------------------

    async def intake(records: list) -> None:
        """Validate a batch of input records and route each event to its register partition (a merge to all)."""
        outbox = Outbox()
        now = now_us()
        inputs = rt.intake.partitions() if rt.intake is not None else 0
        merges_home = merge_partition(inputs) if inputs else None
        for msg in records:
            src = [msg.topic, msg.partition, msg.offset]
            value = msg.value if msg.value is not None else b""
            result = validate(value, harm, now_us=now)
            if isinstance(result, Rejected):
                metrics.consumed(_type_of(value), "dead_lettered").inc()
                metrics.DEAD_LETTERS.labels(reason=result.code).inc()
                dlq(outbox, result.reason, src, value)
                continue
            # The validated event travels as a row (no second validation downstream),
            # its raw payload with it for the dead-letter topic.
            item = {"ev": event_to_row(result), "raw": value.decode(), "src": src}
            t0 = msg.timestamp / 1000 if msg.timestamp and msg.timestamp > 0 else time.time()
            if isinstance(result, SuspectsMerged):
                if merges_home is not None and msg.partition != merges_home:
                    # Every register partition must see the merges in one order, and only one
                    # intake reads a partition: merges published on another key go to the merge
                    # partition first, and apply when they are read from there.
                    outbox.singles.append((input_topic, MERGE_KEY, value, merges_home))
                    metrics.MERGES_FORWARDED.inc()
                    continue
                # Every register partition keeps the alias forest and applies each merge between
                # the crime events around it, in input order (see streams/register.py).
                for p in range(partitions):
                    outbox.add(register_topic, p, item, t0)
            else:
                outbox.add(register_topic, partition_for(result.crime_ref, partitions), item, t0)
        await send_all(outbox)
        last = records[-1].timestamp
        metrics.PROCESSING_LATENCY.labels(stage="intake").observe(
            max(0.0, time.time() - (last / 1000 if last and last > 0 else time.time())))

    fetch_wait = tansu_fetch.current_wait_ms() if tansu_fetch.is_installed() else 500
    # How long a stage gathers a batch once an event is there: bounds the latency each hop adds,
    # and sets how many record batches (envelopes, changelogs) the broker is sent a second.
    within = settings.batch_window_ms / 1000.0

    @app.service
    class Intake(IntakeReader):
        def __init__(self, **kwargs):
            super().__init__(topic=settings.input_topic, group_id=f"{app.conf.id}-intake",
                             bootstrap_servers=settings.bootstrap_servers, handle=intake,
                             fetch_max_wait_ms=fetch_wait, window_s=within, **kwargs)
            rt.intake = self

    def reparse(item: dict):
        """The event intake already validated (an item from before rows travelled is validated again)."""
        row = item.get("ev")
        return event_from_row(row) if row is not None else validate(item["raw"].encode(), harm, now_us=None)

    def rejected(outbox: Outbox, event, outcome, item: dict) -> None:
        metrics.consumed(event.type, _outcome(outcome.status)).inc()
        if outcome.rejection:
            code, detail = outcome.rejection
            metrics.DEAD_LETTERS.labels(reason=code).inc()
            dlq(outbox, f"{code}: {detail}", item["src"], item["raw"])

    # -- register: reports, by crime_ref ----------------------------------------------------

    @app.agent(register_topic)
    async def register(stream):
        pipe = ChangelogPipe(stream)
        async for events in stream.noack_take(BATCH, within=within):
            outbox, stores, newest_t0 = Outbox(), [], 0.0
            for partition, group in by_partition(events).items():
                store = PartitionStore(register_table, partition)
                stores.append(store)
                reg = Register(store, harm)
                newest = None
                for _, body, item in items_of(unapplied(store, group)):
                    t0 = body.get("t0", 0.0)
                    newest_t0 = max(newest_t0, t0)
                    event = reparse(item)
                    outcome = reg.apply(event)
                    # A merge reaches every partition, and each decides it alike: partition 0 speaks for it.
                    speaks = partition == 0 or event.__class__ is not SuspectsMerged
                    if outcome.status != ACCEPTED:
                        if speaks:
                            rejected(outbox, event, outcome, item)
                        continue
                    if speaks:
                        metrics.consumed(event.type, "accepted").inc()
                    updates, at = outcome.updates, event.at
                    newest = at if newest is None else max(newest, at)
                    for u in updates:
                        outbox.add(ledger_topic, partition_for(u.suspect, partitions),
                                   allegation_update_to_json(u), t0)
                if newest is not None and newest > store.get(CLOCK_KEY, 0):
                    reg.advance(newest)  # forgets what left the retention period (SPEC §9)
                    store[CLOCK_KEY] = newest
                rt.ticks.later(newest)
            # One acknowledgement for the whole batch, then every partition's state.
            await send_with_tick(outbox)
            await pipe.write(stores, events)
            _observe("register", newest_t0)

    # -- ledger: suspects, by suspect ------------------------------------------------------

    def ledger_for(partition: int) -> Ledger:
        ledger = rt.ledgers.get(partition)
        if ledger is None:
            store = PartitionStore(ledger_table, partition, keep=LEDGER_CACHE)
            ledger = Ledger(store, settings.top_n, settings.window_days, settings.min_allegations,
                            book_capacity=BOOK_CAPACITY_FACTOR * settings.top_n)
            rt.ledgers[partition] = ledger
        return ledger

    @app.agent(ledger_topic)
    async def ledger(stream):
        pipe = ChangelogPipe(stream)
        async for events in stream.noack_take(BATCH, within=within):
            outbox, touched, newest_t0 = Outbox(), [], 0.0
            try:
                for partition, group in by_partition(events).items():
                    led = ledger_for(partition)
                    touched.append(partition)
                    clock_before = led.as_of
                    t0 = apply_envelopes(led.store, group, allegation_update_from_json, led.apply_many,
                                         led.advance)
                    newest_t0 = max(newest_t0, t0)
                    for u in led.flush():
                        outbox.add(candidates_topic, 0, candidate_update_to_json(u), t0)
                    if led.as_of > clock_before:
                        outbox.clock(candidates_topic, 0, led.as_of)
                # One acknowledgement for the whole batch, then every partition's state.
                await send_all(outbox)
                await pipe.write([rt.ledgers[p].store for p in touched], events)
                _observe("ledger", newest_t0)
            except BaseException:
                for partition in touched:
                    rt.ledgers.pop(partition, None)  # its in-memory book may be ahead of the store
                raise
            tracked = eligible = 0
            for other in list(rt.ledgers.values()):
                a, b = other.stats()
                tracked += a
                eligible += b
            metrics.SUSPECTS_TRACKED.set(tracked)
            metrics.SUSPECTS_ELIGIBLE.set(eligible)

    # -- ranker: the global top N, one partition -------------------------------------------

    def the_ranker() -> Ranker:
        if rt.ranker is None:
            rt.ranker = Ranker(PartitionStore(ranker_table, 0), settings.top_n)
        return rt.ranker

    @app.on_rebalance_complete.connect
    async def load_ranker(sender, **kwargs):
        """The ranker's owner answers /ranking (and its gauges) from the recovered table at once,
        not only once the next candidate arrives: after a restart with no new input there may be none."""
        if TP(ranker_table.changelog_topic.get_topic_name(), 0) in app.assignor.assigned_actives():
            _ranker_gauges(the_ranker())

    @app.agent(candidates_topic)
    async def ranker(stream):
        pipe = ChangelogPipe(stream)
        async for events in stream.noack_take(BATCH, within=within):
            rk = the_ranker()
            try:
                t0 = apply_envelopes(rk.store, events, candidate_update_from_json, rk.apply_many, rk.advance)
                out = rk.flush()
                outbox = Outbox()
                outbox.singles = [(output_topic, o["suspect_id"].encode(), _dumps(o), None) for o in out]
                await send_all(outbox)
                await pipe.write([rk.store], events)
            except BaseException:
                rt.ranker = None
                raise
            if rt.ranker is not rk:  # a rebalance loaded another from the table while this batch ran
                rt.ranker = None  # so the next use reads the table again, this batch's write included
            for o in out:
                metrics.OUTPUT_EVENTS.labels(type=o["type"]).inc()
                if o["type"] == "ranking.entered":
                    metrics.RANKING_ENTRIES.inc()
                else:
                    metrics.RANKING_EXITS.labels(reason=o["reason"]).inc()
            _ranker_gauges(rk)
            if out and t0:
                metrics.PROCESSING_LATENCY.labels(stage="ranker").observe(max(0.0, time.time() - t0))

    # -- the wall clock, lag ---------------------------------------------------------------

    if settings.clock == "wall":
        @app.timer(interval=settings.tick_seconds)
        async def wall_clock():
            """Move every ledger partition's clock to now, so reports age out with no new input."""
            if rt.ready:
                outbox = Outbox()
                tick_all_ledgers(outbox, now_us())
                await send_all(outbox)

    @app.timer(interval=TICK_TIMER_INTERVAL)
    async def register_ticks():
        """Send the register's pending tick; after an assignment, first re-tick its partitions' clocks."""
        if not rt.ready:
            return
        ticks = rt.ticks
        if not ticks.primed:
            for tp in app.assignor.assigned_actives():
                if tp.topic == REGISTER_TOPIC:
                    ticks.later(PartitionStore(register_table, tp.partition).get(CLOCK_KEY))
            ticks.primed = True
        if ticks.pending is not None:
            await send_with_tick(Outbox(), force=True)

    stage_of = dict(zip(STAGE_INPUTS, ("register", "ledger", "ranker")))

    @app.timer(interval=5.0)
    async def lag():
        totals = dict.fromkeys(metrics.STAGES, 0)
        try:
            for tp in app.assignor.assigned_actives():
                stage = stage_of.get(tp.topic)
                high = app.consumer.highwater(tp) if stage else None
                if high is not None:
                    last = rt.offsets.get((tp.topic, tp.partition))
                    totals[stage] += max(0, high - (last + 1 if last is not None else 0))
            intake_lag = rt.intake.lag() if rt.intake is not None else None
            if intake_lag is not None:
                totals["intake"] = intake_lag
        except Exception:  # lag is best effort; never stop the worker for it
            log.debug("lag not measured", exc_info=True)
            return
        for stage, value in totals.items():
            metrics.CONSUMER_LAG.labels(stage=stage).set(value)

    @app.on_partitions_revoked.connect
    def on_revoked(app_, revoked, **kwargs):  # a SyncSignal: the receiver must not be async
        """Forget the in-memory indexes: their partitions may move, and Faust reopens their databases."""
        rt.ledgers.clear()
        rt.ranker = None
        rt.ticks.primed = False

    return app, rt


def _observe(stage: str, t0: float) -> None:
    """Publish-to-stage latency of the newest fact a stage has just finished (its envelope's `t0`)."""
    if t0:
        metrics.PROCESSING_LATENCY.labels(stage=stage).observe(max(0.0, time.time() - t0))


def _canonical_url(settings: Settings) -> str:
    """How the other workers reach this one's web server (they proxy API requests to the owner)."""
    import socket

    host = settings.web_host
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    return f"http://{host}:{settings.web_port}"


def _outcome(status: str) -> str:
    return {ACCEPTED: "accepted", DUPLICATE: "duplicate"}.get(status, "dead_lettered")


def _type_of(raw: bytes) -> str:
    """The event type for the metrics label, only if it is one of the known types."""
    try:
        value = json.loads(raw).get("type")
    except Exception:
        return "invalid"
    return value if value in metrics.INPUT_TYPES else "invalid"


def _ranker_gauges(rk: Ranker) -> None:
    metrics.RANKING_MEMBERS.set(len(rk.book.members()))
    threshold = rk.threshold()
    metrics.THRESHOLD_SCORE.set(threshold.score / 100 if threshold else 0)
    metrics.CLOCK_AS_OF.set(rk.as_of / US_PER_SECOND)
