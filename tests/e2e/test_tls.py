"""End-to-end over TLS: publish, a worker and follow reach the broker only through a TLS-terminating proxy.

The local broker speaks plaintext, so the test puts a small asyncio proxy in
front of it that terminates TLS with a certificate made here by openssl, and
the broker advertises the proxy's port: every connection any client makes,
bootstrap or not, goes through TLS (a plaintext client is refused). The
worker's ranking must still equal `harmrank rank` of the same file.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import subprocess
import threading
from dataclasses import dataclass

import pytest

from streams.simulate import generate

from .conftest import batch_rank, clean_env, replay_membership, run_cli, write_feed

pytestmark = pytest.mark.e2e

FEED_EVENTS = 4000


def make_certificate(directory):
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key, by openssl."""
    cert, key = directory / "broker.pem", directory / "broker.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:TRUE",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


class TlsProxy:
    """TLS on 127.0.0.1:`port`, plain TCP to 127.0.0.1:`target`: a TLS-terminating load balancer in miniature."""

    def __init__(self, port: int, target: int, cert, key):
        self.port, self.target = port, target
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(cert), str(key))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tls-proxy", daemon=True)
        self.server = None

    def start(self) -> "TlsProxy":
        self.thread.start()
        serve = asyncio.start_server(self._connection, "127.0.0.1", self.port, ssl=self.context)
        self.server = asyncio.run_coroutine_threadsafe(serve, self.loop).result(10)
        return self

    async def _connection(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    def stop(self) -> None:
        if self.server is not None:
            self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def _pipe(reader, writer) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, ConnectionError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@dataclass
class TlsBroker:
    url: str  # what clients are given: the proxy
    security: dict  # the HARMRANK_KAFKA_* settings that reach it


@pytest.fixture
def tls_broker(tmp_path):
    from agents.local_broker import LocalBroker, free_port

    cert, key = make_certificate(tmp_path)
    proxy_port = free_port()
    broker = LocalBroker(port=free_port(), advertised=f"127.0.0.1:{proxy_port}")
    proxy = TlsProxy(proxy_port, broker.port, cert, key).start()
    try:
        broker.start(timeout=15)
        yield TlsBroker(f"kafka://127.0.0.1:{proxy_port}",
                        {"kafka_security_protocol": "SSL", "kafka_ssl_cafile": str(cert)})
    finally:
        broker.stop()
        proxy.stop()


def test_publish_worker_and_follow_over_tls(tls_broker, workers, tmp_path):
    feed = write_feed(tmp_path / "feed.jsonl", generate(seed=7, events=FEED_EVENTS, invalid_rate=0.005))
    expected = batch_rank(feed)
    assert len(expected) == 100, "the feed should fill a top 100"

    plain = run_cli(["publish", str(feed)], clean_env(broker=tls_broker.url))
    assert plain.returncode == 2 and b"unreachable" in plain.stderr, plain.stderr[-500:]

    worker = workers(tls_broker, **tls_broker.security).start()
    worker.wait_ready()
    published = run_cli(["publish", str(feed)], clean_env(broker=tls_broker.url, **tls_broker.security))
    assert published.returncode == 0, published.stderr[-2000:]
    worker.wait_ranking_equals(expected, timeout=120)

    followed = run_cli(["follow", "--from-beginning", "--json", "--timeout", "5"],
                       clean_env(broker=tls_broker.url, **tls_broker.security))
    assert followed.returncode == 0, followed.stderr[-2000:]
    events = [json.loads(line) for line in followed.stdout.splitlines()]
    assert replay_membership(events, top_n=100) == {r["suspect_id"] for r in expected}
