"""agents.compat.faust_drain: Faust's drain without wait_first still delivers every message, in order.

The worker's end-to-end tests (stream equals batch, kill -9, two workers sharing the
partitions) run with the patch installed; this test shows it on a bare Faust app.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from kafka import KafkaProducer

from agents.compat import faust_drain

REPO = Path(__file__).resolve().parents[3]

APP = textwrap.dedent(
    """
    import json, os, sys
    import faust
    from agents.compat import faust_drain

    BOOT, TOPIC, OUT, N = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    assert faust_drain.install()
    app = faust.App("drain-" + TOPIC, broker=f"kafka://{BOOT}", store="memory://", web_enabled=False,
                    broker_session_timeout=6, consumer_auto_offset_reset="earliest", topic_partitions=2)
    src = app.topic(TOPIC, value_serializer="raw", key_serializer="raw", partitions=2)
    seen = {}

    @app.agent(src)
    async def take(stream):
        async for events in stream.noack_take(50, within=0.01):
            for e in events:
                seen.setdefault(e.message.partition, []).append(int(e.message.value))
                await stream.ack(e)
            if sum(len(v) for v in seen.values()) >= N:
                with open(OUT + ".tmp", "w") as fh:
                    json.dump(seen, fh)
                os.replace(OUT + ".tmp", OUT)

    faust.Worker(app, loglevel="warning", redirect_stdouts=False).execute_from_commandline()
    """
)


def test_install_replaces_the_drain_and_uninstall_restores_it():
    from faust.transport.consumer import Consumer

    original = Consumer._drain_messages
    try:
        assert faust_drain.install() is True
        assert faust_drain.install() is False
        assert Consumer._drain_messages is faust_drain._drain_messages
    finally:
        faust_drain.uninstall()
    assert Consumer._drain_messages is original and not faust_drain.is_installed()


def test_every_message_is_delivered_in_partition_order(broker, fresh_topics, tmp_path):
    topic, out, n = fresh_topics("drain"), tmp_path / "seen.json", 400
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=2)
    for i in range(n):
        producer.send(topic, value=str(i).encode(), partition=i % 2)
    producer.flush()
    producer.close()
    script = tmp_path / "app.py"
    script.write_text(APP)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script), broker.bootstrap, topic, str(out), str(n), "worker"],
                            env=env, cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert out.exists(), proc.stdout.read().decode(errors="replace")[-3000:] if proc.poll() is not None else "timeout"
        seen = json.loads(out.read_text())
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert seen == {"0": list(range(0, n, 2)), "1": list(range(1, n, 2))}
