"""The Faust adapter: topics, tables, agents and timers that hand batches to the stages of `streams/stages`.

    crime-reports ─intake─▶ harmrank-register ─register─▶ harmrank-ledger ─ledger─▶ harmrank-candidates
    harm-ranking ◀─ranker─ harmrank-candidates (1 partition)

Every rule lives in the stages; this module only declares where their
messages travel and their state lives (RocksDB-backed tables, one partition
per stage partition), and moves batches (`agents/stage_runner.py`). The input
topic is read in bulk by the intake's batch reader (`agents/intake.py`); the
register, ledger and ranker are Faust agents over Faust tables.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import faust
from faust.types import TP

from schemas.events import US_PER_SECOND
from schemas.harm_table import HarmTable, harm_table_bytes
from schemas.lists import fingerprint
from streams.stages import CANDIDATES, DLQ, INPUT, LEDGER, OUTPUT, REGISTER, Message, Work
from streams.stages.intake import IntakeStage
from streams.stages.ledger import LedgerStage, clock_records
from streams.stages.ranker import RankerStage
from streams.stages.register import RegisterStage

from . import metrics
from .access import Access, gate
from .audit import AuditTrail
from .compat import tansu_fetch
from .faust_store import PartitionStore, finish_flush, resend_pending, start_flush
from .intake import IntakeReader, merge_partition
from .kafka_clients import aiokafka_kwargs, faust_kwargs
from .settings import Settings
from .stage_runner import Health, StageRunner
from .compat.faust_stalls import watch_stalls

log = logging.getLogger("harmrank")

REGISTER_TOPIC = "harmrank-register"
LEDGER_TOPIC = "harmrank-ledger"
CANDIDATES_TOPIC = "harmrank-candidates"
STAGE_INPUTS = (REGISTER_TOPIC, LEDGER_TOPIC, CANDIDATES_TOPIC)  # the topics the Faust agents read
#: Messages between stages are envelopes of up to 256 KiB (streams/envelope.py), so a stage's batch and
#: its buffer are bounded in messages to bound them in bytes: at most BATCH + STAGE_BUFFER envelopes
#: of a stage are in memory at once (about 24 MiB), however far its input runs ahead.
BATCH = 32
STAGE_BUFFER = 64
TICK_INTERVAL = 0.2  # seconds: the register ticks every ledger partition at most this often
TICK_TIMER_INTERVAL = 1.0  # seconds: how often a timer sends the tick the last batches left pending
LEDGER_CACHE = 4096  # decoded values a ledger partition keeps between batches (its hot suspects and buckets)
LEDGER_CACHE_BYTES = 2 * 1024 * 1024  # and at most this much of their JSON: the hot suspects are the large records
MIB = 1024 * 1024
#: RocksDB's memory per table partition (Faust's defaults are per database: 64 MiB memtables x 3
#: and a 2 GiB block cache each). The worker's `compat.install` puts every partition under one
#: shared cache and write-buffer budget (`compat.faust_rocksdb_memory`); the block cache size here
#: then goes unused and the memtable sizes bound each partition within that budget.
ROCKSDB_OPTIONS = {"write_buffer_size": 8 * MIB, "max_write_buffer_number": 2, "block_cache_size": 16 * MIB}


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass
class Runtime:
    """What the stages, the timers and the web views share inside one worker process."""

    settings: Settings
    harm: HarmTable
    register: RegisterStage
    ledger: LedgerStage
    ranker: RankerStage
    health: Health = field(default_factory=Health)
    offsets: dict = field(default_factory=dict)  # (topic, partition) -> last offset handed to a stage
    intake: Optional[IntakeReader] = None  # the input topic's batch reader
    ranker_held: bool = False  # this worker holds the ranker partition (it answers /ranking)
    ready: bool = False


def build_app(settings: Settings, harm: HarmTable) -> tuple[faust.App, Runtime]:
    app = _app(settings)
    partitions = settings.partitions

    def topic(name: str, n: int, internal: bool = True):
        return app.topic(name, partitions=n, key_serializer="raw", value_serializer="raw", internal=internal)

    def table(name: str, n: int):
        return app.Table(name, partitions=n, key_type=bytes, value_type=bytes,  # bytes: raw serializers
                         options=dict(ROCKSDB_OPTIONS))  # a copy: Faust's store pops from it

    topics = {REGISTER: topic(REGISTER_TOPIC, partitions), LEDGER: topic(LEDGER_TOPIC, partitions),
              CANDIDATES: topic(CANDIDATES_TOPIC, 1), OUTPUT: topic(settings.output_topic, 1, internal=False),
              DLQ: topic(settings.dlq_topic, 1, internal=False),
              INPUT: app.topic(settings.input_topic, key_serializer="raw", value_serializer="raw")}
    tables = {"register": table("register", partitions), "ledger": table("ledger", partitions),
              "ranker": table("ranker", 1)}
    rt = Runtime(settings, harm,
                 RegisterStage(harm, partitions, lambda p: PartitionStore(tables["register"], p), TICK_INTERVAL,
                               settings.retention_days, scoring_fingerprint(settings)),
                 LedgerStage(partitions, lambda p: PartitionStore(tables["ledger"], p, LEDGER_CACHE, LEDGER_CACHE_BYTES),
                             settings.top_n, settings.window_days, settings.min_allegations,
                             lists=settings.list_specs),
                 RankerStage(lambda p: PartitionStore(tables["ranker"], p), settings.top_n, settings.list_specs))

    async def send(work: Work) -> None:
        """Send a batch's records; return once the broker has acknowledged them all."""
        futures = [await topics[r.role].send(key=r.key, value=r.value, partition=r.partition)
                   for r in work.outbox.records()]
        if futures:
            await asyncio.gather(*futures)

    _stages(app, rt, topics, send)
    _intake(app, rt, settings, IntakeStage(harm, partitions), send)
    _timers(app, rt, settings, send)
    _rebalances(app, rt, tables, send)
    return app, rt


