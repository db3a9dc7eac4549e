"""Shared fixtures: one real tansu broker per test session, and unique topic names."""
from __future__ import annotations

import itertools
import os
import uuid
import warnings
from dataclasses import dataclass

import pytest

warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"kafka(\..*)?")

_counter = itertools.count(1)


@dataclass(frozen=True)
class BrokerInfo:
    url: str  # kafka://127.0.0.1:P
    bootstrap: str  # 127.0.0.1:P
    host: str
    port: int
    process: object  # the agents.local_broker.LocalBroker


@pytest.fixture(scope="session")
def broker():
    """A real tansu broker (in-memory storage) on a free port, for the whole session.

    Set ``HARMRANK_TEST_BROKER=kafka://host:port`` to use an already running broker instead.
    """

    external = os.environ.get("HARMRANK_TEST_BROKER")
    if external:
        from agents.settings import bootstrap_servers

        servers = bootstrap_servers(external)
        host, _, port = servers[0].rpartition(":")
        yield BrokerInfo(url=external, bootstrap=",".join(servers), host=host, port=int(port), process=None)
        return
    lb = start_local_broker()
    try:
        yield BrokerInfo(url=lb.url, bootstrap=lb.bootstrap, host=lb.host, port=lb.port, process=lb)
    finally:
        lb.stop()


def start_local_broker(attempts: int = 3):
    """A started tansu on a free port; a free port can be taken between free_port() and bind."""
    from agents.local_broker import BrokerError, LocalBroker, free_port

    last = None
    for _ in range(attempts):
        lb = LocalBroker(port=free_port())
        try:
            lb.start(timeout=15)
            return lb
        except BrokerError as exc:
            last = exc
    pytest.fail(f"cannot start the tansu broker: {last}")


@pytest.fixture
def fresh_topics(request):
    """A function returning unique topic names: ``fresh_topics("crime-reports")`` ->
    ``"t17-3fa2c1-crime-reports"``. Each call gives a new name, so tests never collide on
    the session broker (whose topics persist until it stops)."""
    prefix = f"t{next(_counter)}-{uuid.uuid4().hex[:6]}"

    def make(name: str = "topic") -> str:
        return f"{prefix}-{next(_counter)}-{name}"

    make.prefix = prefix  # type: ignore[attr-defined]
    return make
