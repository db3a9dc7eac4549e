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
    from . import compat
    from .topology import STAGE_INPUTS

    try:
        settings = settings_from_args(args)
        harm = load_harm_table(settings.harm_table)
        work_arounds = compat.install(settings, STAGE_INPUTS)
    except (ValueError, HarmTableError, OSError) as exc:
        print(f"harmrank worker: {exc}", file=sys.stderr)
        return 2

    from .broker import BrokerError, ensure_topics, kafka_reachable

    servers = settings.bootstrap_servers
    if not kafka_reachable(servers, timeout=10):
        print(f"harmrank worker: no Kafka broker answers at {','.join(servers)} "
              f"(start one with 'harmrank broker' or set HARMRANK_BROKER)", file=sys.stderr)
        return 2
    from . import epoch, metrics
    from .topology import build_app
    from .web import install_views

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    try:
        note = epoch.reconcile(servers, settings.data_dir)
        ensure_topics(servers, {settings.input_topic: settings.partitions, settings.output_topic: 1,
                                settings.dlq_topic: 1})
    except (BrokerError, epoch.LayoutMismatch) as exc:
        print(f"harmrank worker: {exc}", file=sys.stderr)
        return 2
    log.info("broker epoch: %s", note)
    log.info("work-arounds: %s", "; ".join(work_arounds))
    if not settings.api_token:
        log.warning("HARMRANK_API_TOKEN is not set: /ranking and /suspects are closed (403)")
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