class HarmrankApp(faust.App):
    """Faust's app, with services of our own that start beside Faust's rather than after table recovery.

    A service declared with ``app.service`` starts only once every table is recovered. The intake's
    reader joins its own consumer group, which the local broker holds for half the session timeout,
    as long as Faust's join: started with Faust's services (after the producer, before the stage
    agents' first batch), the two joins overlap. Stopped first, since a dependency is stopped in
    the reverse order it started.
    """

    early_services: tuple = ()

    def on_init_dependencies(self):
        return [*super().on_init_dependencies(), *self.early_services]


def _app(settings: Settings) -> faust.App:
    app = HarmrankApp(
        "harmrank",
        broker=settings.broker,
        store="rocksdb://",
        datadir=settings.data_dir,
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
        producer_linger=0.0,
        # A partition's changelog write for a batch goes as one record batch when it fits (the broker
        # appends a record batch whole), so a crash rarely leaves it half written (streams.stages.base.
        # write_order says what a half-written one leaves). Below the 1,000,000-byte request limit.
        producer_max_batch_size=900_000,
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
        stream_buffer_maxsize=STAGE_BUFFER,
        stream_wait_empty=True,  # a revoked partition's batch in hand is finished before a new owner starts
        logging_config=None,
        **faust_kwargs(settings),  # TLS / SASL to the broker (SPEC §9)
    )
    return app


