"""agents.settings KAFKA_* and agents.kafka_clients: the security settings, checked, reach each client family's arguments.

The local broker has no SASL, so SASL is checked here, as the arguments each
client is given; TLS is also run end to end (tests/e2e/test_tls.py).
"""
from __future__ import annotations

import ssl
import subprocess

import pytest

from agents import kafka_clients
from agents.settings import Settings

SASL = {"HARMRANK_KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "HARMRANK_KAFKA_SASL_MECHANISM": "scram-sha-512",
        "HARMRANK_KAFKA_SASL_USERNAME": "harmrank", "HARMRANK_KAFKA_SASL_PASSWORD": "s3cret"}


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    """A self-signed certificate and its key, made by openssl."""
    d = tmp_path_factory.mktemp("cert")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=harmrank",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")], check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


def test_plaintext_adds_nothing_to_any_client():
    s = Settings.from_env({})
    assert kafka_clients.aiokafka_kwargs(s) == kafka_clients.kafka_python_kwargs(s) == {}
    assert kafka_clients.faust_kwargs(s) == {}


def test_sasl_ssl_reaches_every_family(cert):
    s = Settings.from_env({**SASL, "HARMRANK_KAFKA_SSL_CAFILE": str(cert[0])})
    for kwargs in (kafka_clients.aiokafka_kwargs(s), kafka_clients.kafka_python_kwargs(s)):
        assert kwargs["security_protocol"] == "SASL_SSL"
        assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
        assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("harmrank", "s3cret")
        assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
        assert kwargs["ssl_context"].verify_mode == ssl.CERT_REQUIRED and kwargs["ssl_context"].check_hostname
    creds = kafka_clients.faust_kwargs(s)["broker_credentials"]
    assert (creds.username, creds.password, creds.mechanism.value, creds.protocol.value) == (
        "harmrank", "s3cret", "SCRAM-SHA-512", "SASL_SSL")
    assert isinstance(creds.ssl_context, ssl.SSLContext)


def test_sasl_plaintext_has_no_tls():
    s = Settings.from_env({**SASL, "HARMRANK_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                           "HARMRANK_KAFKA_SASL_MECHANISM": "PLAIN"})
    kwargs = kafka_clients.kafka_python_kwargs(s)
    assert kwargs["security_protocol"] == "SASL_PLAINTEXT" and "ssl_context" not in kwargs
    assert kwargs["sasl_mechanism"] == "PLAIN"
    creds = kafka_clients.faust_kwargs(s)["broker_credentials"]
    assert creds.protocol.value == "SASL_PLAINTEXT" and creds.ssl_context is None


def test_ssl_with_a_client_certificate(cert):
    s = Settings.from_env({"HARMRANK_KAFKA_SECURITY_PROTOCOL": "SSL", "HARMRANK_KAFKA_SSL_CAFILE": str(cert[0]),
                           "HARMRANK_KAFKA_SSL_CERTFILE": str(cert[0]), "HARMRANK_KAFKA_SSL_KEYFILE": str(cert[1])})
    kwargs = kafka_clients.aiokafka_kwargs(s)
    assert kwargs["security_protocol"] == "SSL" and "sasl_mechanism" not in kwargs
    assert kafka_clients.faust_kwargs(s)["broker_credentials"].protocol.value == "SSL"


def test_flags_win_over_the_environment(cert):
    s = Settings.from_env({"HARMRANK_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}, kafka_security_protocol="SSL",
                          kafka_ssl_cafile=str(cert[0]))
    assert kafka_clients.kafka_python_kwargs(s)["security_protocol"] == "SSL"


@pytest.mark.parametrize("env,message", [
    ({"HARMRANK_KAFKA_SECURITY_PROTOCOL": "TLS"}, "HARMRANK_KAFKA_SECURITY_PROTOCOL must be one of"),
    ({**SASL, "HARMRANK_KAFKA_SASL_MECHANISM": "GSSAPI"}, "HARMRANK_KAFKA_SASL_MECHANISM must be one of"),
    ({**SASL, "HARMRANK_KAFKA_SASL_PASSWORD": ""}, "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
    ({"HARMRANK_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT needs KAFKA_SASL_USERNAME"),
    ({"HARMRANK_KAFKA_SASL_USERNAME": "u", "HARMRANK_KAFKA_SASL_PASSWORD": "p"}, "use SASL_PLAINTEXT or SASL_SSL"),
    ({"HARMRANK_KAFKA_SECURITY_PROTOCOL": "SSL", "HARMRANK_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"},
     "HARMRANK_KAFKA_SSL_CAFILE: no such file '/nonexistent/ca.pem'"),
])
def test_bad_security_settings_are_refused_with_a_clear_message(env, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        Settings.from_env(env)


def test_tls_files_need_a_tls_protocol_and_a_key_needs_its_certificate(cert):
    with pytest.raises(ValueError, match="use SSL or SASL_SSL"):
        Settings.from_env({"HARMRANK_KAFKA_SSL_CAFILE": str(cert[0])})
    with pytest.raises(ValueError, match="KAFKA_SSL_KEYFILE needs KAFKA_SSL_CERTFILE"):
        Settings.from_env({"HARMRANK_KAFKA_SECURITY_PROTOCOL": "SSL", "HARMRANK_KAFKA_SSL_KEYFILE": str(cert[1])})


def test_a_bad_flag_is_named_as_a_flag():
    with pytest.raises(ValueError, match="--kafka-ssl-cafile: no such file"):
        Settings.from_env({}, kafka_security_protocol="SSL", kafka_ssl_cafile="/nonexistent/ca.pem")


def test_tls_files_that_do_not_load_are_refused_naming_their_setting(cert, tmp_path):
    """A TLS file that exists but is no certificate or key is refused with the settings, not by a client later."""
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n")
    tls = {"HARMRANK_KAFKA_SECURITY_PROTOCOL": "SSL"}
    with pytest.raises(ValueError, match="KAFKA_SSL_CAFILE '.*not.pem' holds no certificate that loads"):
        Settings.from_env({**tls, "HARMRANK_KAFKA_SSL_CAFILE": str(not_pem)})
    with pytest.raises(ValueError, match="KAFKA_SSL_CERTFILE '.*not.pem': not a certificate with its unencrypted key"):
        Settings.from_env({**tls, "HARMRANK_KAFKA_SSL_CERTFILE": str(not_pem)})
    with pytest.raises(ValueError, match="KAFKA_SSL_KEYFILE '.*not.pem': not a certificate"):
        Settings.from_env({**tls, "HARMRANK_KAFKA_SSL_CERTFILE": str(cert[0]),
                           "HARMRANK_KAFKA_SSL_KEYFILE": str(not_pem)})


def test_an_encrypted_key_is_refused_not_prompted_for(cert, tmp_path):
    locked = tmp_path / "locked.pem"
    subprocess.run(["openssl", "pkey", "-in", str(cert[1]), "-aes256", "-passout", "pass:secret", "-out", str(locked)],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL)
    with pytest.raises(ValueError, match="not a certificate with its unencrypted key"):
        Settings.from_env({"HARMRANK_KAFKA_SECURITY_PROTOCOL": "SSL", "HARMRANK_KAFKA_SSL_CERTFILE": str(cert[0]),
                           "HARMRANK_KAFKA_SSL_KEYFILE": str(locked)})
