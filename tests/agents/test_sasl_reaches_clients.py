"""SASL settings reach every Kafka client harmrank makes, as that client's keyword arguments.

The local broker has no SASL, so each client's constructor is replaced by one
that records its arguments and refuses to connect (TLS runs end to end in
tests/e2e/test_tls.py).
"""
from __future__ import annotations

import asyncio
import os

import kafka
import kafka.admin
import pytest
from kafka.errors import KafkaError

from agents import epoch, intake, kafka_admin
from agents.commands import follow, publish
from agents.settings import Settings

class Refused(KafkaError):
    """What the recording constructors raise instead of connecting."""


SASL_ENV = {"HARMRANK_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "HARMRANK_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "HARMRANK_KAFKA_SASL_USERNAME": "harmrank", "HARMRANK_KAFKA_SASL_PASSWORD": "s3cret"}
SASL = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "harmrank", "sasl_plain_password": "s3cret"}


@pytest.fixture
def made(monkeypatch):
    """Every kafka-python / aiokafka client made: (class name, keyword arguments); none connects."""
    calls: list = []

    def recorder(name):
        def make(*args, **kwargs):
            calls.append((name, kwargs))
            raise Refused()
        return make

    monkeypatch.setattr(kafka, "KafkaProducer", recorder("KafkaProducer"))
    monkeypatch.setattr(kafka, "KafkaConsumer", recorder("KafkaConsumer"))
    monkeypatch.setattr(kafka.admin, "KafkaAdminClient", recorder("KafkaAdminClient"))
    monkeypatch.setattr(intake, "AIOKafkaConsumer", recorder("AIOKafkaConsumer"))
    monkeypatch.setattr(kafka_admin, "reachable_servers", lambda servers, **kw: list(servers))
    for module in (publish, follow):
        monkeypatch.setattr(module, "reachable_servers", lambda servers, **kw: ["127.0.0.1:1"])
    for name in list(os.environ):
        if name.startswith("HARMRANK_"):
            monkeypatch.delenv(name)
    for name, value in SASL_ENV.items():
        monkeypatch.setenv(name, value)
    return calls


def _carries_sasl(kwargs: dict) -> bool:
    return all(kwargs.get(k) == v for k, v in SASL.items())


def test_publish(made, tmp_path):
    feed = tmp_path / "feed.jsonl"
    feed.write_text('{"event_id": "e1"}\n')
    assert publish.main([str(feed)]) == 2
    assert [name for name, _ in made] == ["KafkaProducer"] and _carries_sasl(made[0][1])


def test_follow(made):
    assert follow.main(["--max", "1"]) == 2
    assert [name for name, _ in made] == ["KafkaConsumer"] and _carries_sasl(made[0][1])


def test_the_topic_admin(made):
    with pytest.raises(kafka_admin.BrokerError):
        kafka_admin.ensure_topics(["127.0.0.1:1"], {"t": 1}, timeout=0.1, **_kafka_python(made))
    assert made and all(name == "KafkaAdminClient" and _carries_sasl(kw) for name, kw in made)


def test_the_epoch_check(made, tmp_path):
    with pytest.raises(Refused):
        epoch.reconcile(["127.0.0.1:1"], str(tmp_path), _kafka_python(made))
    assert [name for name, _ in made] == ["KafkaConsumer"] and _carries_sasl(made[0][1])


def test_the_intake_reader(made):
    from agents.kafka_clients import aiokafka_kwargs

    reader = intake.IntakeReader(topic="t", group_id="g", bootstrap_servers=["127.0.0.1:1"], handle=None,
                                 client_kwargs=aiokafka_kwargs(Settings.from_env()))
    with pytest.raises(Refused):
        asyncio.run(reader.on_start())
    assert [name for name, _ in made] == ["AIOKafkaConsumer"] and _carries_sasl(made[0][1])


def test_the_worker_app(made, tmp_path):
    from agents.topology import build_app
    from schemas.harm_table import load_harm_table

    app, _ = build_app(Settings.from_env(data_dir=str(tmp_path)), load_harm_table(None))
    creds = app.conf.broker_credentials
    assert (creds.protocol.value, creds.mechanism.value, creds.username, creds.password) == (
        "SASL_PLAINTEXT", "SCRAM-SHA-256", "harmrank", "s3cret")


def _kafka_python(made) -> dict:
    """kafka-python's arguments from the SASL environment the fixture set."""
    from agents.kafka_clients import kafka_python_kwargs

    return kafka_python_kwargs(Settings.from_env())