def _stages(app: faust.App, rt: Runtime, topics: dict, send) -> None:
    """The register, ledger and ranker agents: each hands its batches to its stage."""
    async def read_again(topic: str, gaps: dict) -> bool:
        """Seek a stage input's partitions back to the offsets their state expects next, unless those
        messages are gone from the topic (False)."""
        tps = {TP(topic, partition): offset for partition, offset in gaps.items()}
        earliest = await app.consumer.earliest_offsets(*tps)
        due = {tp: offset for tp, offset in tps.items() if (earliest.get(tp) or 0) <= offset}
        for tp, offset in due.items():
            await app.consumer.seek(tp, offset)
        return bool(due)

    runner = StageRunner(send, rt.health, read_again)
    watch_stalls(app, lambda: rt.ready, {REGISTER_TOPIC: ("register", rt.register),
                                         LEDGER_TOPIC: ("ledger", rt.ledger),
                                         CANDIDATES_TOPIC: ("ranker", rt.ranker)}, runner.reread)
    within = rt.settings.batch_window_ms / 1000.0  # how long a stage gathers a batch once a message is there

    def seen(work):
        def work_and_note(messages: list) -> Work:
            for m in messages:
                rt.offsets[(m.topic, m.partition)] = m.offset
            return work(messages)
        return work_and_note

    def ledger_done(work: Work) -> None:
        tracked, eligible = rt.ledger.stats()
        metrics.SUSPECTS_TRACKED.set(tracked)
        metrics.SUSPECTS_ELIGIBLE.set(eligible)  # the default list's
        for spec in rt.settings.list_specs:
            metrics.LIST_ELIGIBLE.labels(list=spec.name).set(rt.ledger.stats(spec.name)[1])

    def ranker_done(work: Work) -> None:
        rt.ranker_held = True
        count(work.tally)
        _ranker_gauges(rt.ranker)

    @app.agent(topics[REGISTER])
    async def register(stream):
        await runner.run("register", stream, rt.register,
                         seen(lambda messages: rt.register.work(messages, time.monotonic())),
                         lambda work: count(work.tally), BATCH, within)

    @app.agent(topics[LEDGER])
    async def ledger(stream):
        await runner.run("ledger", stream, rt.ledger, seen(rt.ledger.work), ledger_done, BATCH, within)

    @app.agent(topics[CANDIDATES])
    async def ranker(stream):
        await runner.run("ranker", stream, rt.ranker, seen(rt.ranker.work), ranker_done, BATCH, within)


def _intake(app: faust.App, rt: Runtime, settings: Settings, stage: IntakeStage, send) -> None:
    """The input topic's batch reader: validate and route (it reads a failed batch again itself)."""
    fetch_wait = tansu_fetch.current_wait_ms() if tansu_fetch.is_installed() else 500
    within = settings.batch_window_ms / 1000.0

    async def handle(records: list) -> None:
        """Validate and route a batch; a failure is counted and shown on /healthz, and the reader tries again."""
        inputs = rt.intake.partitions() if rt.intake is not None else 0
        messages = [Message(r.topic, r.partition, r.offset, r.timestamp, r.value) for r in records]
        try:
            work = stage.work(messages, now_us(), merge_partition(inputs) if inputs else None)
            await send(work)
        except Exception as exc:
            metrics.STAGE_FAILURES.labels(stage="intake").inc()
            rt.health.failing["intake"] = (time.monotonic(), repr(exc))
            raise
        rt.health.failing.pop("intake", None)
        count(work.tally)
        last = records[-1].timestamp
        metrics.PROCESSING_LATENCY.labels(stage="intake").observe(
            max(0.0, time.time() - (last / 1000 if last and last > 0 else time.time())))

    rt.intake = IntakeReader(topic=settings.input_topic, group_id=f"{app.conf.id}-intake",
                             bootstrap_servers=settings.bootstrap_servers, handle=handle,
                             fetch_max_wait_ms=fetch_wait, window_s=within,
                             client_kwargs=aiokafka_kwargs(settings), beacon=app.beacon)
    app.early_services = (rt.intake,)


def _timers(app: faust.App, rt: Runtime, settings: Settings, send) -> None:
    """The wall clock, the register's pending ticks, and the lag gauges."""
    if settings.clock == "wall":
        @app.timer(interval=settings.tick_seconds)
        async def wall_clock():
            """Move every ledger partition's clock to now, so reports age out with no new input."""
            if rt.ready:
                work = Work()
                clock_records(work, settings.partitions, now_us())
                await send(work)

    @app.timer(interval=TICK_TIMER_INTERVAL)
    async def register_ticks():
        """Send the register's pending tick; after an assignment, first re-tick its partitions' clocks."""
        if not rt.ready:
            return
        stage = rt.register
        if not stage.ticks.primed:
            stage.prime(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == REGISTER_TOPIC)
        work = Work()
        stage.tick(work, time.monotonic(), force=True)
        try:
            await send(work)
        except BaseException:
            stage.failed(work)
            raise

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


