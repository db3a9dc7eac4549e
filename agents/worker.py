"""`harmrank worker`: the stream processor (SPEC §5), one process of the consumer group.

It checks its settings, the harm table and the broker before Faust starts, so a
mistake is one clear line and a non-zero exit rather than a traceback.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional

from schemas.harm_table import HarmTableError, load_harm_table

from .access import load_named_tokens
from .audit import AUDIT_TOPIC
from .settings import add_common_args, settings_from_args

log = logging.getLogger("harmrank")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="harmrank worker",
                                     description="Consume crime-reports, keep the rolling ranking, emit harm-ranking.")
    add_common_args(parser)
    parser.add_argument("--loglevel", default="info",
                        help="worker log level (default info; Faust's own chatter is kept at warning)")
    args = parser.parse_args(argv)
    loglevel = args.__dict__.pop("loglevel")
    from . import tansu_fetch

    try:
        settings = settings_from_args(args)
        harm = load_harm_table(settings.harm_table)
        fetch_wait_ms = tansu_fetch.wait_from_env()  # used only with the local broker; checked first all the same
    except (ValueError, HarmTableError, OSError) as exc:
        print(f"harmrank worker: {exc}", file=sys.stderr)
        return 2
    try:
        named_users = load_named_tokens(settings.api_tokens) if settings.api_tokens else {}
    except ValueError as exc:
        print(f"harmrank worker: HARMRANK_API_TOKENS: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"harmrank worker: HARMRANK_API_TOKENS: cannot read {settings.api_tokens}: {exc.strerror}",
              file=sys.stderr)
        return 2

    from .broker import BrokerError, ensure_topics, kafka_reachable

    servers = settings.bootstrap_servers
    if not kafka_reachable(servers, timeout=10):
        print(f"harmrank worker: no Kafka broker answers at {','.join(servers)} "
              f"(start one with 'harmrank broker' or set HARMRANK_BROKER)", file=sys.stderr)
        return 2
    from . import epoch, faust_drain, faust_seek, metrics, tansu_offsets
    from .topology import STAGE_INPUTS, build_app
    from .web import install_views

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    try:
        note = epoch.reconcile(servers, settings.data_dir)
        ensure_topics(servers, {settings.input_topic: settings.partitions, settings.output_topic: 1,
                                settings.dlq_topic: 1, AUDIT_TOPIC: 1})
    except (BrokerError, epoch.LayoutMismatch) as exc:
        print(f"harmrank worker: {exc}", file=sys.stderr)
        return 2
    log.info("broker epoch: %s", note)
    if tansu_offsets.is_local_tansu(servers):
        tansu_offsets.install_tansu_end_offset_fix()
        log.info("local tansu broker: end offsets refined from the fetch high watermark")
        tansu_fetch.install_fetch_wait(fetch_wait_ms)
    faust_drain.install()
    faust_seek.install(STAGE_INPUTS)
    if not settings.api_token and not named_users:
        log.warning("neither HARMRANK_API_TOKEN nor HARMRANK_API_TOKENS is set: /ranking and /suspects are "
                    "closed (403)")
    elif named_users:
        log.info("API users: %d named in HARMRANK_API_TOKENS%s", len(named_users),
                 ", and the shared token" if settings.api_token else "")
    metrics.prime()

    app, rt = build_app(settings, harm)
    install_views(app, rt)

    @app.task
    async def quiet_and_roomy():
        """After Faust set up logging: keep library debug records off the hot path, and let
        a batch's changelog writes queue without stalling the agent at Faust's default 100."""
        for name in ("aiokafka", "faust", "mode", "kafka"):
            logging.getLogger(name).setLevel(logging.WARNING)
        app.producer.buffer.max_messages = 20_000

    @app.timer(interval=0.5)
    async def readiness():
        ready = app.tables.recovery.completed.is_set() and not app.rebalancing
        if ready and not rt.ready:
            log.info("ready: recovered and assigned; web on http://%s:%s", settings.web_host, settings.web_port)
        rt.ready = ready
        metrics.WORKER_READY.set(1 if ready else 0)

    from faust.worker import Worker

    from streams.gcpolicy import tune_for_streaming

    tune_for_streaming()  # a stage's batches would otherwise set off a full collection every second or so
    worker = Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.spinner = None  # no terminal control codes in logs
    worker.execute_from_commandline()
    return 0
