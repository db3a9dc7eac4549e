"""The latency floor for ``tests.bench.bench_stream`` (not a test, not product code).

The worker's pipeline with the work taken out: the same four hops, read and
sent the same way, with no validation, no state, no changelog. Its latency at
a given input rate is what the hops alone cost on this machine and broker, so
it bounds from below what any worker of this shape can reach here.

    bench-floor-<hops>-in (4) ─intake─▶ -1 (4) ─▶ -2 (4) ─▶ -3 (1) ─▶ bench-floor-<hops>-out (1)

- Hop 1 is the worker's own `IntakeReader` (aiokafka batches): each batch goes
  on as one envelope per source partition.
- Hops 2 to 4 are Faust agents with the worker's batching
  (`noack_take(BATCH, within=...)`, the window of `HARMRANK_BATCH_WINDOW_MS`). Each batch's items go on as one
  envelope per destination partition, and the agent waits for the broker's
  acknowledgement before it acks its input.
- With `--hops aiokafka`, hops 2 to 4 are batch readers like hop 1 instead, to
  show what Faust's stream costs (each variant has topics of its own).
- With `--count 3`, the second topic is left out: three hops, as a register that
  read the input itself would leave (the intake's reading and the register's one hop).
- It runs with the worker's Faust settings and the worker's local-broker
  patches: the end-offset fix, the fetch wait and the direct drain.

An item is ``[send time in ms, the input record's value]``, so envelopes are as
large as the input. Nothing is stored.

    python -m tests.bench.floor_app --broker kafka://127.0.0.1:9092 --datadir /tmp/x [--hops faust|aiokafka]
                                    [--count 4|3]
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys



def topics_of(hops: str, count: int = 4) -> tuple[str, list]:
    """The input topic and the (topic, partitions) of each hop's output, for one kind of hops and their count:
    four as in the worker, or three (the register's hop taken out: a register that reads the input itself)."""
    name = f"bench-floor-{hops}" + ("" if count == 4 else f"-{count}")
    middle = [(f"{name}-1", 4), (f"{name}-2", 4)][:count - 2]
    return f"{name}-in", [*middle, (f"{name}-3", 1), (f"{name}-out", 1)]


def parse_args(argv=None) -> argparse.Namespace:
    """The broker, the data directory and the kind of hops 2 to 4."""
    p = argparse.ArgumentParser(prog="python -m tests.bench.floor_app")
    p.add_argument("--broker", required=True, help="kafka://host:port")
    p.add_argument("--datadir", required=True)
    p.add_argument("--hops", choices=["faust", "aiokafka"], default="faust",
                   help="hops 2 to 4 as Faust agents (the worker's way, the default) or as batch readers like hop 1")
    p.add_argument("--count", type=int, choices=[3, 4], default=4,
                   help="hops: 4 as in the worker (the default), or 3: the register's hop taken out")
    return p.parse_args(argv)


def make_app(args: argparse.Namespace, servers: list):
    """The Faust app with the worker's settings and the worker's local-broker patches."""
    import faust

    from agents.compat import faust_drain, tansu_fetch, tansu_offsets

    app = faust.App(
        f"bench-floor-{args.hops}-{args.count}", broker=args.broker, store="memory://", datadir=args.datadir,
        topic_partitions=4, topic_replication_factor=1, broker_session_timeout=6, broker_heartbeat_interval=1,
        producer_linger=0.0, broker_commit_interval=10.0, broker_commit_every=100_000,
        consumer_auto_offset_reset="latest", table_standby_replicas=0, web_enabled=False,
        stream_wait_empty=False, value_serializer="raw", key_serializer="raw",
    )
    if tansu_offsets.is_local_tansu(servers):
        tansu_offsets.install_tansu_end_offset_fix()
        tansu_fetch.install_fetch_wait(tansu_fetch.wait_from_env())  # as the worker: HARMRANK_TANSU_FETCH_WAIT_MS
    faust_drain.install()
    return app


async def send_envelopes(topic, partitions: int, groups: dict) -> None:
    """One envelope per destination partition; returns once the broker acknowledged them all."""
    from agents import codec

    futures = [await topic.send(value=codec.dumps(items), partition=p % partitions)
               for p, items in groups.items()]
    if futures:
        await asyncio.gather(*futures)


def add_intake(app, args: argparse.Namespace, servers: list, in_topic: str, first_topic, first_n: int,
               within: float) -> None:
    """Hop 1: the worker's `IntakeReader`, each batch on as one envelope per source partition."""
    from agents.compat import tansu_fetch
    from agents.intake import IntakeReader

    async def intake(records: list) -> None:
        groups: dict = {}
        for r in records:
            groups.setdefault(r.partition, []).append([r.timestamp, r.value.decode()])
        await send_envelopes(first_topic, first_n, groups)

    @app.service
    class Intake(IntakeReader):
        def __init__(self, **kwargs):
            super().__init__(topic=in_topic, group_id=f"bench-floor-{args.hops}-{args.count}-intake", bootstrap_servers=servers,
                             handle=intake, fetch_max_wait_ms=tansu_fetch.current_wait_ms(), window_s=within,
                             **kwargs)


def add_faust_hop(app, src, dst, dst_n: int, within: float) -> None:
    """A hop as a Faust agent with the worker's batching; acks its input once the output is acknowledged."""
    from agents import codec
    from agents.topology import BATCH

    async def forward(stream):
        async for events in stream.noack_take(BATCH, within=within):
            groups: dict = {}
            for e in events:
                groups.setdefault(e.message.partition, []).extend(codec.loads(e.message.value))
            await send_envelopes(dst, dst_n, groups)
            for e in events:
                await stream.ack(e)

    forward.__name__ = "forward_" + src.get_topic_name().replace("-", "_")
    app.agent(src, name=forward.__name__)(forward)


def add_reader_hop(app, args: argparse.Namespace, servers: list, i: int, hops: list, topics: list) -> None:
    """Hop ``i + 1`` as a batch reader like hop 1 (``--hops aiokafka``)."""
    from agents import codec
    from agents.compat import tansu_fetch
    from agents.intake import IntakeReader

    src, dst, dst_n = hops[i][0], topics[i + 1], hops[i + 1][1]

    async def forward(records: list) -> None:
        groups: dict = {}
        for r in records:
            groups.setdefault(r.partition, []).extend(codec.loads(r.value))
        await send_envelopes(dst, dst_n, groups)

    class Hop(IntakeReader):
        def __init__(self, **kwargs):
            super().__init__(topic=src, group_id=f"bench-floor-{args.hops}-{args.count}-{i}", bootstrap_servers=servers,
                             handle=forward, fetch_max_wait_ms=tansu_fetch.current_wait_ms(), **kwargs)

    Hop.__name__ = f"Hop{i}"
    app.service(Hop)


def quiet_faust_logs(app) -> None:
    """Faust's and aiokafka's loggers at WARNING, as the worker has them."""
    @app.task
    async def quiet():
        for name in ("aiokafka", "faust", "mode", "kafka"):
            logging.getLogger(name).setLevel(logging.WARNING)


def main(argv=None) -> int:
    args = parse_args(argv)
    in_topic, hops = topics_of(args.hops, args.count)

    import faust

    from agents.settings import Settings

    within = Settings.from_env().batch_window_ms / 1000.0  # as the worker: HARMRANK_BATCH_WINDOW_MS
    servers = [args.broker.split("://", 1)[-1]]
    app = make_app(args, servers)
    topics = [app.topic(name, partitions=n, key_serializer="raw", value_serializer="raw") for name, n in hops]
    add_intake(app, args, servers, in_topic, topics[0], hops[0][1], within)
    for i in range(len(topics) - 1):
        if args.hops == "faust":
            add_faust_hop(app, topics[i], topics[i + 1], hops[i + 1][1], within)
        else:
            add_reader_hop(app, args, servers, i, hops, topics)
    quiet_faust_logs(app)

    worker = faust.Worker(app, loglevel="warning", redirect_stdouts=False)
    worker.spinner = None
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
