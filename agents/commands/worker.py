"""`harmrank worker`: the stream processor (SPEC §5), in one process or one per core.

It checks its settings, the harm table and the broker before Faust starts, so a
mistake is one clear line and a non-zero exit rather than a traceback. With
HARMRANK_PROCESSES (default: one per core) above 1 it runs the supervisor
(agents/supervisor.py), whose children are this command with HARMRANK_PROCESSES=1.
"""
from __future__ import annotations

import argparse
import logging
import os
from typing import Optional

from schemas.harm_table import HarmTableError, load_harm_table

from ..settings import Settings, add_common_args
from . import Fail, command, settings_of

log = logging.getLogger("harmrank")
PROG = "harmrank worker"


def _checked(args: argparse.Namespace) -> tuple:
    """(settings, harm table, the work-arounds put in), or Fail: all checked before Faust starts."""
    from .. import compat
    from ..topology import STAGE_INPUTS

    settings = settings_of(args)
    try:
        harm = load_harm_table(settings.harm_table)
        work_arounds = compat.install(settings, STAGE_INPUTS)
    except (ValueError, HarmTableError, OSError) as exc:
        raise Fail(str(exc)) from None
    return settings, harm, work_arounds


def _named_users(settings: Settings) -> dict:
    """The named users of HARMRANK_API_TOKENS, or Fail naming the file's faulty line (never a hash)."""
    from ..access import load_named_tokens

    try:
        return load_named_tokens(settings.api_tokens) if settings.api_tokens else {}
    except ValueError as exc:
        raise Fail(f"HARMRANK_API_TOKENS: {exc}") from None
    except OSError as exc:
        raise Fail(f"HARMRANK_API_TOKENS: cannot read {settings.api_tokens}: {exc.strerror}") from None


def _processes(args: argparse.Namespace) -> int:
    from ..supervisor import processes_of

    try:
        return processes_of(args.__dict__.pop("processes"), os.environ)
    except ValueError as exc:
        raise Fail(str(exc)) from None


def _broker_ready(settings: Settings) -> str:
    """Check the broker answers, its epoch and the topics (agents/epoch.py); returns the epoch's note."""
    from .. import epoch
    from ..audit import AUDIT_TOPIC
    from ..kafka_admin import BrokerError, ensure_topics, kafka_reachable
    from ..kafka_clients import kafka_python_kwargs, ssl_context

    servers = settings.bootstrap_servers
    if not kafka_reachable(servers, timeout=10, ssl_context=ssl_context(settings)):
        raise Fail(f"no Kafka broker answers at {','.join(servers)} ({settings.kafka_security_protocol}; "
                   f"start one with 'harmrank broker' or set HARMRANK_BROKER)")
    client = kafka_python_kwargs(settings)
    try:
        note = epoch.reconcile(servers, settings.data_dir, client)
        ensure_topics(servers, {settings.input_topic: settings.partitions, settings.output_topic: 1,
                                settings.dlq_topic: 1, AUDIT_TOPIC: 1}, **client)
    except (BrokerError, epoch.LayoutMismatch) as exc:
        raise Fail(str(exc)) from None
    return note


@command(PROG)
def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG,
                                     description="Consume crime-reports, keep the rolling ranking, emit harm-ranking.")
    add_common_args(parser)
    parser.add_argument("--loglevel", default="info",
                        help="worker log level (default info; Faust's own chatter is kept at warning)")
    parser.add_argument("--processes", default=None,
                        help="worker processes (HARMRANK_PROCESSES; default one per core; 1: this process alone)")
    args = parser.parse_args(argv)
    loglevel = args.__dict__.pop("loglevel")
    processes = _processes(args)
    if processes > 1:
        return _supervise(args, processes, loglevel)
    settings, harm, work_arounds = _checked(args)
    named_users = _named_users(settings)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    log.info("broker epoch: %s", _broker_ready(settings))
    log.info("work-arounds: %s", "; ".join(work_arounds))
    if not settings.api_token and not named_users:
        log.warning("neither HARMRANK_API_TOKEN nor HARMRANK_API_TOKENS is set: the personal-data paths are "
                    "closed (403)")
    elif named_users:
        log.info("API users: %d named in HARMRANK_API_TOKENS%s", len(named_users),
                 ", and the shared token" if settings.api_token else "")
    _run(settings, harm, loglevel)
    return 0


def _supervise(args: argparse.Namespace, processes: int, loglevel: str) -> int:
    """Check what the children would, once; then run them under the supervisor until a signal."""
    import asyncio

    from ..supervisor import PortTaken, Supervisor, child_settings

    settings = settings_of(args)
    try:
        load_harm_table(settings.harm_table)
    except (HarmTableError, OSError) as exc:
        raise Fail(str(exc)) from None
    _named_users(settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    supervisor = Supervisor(settings, processes, ["--loglevel", loglevel], os.environ)
    for child in supervisor.children:  # one at a time: the first writes a new broker's epoch
        log.info("p%d broker epoch: %s", child.index, _broker_ready(child_settings(settings, child.index, child.port)))
    log.info("starting %d worker processes", processes)
    try:
        return asyncio.run(supervisor.run())
    except PortTaken as exc:
        raise Fail(str(exc)) from None


def _run(settings: Settings, harm, loglevel: str) -> None:
    """Build the app and run the Faust worker until it stops."""
    from .. import metrics
    from ..topology import build_app
    from ..web import install_views

    metrics.prime(tuple(spec.name for spec in settings.list_specs))
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

    _stop_without_supervisor(app)

    from faust.worker import Worker

    from streams.gcpolicy import tune_for_streaming

    tune_for_streaming()  # a stage's batches would otherwise set off a full collection every second or so
    worker = Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.spinner = None  # no terminal control codes in logs
    worker.execute_from_commandline()


def _stop_without_supervisor(app) -> None:
    """A child of the supervisor stops itself when the supervisor is gone (killed with -9, say)."""
    from ..supervisor import SUPERVISOR_PID_VAR

    supervisor = os.environ.get(SUPERVISOR_PID_VAR)
    if not supervisor:
        return

    @app.timer(interval=1.0)
    async def orphaned():
        if str(os.getppid()) != supervisor:
            log.warning("the supervisor (pid %s) is gone: stopping", supervisor)
            import signal
            os.kill(os.getpid(), signal.SIGTERM)