def _rebalances(app: faust.App, rt: Runtime, tables: dict, send) -> None:
    resent: set = set()  # changelog partitions whose last local write was sent again in this process

    @app.on_rebalance_complete.connect
    async def recover(sender, **kwargs):
        """Before the stages resume: the changelog gets what a kill -9 left only in RocksDB
        (faust_store), and the write-first stages send again the output of their last batch."""
        count_sent = await resend_pending(app, list(tables.values()), resent)
        if count_sent:
            log.info("sent the last local write of newly assigned partitions to the changelogs again "
                     "(%d records)", count_sent)
        actives = app.assignor.assigned_actives()
        await _rescore(rt, [tp.partition for tp in actives
                            if tp.topic == tables["register"].changelog_topic.get_topic_name()], send)
        ledgers = [tp.partition for tp in actives if tp.topic == tables["ledger"].changelog_topic.get_topic_name()]
        work = rt.ledger.recover(ledgers)
        rt.ranker_held = TP(tables["ranker"].changelog_topic.get_topic_name(), 0) in actives
        if rt.ranker_held:
            work.outbox.singles.extend(rt.ranker.recover().outbox.singles)
            _ranker_gauges(rt.ranker)  # /ranking answers from the recovered table at once
        await send(work)

    @app.on_partitions_revoked.connect
    def on_revoked(app_, revoked, **kwargs):  # a SyncSignal: the receiver must not be async
        """Forget the in-memory indexes: their partitions may move, and Faust reopens their databases."""
        rt.ledger.reset()
        rt.ranker.reset()
        rt.register.reset()
        rt.ranker_held = False


async def _rescore(rt: Runtime, partitions: list, send) -> None:
    """Register partitions whose state was scored with another harm table or lists file: every allegation
    scored again and sent on (SPEC §9), then the new fingerprint written with the state."""
    work = rt.register.rescore(partitions)
    if not work.stores:
        return
    log.info("the harm table or lists changed (fingerprint %s): scoring %d register partitions again",
             rt.register.fingerprint[:12], len(work.stores))
    await send(work)
    await finish_flush(await start_flush(work.stores))


def scoring_fingerprint(settings: Settings) -> str:
    """The sha256 of what scores depend on: the harm table file and the lists file (or, without one, the
    default list's settings) (schemas/lists.py)."""
    lists_file = Path(settings.lists).read_bytes() if settings.lists else None
    return fingerprint(harm_table_bytes(settings.harm_table), lists_file, settings.list_specs)


def count(tally: Counter) -> None:
    """A stage's tally of a batch, into the metrics (no suspect or victim id in any label)."""
    for key, n in tally.items():
        kind = key[0]
        if kind == "consumed":
            metrics.consumed(key[1], key[2]).inc(n)
        elif kind == "dead_letter":
            metrics.DEAD_LETTERS.labels(reason=key[1]).inc(n)
        elif kind == "merge_forwarded":
            metrics.MERGES_FORWARDED.inc(n)
        elif kind == "output":
            name = key[3]
            metrics.OUTPUT_EVENTS.labels(type=key[1]).inc(n)
            if key[1] == "ranking.entered":
                metrics.RANKING_ENTRIES.inc(n)
                metrics.LIST_ENTRIES.labels(list=name).inc(n)
            elif key[1] == "ranking.exited":
                metrics.RANKING_EXITS.labels(reason=key[2]).inc(n)
                metrics.LIST_EXITS.labels(list=name).inc(n)


def _canonical_url(settings: Settings) -> str:
    """How the other workers reach this one's web server (they proxy API requests to the owner)."""
    host = settings.web_host
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    return f"http://{host}:{settings.web_port}"


def _ranker_gauges(stage: RankerStage) -> None:
    for name, each in stage.rankers.items():
        metrics.LIST_MEMBERS.labels(list=name).set(len(each.book.members()))
    ranker = stage.ranker  # the default list's, for the gauges without a list label
    metrics.RANKING_MEMBERS.set(len(ranker.book.members()))
    threshold = ranker.threshold()
    metrics.THRESHOLD_SCORE.set(threshold.score / 100 if threshold else 0)
    metrics.CLOCK_AS_OF.set(ranker.as_of / US_PER_SECOND)
