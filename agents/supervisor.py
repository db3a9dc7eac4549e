"""`harmrank worker` with HARMRANK_PROCESSES > 1: several worker processes behind one port.

Python runs one stage at a time per process; a worker process per core puts every
core to work. The supervisor is this module; the workers are its children:

- Each child is `harmrank worker` with HARMRANK_PROCESSES=1, its own data directory
  (`DATA_DIR/p<i>`) and its own web port (picked free at start, kept across its
  restarts), bound to WEB_HOST as the public port is: a full worker (Faust app and
  intake reader) in the one consumer group, exactly as separate workers are, so the
  partitions are shared and each child reaches the others through its canonical URL.
- The supervisor holds no state and no Kafka consumer. It serves the public WEB_PORT
  itself: `/readyz` is 200 only while every child is up and ready; `/healthz` is 503
  while any child is down, not answering, or failing a stage; `/metrics` is its own
  series (`harmrank_child_restarts_total`, `harmrank_processes`, `harmrank_processes_up`)
  and every child's, each labelled `process="<i>"` (the child's index, a closed set of
  HARMRANK_PROCESSES values); any other path (`/ranking`, `/suspects/...`) is passed
  with its headers to a ready child, which applies the token gate and the audit and
  routes to the owner of the partition as any worker does. A small proxy was chosen
  over "child 0 binds the public port": the port then answers while any child is down,
  and one place sees all the children for readiness and health.
- The broker checks run once, in the supervisor, before any child starts: the broker
  epoch (agents/epoch.py) is reconciled for each child's data directory in turn (the
  first writes it on a new broker, the others read it) and the topics are created. The
  children's own checks then only read, so N of them starting together is safe.
- All children start together: the local broker holds each JoinGroup for half the
  session timeout, so children that join within that window settle in one rebalance,
  where one started after another is ready sets off a second.
- SIGTERM or SIGINT stops every child with SIGTERM (SIGKILL after a grace period), then
  the supervisor. A child that exits on its own is restarted with backoff (1 s, doubled
  up to 30 s, back to 1 s once it has run a minute); each restart is logged and counted.
  A child that exits with the usage code (2: a bad setting) before it was ever ready
  stops the whole command with that code: a restart would fail the same way. A child
  whose supervisor is gone stops itself (HARMRANK_SUPERVISOR_PID, agents/commands/worker.py).
- The children's log lines are the supervisor's output, each prefixed `p<i> `.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from .settings import ENV_PREFIX, Settings

log = logging.getLogger("harmrank")

PROCESSES_VAR = ENV_PREFIX + "PROCESSES"
#: The variable that tells a child which process is its supervisor.
SUPERVISOR_PID_VAR = ENV_PREFIX + "SUPERVISOR_PID"
EXIT_USAGE = 2  # agents/commands: a bad setting; the same again on every restart
BACKOFF_FIRST, BACKOFF_MAX, STEADY_SECONDS = 1.0, 30.0, 60.0
STOP_GRACE_SECONDS = 30.0
POLL_SECONDS = 0.5
CHILD_TIMEOUT_SECONDS = 5.0
#: Request headers passed on to the child (the token, and what the client accepts).
PASSED_HEADERS = ("Authorization", "Accept", "Content-Type")

REGISTRY = CollectorRegistry(auto_describe=True)
RESTARTS = Counter("harmrank_child_restarts_total",
                   "Worker processes restarted by the supervisor after they exited on their own "
                   "(HARMRANK_PROCESSES > 1). Any increase: read the log for why the child exited.",
                   registry=REGISTRY)
PROCESSES = Gauge("harmrank_processes", "Worker processes the supervisor keeps running (HARMRANK_PROCESSES).",
                  registry=REGISTRY)
PROCESSES_UP = Gauge("harmrank_processes_up", "Worker processes running now; less than harmrank_processes "
                     "while a child is being restarted.", registry=REGISTRY)


def default_processes() -> int:
    """One per core this process may run on (its CPU affinity; os.cpu_count() where there is none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def processes_of(flag: Optional[str], environ: Mapping[str, str]) -> int:
    """The number of worker processes: --processes, else HARMRANK_PROCESSES, else one per core.

    Raises ValueError naming the flag or the variable for anything but a positive integer."""
    source, value = ("--processes", flag) if flag is not None else (PROCESSES_VAR, environ.get(PROCESSES_VAR))
    if value is None or (source == PROCESSES_VAR and not value.strip()):
        return default_processes()
    try:
        n = int(value.strip())
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{source} must be a positive integer, got {value!r}")
    return n


class PortTaken(OSError):
    """The public web port cannot be bound."""


@dataclass
class Child:
    """One worker process: its index, data directory and port, and its current process."""

    index: int
    data_dir: Path
    port: int
    proc: Optional[asyncio.subprocess.Process] = None
    ready: bool = False
    healthy: bool = False
    ever_ready: bool = False
    started: float = 0.0
    failures: int = 0  # exits in a row, each after less than STEADY_SECONDS of running
    failing_stages: list = field(default_factory=list)

    @property
    def up(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def name(self) -> str:
        return f"p{self.index}"


def child_settings(settings: Settings, index: int, port: int) -> Settings:
    """The settings of child `index`: the supervisor's, with its own data directory and web port."""
    return settings.replace(data_dir=str(Path(settings.data_dir) / f"p{index}"), web_port=port)


def child_env(settings: Settings, environ: Mapping[str, str]) -> dict:
    """The environment of a child: the supervisor's, with every setting as resolved (flags included)."""
    env = dict(environ)
    for name, value in vars(settings).items():
        if value is not None:
            env[ENV_PREFIX + name.upper()] = str(value)
    env[PROCESSES_VAR] = "1"
    env[SUPERVISOR_PID_VAR] = str(os.getpid())
    env["PYTHONUNBUFFERED"] = "1"
    return env


def merged_metrics(texts: Mapping[int, str]) -> bytes:
    """The supervisor's series and every child's exposition text, the child's labelled process="<i>"."""
    families: dict = {}
    for index, text in sorted(texts.items()):
        for fam in text_string_to_metric_families(text):
            merged = families.setdefault(fam.name, Metric(fam.name, fam.documentation, fam.type, fam.unit))
            for s in fam.samples:
                merged.add_sample(s.name, {**s.labels, "process": str(index)}, s.value, s.timestamp, s.exemplar)

    class Children:
        def collect(self):
            return list(families.values())

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Children())
    return generate_latest(REGISTRY) + generate_latest(registry)


class Supervisor:
    """Starts the children, keeps them running, serves the public port; `run()` until a signal."""

    def __init__(self, settings: Settings, processes: int, argv: list, environ: Mapping[str, str],
                 command: Optional[list] = None):
        from .local_broker import free_port

        self.settings = settings
        self.command = [*(command or [sys.executable, "-m", "agents.cli", "worker"]), *argv]
        self.environ = environ
        any_address = settings.web_host in ("0.0.0.0", "::", "")
        self.child_host = "127.0.0.1" if any_address else settings.web_host  # where the children answer
        ports: list = []
        while len(ports) < processes:  # free now, and none of them the public port (bound later)
            port = free_port(self.child_host)
            if port != settings.web_port and port not in ports:
                ports.append(port)
        self.children = [Child(i, Path(settings.data_dir) / f"p{i}", port) for i, port in enumerate(ports)]
        self.stopping = asyncio.Event()
        self.exit_code = 0
        self.http = None  # aiohttp.ClientSession, made inside the loop
        PROCESSES.set(processes)

    # -- the children ------------------------------------------------------------------

    async def start(self, child: Child) -> None:
        env = child_env(child_settings(self.settings, child.index, child.port), self.environ)
        child.proc = await asyncio.create_subprocess_exec(
            *self.command, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        child.started = time.monotonic()
        child.ready = child.healthy = False
        log.info("%s: started (pid %d, web port %d, data %s)", child.name, child.proc.pid, child.port,
                 child.data_dir)
        PROCESSES_UP.set(sum(c.up for c in self.children))

    async def keep(self, child: Child) -> None:
        """Run the child until the supervisor stops: pass its log on, restart it when it exits."""
        while not self.stopping.is_set():
            await self.start(child)
            await self._pass_log(child)
            code = await child.proc.wait()
            child.ready = child.healthy = False
            PROCESSES_UP.set(sum(c.up for c in self.children))
            if self.stopping.is_set():
                return
            how = f"signal {-code}" if code < 0 else f"code {code}"
            if code == EXIT_USAGE and not child.ever_ready:
                log.error("%s: exited with %s before it was ever ready: stopping every process", child.name, how)
                self.exit_code = EXIT_USAGE
                self.stopping.set()
                return
            ran = time.monotonic() - child.started
            child.failures = 1 if ran >= STEADY_SECONDS else child.failures + 1
            delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (child.failures - 1))
            RESTARTS.inc()
            log.warning("%s: exited with %s after %.0f s; restarting in %g s", child.name, how, ran, delay)
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass

    async def _pass_log(self, child: Child) -> None:
        """Copy the child's output, line by line with its name in front, until it closes."""
        out = sys.stdout.buffer
        prefix = child.name.encode() + b" "
        while True:
            try:
                line = await child.proc.stdout.readline()
            except ValueError:  # a line longer than the stream's limit: pass what there is
                line = await child.proc.stdout.read(65536)
            if not line:
                return
            out.write(prefix + line if line.endswith(b"\n") else prefix + line + b"\n")
            out.flush()

    async def stop_children(self) -> None:
        """SIGTERM every child, SIGKILL what is left after the grace period."""
        live = [c for c in self.children if c.up]
        for c in live:
            c.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*(c.proc.wait() for c in live)), STOP_GRACE_SECONDS)
        except asyncio.TimeoutError:
            for c in live:
                if c.up:
                    log.warning("%s: not stopped after %g s: killing it", c.name, STOP_GRACE_SECONDS)
                    c.proc.kill()
            await asyncio.gather(*(c.proc.wait() for c in live))

    # -- what the children say ---------------------------------------------------------

    async def _get(self, child: Child, path: str) -> tuple[int, bytes]:
        """(status, body) of the child's GET path; status 0 when it does not answer."""
        import aiohttp

        try:
            async with self.http.get(f"http://{self.child_host}:{child.port}{path}") as r:
                return r.status, await r.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return 0, b""

    async def watch(self) -> None:
        """Every POLL_SECONDS: each child's readiness and health; the log says when all are ready."""
        import json

        all_ready = False
        while not self.stopping.is_set():
            for child in self.children:
                if child.up:
                    (ready, _), (health, body) = await asyncio.gather(self._get(child, "/readyz"),
                                                                      self._get(child, "/healthz"))
                    child.ready, child.healthy = child.up and ready == 200, child.up and health == 200
                    child.ever_ready = child.ever_ready or child.ready
                    with_stages = health == 503 and body.startswith(b"{")
                    child.failing_stages = json.loads(body).get("stages", []) if with_stages else []
            now_ready = all(c.ready for c in self.children)
            if now_ready and not all_ready:
                log.info("ready: all %d processes; web on http://%s:%s", len(self.children),
                         self.settings.web_host, self.settings.web_port)
            all_ready = now_ready
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=POLL_SECONDS)
            except asyncio.TimeoutError:
                pass

    # -- the public port ---------------------------------------------------------------

    def web_app(self):
        from aiohttp import web

        async def readyz(request):
            ready = sum(c.up and c.ready for c in self.children)
            body = {"status": "ready" if ready == len(self.children) else "recovering",
                    "processes": len(self.children), "ready": ready}
            return web.json_response(body, status=200 if ready == len(self.children) else 503)

        async def healthz(request):
            down = [c.index for c in self.children if not (c.up and c.healthy)]
            if not down:
                return web.json_response({"status": "ok", "processes": len(self.children)})
            stages = sorted({s for c in self.children for s in c.failing_stages})
            return web.json_response({"status": "failing", "processes_down": down, "stages": stages}, status=503)

        async def metrics(request):
            texts = {}
            for c in self.children:
                status, body = await self._get(c, "/metrics") if c.up else (0, b"")
                if status == 200:
                    texts[c.index] = body.decode()
            return web.Response(body=merged_metrics(texts), content_type="text/plain")

        app = web.Application()
        app.router.add_get("/readyz", readyz)
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/metrics", metrics)
        app.router.add_route("*", "/{tail:.*}", self.proxy)
        return app

    async def proxy(self, request):
        """Pass the request to a ready child (else any that is up); 503 when none answers."""
        import aiohttp
        from aiohttp import web

        order = sorted((c for c in self.children if c.up), key=lambda c: not c.ready)
        headers = {h: request.headers[h] for h in PASSED_HEADERS if h in request.headers}
        body = await request.read()
        for child in order:
            url = f"http://{self.child_host}:{child.port}{request.rel_url}"
            try:
                async with self.http.request(request.method, url, headers=headers, data=body or None) as r:
                    return web.Response(body=await r.read(), status=r.status,
                                        content_type=r.content_type, charset=r.charset)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                continue
        return web.json_response({"error": "no worker process answers"}, status=503)

    # -- the whole ---------------------------------------------------------------------

    async def run(self) -> int:
        import aiohttp
        from aiohttp import web

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CHILD_TIMEOUT_SECONDS))
        runner = web.AppRunner(self.web_app(), access_log=None)
        await runner.setup()
        try:
            try:
                await web.TCPSite(runner, self.settings.web_host, self.settings.web_port).start()
            except OSError as exc:
                raise PortTaken(f"cannot listen on {self.settings.web_host}:{self.settings.web_port} "
                                f"(HARMRANK_WEB_PORT): {exc.strerror}") from None
            tasks = [asyncio.create_task(self.keep(c)) for c in self.children]
            tasks.append(asyncio.create_task(self.watch()))
            await self.stopping.wait()
            log.info("stopping %d processes", len(self.children))
            await self.stop_children()
            await asyncio.gather(*tasks)
        finally:
            await runner.cleanup()
            await self.http.close()
        return self.exit_code
