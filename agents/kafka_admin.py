"""Talking to any Kafka broker before the clients start: is it there, and are the topics made.

`kafka_reachable` sends a raw ApiVersions request (answered before any SASL
handshake), over TLS when the settings ask for it; `ensure_topics` creates
missing topics with kafka-python's admin client. Both take the security
arguments of `agents.kafka_clients`.
"""
from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import time
from typing import Any, Iterable, Mapping, Optional, Union

__all__ = ["BrokerError", "api_versions", "ensure_topics", "kafka_reachable", "reachable_servers"]


class BrokerError(RuntimeError):
    """A broker could not be found, started or reached."""


def api_versions(host: str, port: int, timeout: float = 1.0, ssl_context: Optional[ssl.SSLContext] = None) -> bool:
    """Send a raw ApiVersions v0 request; True when a well-formed answer comes back."""
    correlation_id = 0x6872  # "hr"
    client_id = b"harmrank"
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            s = ssl_context.wrap_socket(raw, server_hostname=host) if ssl_context is not None else raw
            with s:
                s.settimeout(timeout)
                s.sendall(struct.pack(">i", len(body)) + body)
                (size,) = struct.unpack(">i", _recv_exact(s, 4))
                if size < 6 or size > 1 << 20:
                    return False
                cid, error_code = struct.unpack(">ih", _recv_exact(s, size)[:6])
                return cid == correlation_id and error_code == 0
    except (OSError, struct.error):  # ssl.SSLError is an OSError
        return False


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


def _servers(bootstrap: Union[str, Iterable[str]]) -> list[str]:
    from agents.settings import bootstrap_servers

    return bootstrap_servers(bootstrap) if isinstance(bootstrap, str) else list(bootstrap)


def kafka_reachable(bootstrap: Union[str, Iterable[str]], timeout: float = 3.0,
                    ssl_context: Optional[ssl.SSLContext] = None) -> bool:
    """True when some bootstrap server answers a Kafka ApiVersions request in time."""
    servers = _servers(bootstrap)
    deadline = time.monotonic() + timeout
    while True:
        for server in servers:
            host, _, port = server.rpartition(":")
            wait = min(1.0, max(0.1, deadline - time.monotonic()))
            if api_versions(host.strip("[]"), int(port), timeout=wait, ssl_context=ssl_context):
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def reachable_servers(bootstrap: Union[str, Iterable[str]], timeout: float = 5.0,
                      ssl_context: Optional[ssl.SSLContext] = None) -> list[str]:
    """The bootstrap servers as a list, or BrokerError when none of them answers in `timeout` s."""
    servers = _servers(bootstrap)
    if not kafka_reachable(servers, timeout=timeout, ssl_context=ssl_context):
        tls = " over TLS" if ssl_context is not None else ""
        raise BrokerError(f"broker unreachable{tls} at {','.join(servers)}")
    return servers


def ensure_topics(bootstrap: Union[str, Iterable[str]], topics: Mapping[str, int], timeout: float = 10.0,
                  **client_kwargs: Any) -> None:
    """Create each topic with its number of partitions, unless it exists already.

    Idempotent. Raises ``BrokerError`` if the broker cannot be reached in ``timeout`` s.
    An existing topic keeps its partitions (tansu cannot add partitions anyway).
    ``client_kwargs`` are kafka-python's security arguments (`kafka_clients.kafka_python_kwargs`).
    """
    servers = _servers(bootstrap)
    if not topics:
        return
    with quiet_kafka_import():
        from kafka.admin import KafkaAdminClient, NewTopic
        from kafka.errors import KafkaError, TopicAlreadyExistsError
    reachable_servers(servers, timeout=min(timeout, 5.0), ssl_context=client_kwargs.get("ssl_context"))
    deadline = time.monotonic() + timeout
    admin = None
    try:
        while admin is None:
            try:
                admin = KafkaAdminClient(bootstrap_servers=servers, client_id="harmrank-admin",
                                         request_timeout_ms=int(max(1.0, timeout) * 1000), **client_kwargs)
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
        _wait_visible(admin, topics, deadline, timeout)
    finally:
        if admin is not None:
            with contextlib.suppress(Exception):
                admin.close()


def _wait_visible(admin: Any, topics: Mapping[str, int], deadline: float, timeout: float) -> None:
    """Wait until the metadata shows every topic."""
    while True:
        present = set(admin.list_topics())
        if all(name in present for name in topics):
            return
        if time.monotonic() > deadline:
            absent = sorted(set(topics) - present)
            raise BrokerError(f"topics not visible after {timeout:g} s: {', '.join(absent)}")
        time.sleep(0.1)


@contextlib.contextmanager
def quiet_kafka_import():
    """kafka-python 3.x prints a DeprecationWarning on import; keep the commands quiet."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield
