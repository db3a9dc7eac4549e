"""The security keyword arguments of every Kafka client harmrank makes, from the settings (SPEC §9).

One function per client family, so no client is made without them: `faust_kwargs`
for the worker's Faust app, `aiokafka_kwargs` for aiokafka's own clients (the
intake's reader, the tansu end-offset fix), `kafka_python_kwargs` for
kafka-python (publish, follow, the epoch check, the topic admin, the demo). With
`PLAINTEXT` (the default) each is empty, so the clients keep their defaults.
"""
from __future__ import annotations

import ssl
from typing import Any, Optional

from .settings import TLS_PROTOCOLS, Settings

SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")


def ssl_context(settings: Settings) -> Optional[ssl.SSLContext]:
    """The TLS client context the settings built and checked; None without TLS."""
    return settings.tls_context


def _common(settings: Settings) -> dict:
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    kwargs: dict[str, Any] = {"security_protocol": protocol}
    if protocol in TLS_PROTOCOLS:
        kwargs["ssl_context"] = ssl_context(settings)
    if protocol in SASL_PROTOCOLS:
        kwargs.update(sasl_mechanism=settings.kafka_sasl_mechanism,
                      sasl_plain_username=settings.kafka_sasl_username,
                      sasl_plain_password=settings.kafka_sasl_password)
    return kwargs


def aiokafka_kwargs(settings: Settings) -> dict:
    """For AIOKafkaConsumer / AIOKafkaProducer / AIOKafkaAdminClient."""
    return _common(settings)


def kafka_python_kwargs(settings: Settings) -> dict:
    """For kafka-python's KafkaProducer / KafkaConsumer / KafkaAdminClient."""
    return _common(settings)


def faust_kwargs(settings: Settings) -> dict:
    """For `faust.App(...)`: its `broker_credentials` (Faust hands them to every aiokafka client it makes)."""
    import faust

    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    if protocol == "SSL":
        return {"broker_credentials": faust.SSLCredentials(ssl_context(settings))}
    return {"broker_credentials": faust.SASLCredentials(
        username=settings.kafka_sasl_username, password=settings.kafka_sasl_password,
        ssl_context=ssl_context(settings), mechanism=settings.kafka_sasl_mechanism)}
