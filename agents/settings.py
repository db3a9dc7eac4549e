"""Settings of harmrank: defaults, ``HARMRANK_<FIELD>`` environment variables, CLI flags.

Precedence (highest first): CLI flags (overrides that are not None), environment
variables ``HARMRANK_<FIELD upper>``, the defaults below.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import ssl
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from schemas import defaults
from schemas.lists import MAX_DAYS, MAX_TOP_N, ListsError, ListSpec, default_lists, load_lists

ENV_PREFIX = "HARMRANK_"
DEFAULT_KAFKA_PORT = 9092  # of a broker address without one, and of the local broker
CLOCK_MODES = ("wall", "event")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
TLS_PROTOCOLS = ("SSL", "SASL_SSL")  # the security protocols that speak TLS
#: The settings of how to reach the broker: every command that talks to Kafka takes their flags.
KAFKA_FIELDS = ("broker", "kafka_security_protocol", "kafka_sasl_mechanism", "kafka_sasl_username",
                "kafka_sasl_password", "kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")
RETENTION_MARGIN_DAYS = defaults.RETENTION_MARGIN_DAYS  # the default retention: the window and this much more


@dataclass
class Settings:
    broker: str = f"kafka://127.0.0.1:{DEFAULT_KAFKA_PORT}"
    data_dir: str = "./data"
    top_n: int = defaults.TOP_N
    window_days: int = defaults.WINDOW_DAYS
    min_allegations: int = defaults.MIN_ALLEGATIONS
    retention_days: Optional[int] = None  # None = window_days + 90 (SPEC §9); never shorter than the window
    harm_table: Optional[str] = None  # None = the shipped default table
    lists: Optional[str] = None  # the lists file of SPEC §7; None = one list `vawg` from top_n, window_days, ...
    clock: str = "wall"  # "wall" or "event"
    web_port: int = 6066
    web_host: str = "127.0.0.1"
    api_token: Optional[str] = None
    api_tokens: Optional[str] = None  # a file of `name:<sha256 hex of the token>` lines (named users)
    partitions: int = 4
    tick_seconds: float = 10.0  # how often the wall clock ticks
    batch_window_ms: float = 10.0  # how long a stage gathers a batch once its first message is there
    input_topic: str = "crime-reports"
    output_topic: str = "harm-ranking"
    dlq_topic: str = "crime-reports.dlq"
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "PLAIN"
    kafka_sasl_username: Optional[str] = None
    kafka_sasl_password: Optional[str] = None
    kafka_ssl_cafile: Optional[str] = None  # None = the system's certificate authorities
    kafka_ssl_certfile: Optional[str] = None  # a client certificate (with its key, or KAFKA_SSL_KEYFILE)
    kafka_ssl_keyfile: Optional[str] = None

    def __post_init__(self) -> None:
        # Validate (and normalise) every field, whatever its source.
        for f in fields(self):
            value = getattr(self, f.name)
            setattr(self, f.name, _convert(f.name, value, source=f.name))
        _check_kafka_security(self)
        self._tls_context = _tls_context(self)  # built here, so a file that does not load stops the command
        self._list_specs = _load_lists(self)
        longest = max(spec.window_days for spec in self._list_specs)
        if self.retention_days is None:
            self.retention_days = longest + RETENTION_MARGIN_DAYS
        elif self.retention_days < longest:
            window = f"HARMRANK_WINDOW_DAYS ({longest})" if self.lists is None else f"the longest list window ({longest})"
            raise ValueError(f"HARMRANK_RETENTION_DAYS ({self.retention_days}) must be at least {window}: "
                             "a report must not be forgotten while it still counts")

    @property
    def tls_context(self) -> Optional[ssl.SSLContext]:
        """The TLS client context every Kafka client of this process shares; None without TLS."""
        return self._tls_context

    @property
    def list_specs(self) -> tuple[ListSpec, ...]:
        """The lists (SPEC §7): those of the LISTS file, or the one list `vawg` from TOP_N, WINDOW_DAYS and
        MIN_ALLEGATIONS; the first is the default of the API and the commands."""
        return self._list_specs

    @property
    def bootstrap_servers(self) -> list[str]:
        return bootstrap_servers(self.broker)

    @classmethod
    def from_env(
        cls, environ: Optional[Mapping[str, str]] = None, **overrides: Any
    ) -> "Settings":
        """Build settings from ``HARMRANK_*`` variables; non-None overrides win.

        Raises ``ValueError`` with a message naming the variable (or flag) at fault.
        """
        if environ is None:
            environ = os.environ
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for f in fields(cls):
            var = ENV_PREFIX + f.name.upper()
            if overrides.get(f.name) is not None:
                values[f.name] = _convert(f.name, overrides[f.name], source="--" + f.name.replace("_", "-"))
            elif var in environ:
                values[f.name] = _convert(f.name, environ[var], source=var)
        return cls(**values)

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)


_POSITIVE_INT = {"top_n", "window_days", "min_allegations", "partitions"}
_OPTIONAL_POSITIVE_INT = {"retention_days"}
#: Upper bounds, so that no setting can overflow a date or a slice: the lists file's (schemas/lists.py),
#: and for retention the default that the longest window allowed would have.
_MAX_INT = {"top_n": MAX_TOP_N, "window_days": MAX_DAYS, "retention_days": MAX_DAYS + RETENTION_MARGIN_DAYS}
_PORT = {"web_port"}
_POSITIVE_FLOAT = {"tick_seconds", "batch_window_ms"}
_OPTIONAL_STR = {"harm_table", "lists", "api_token", "api_tokens", "kafka_sasl_username", "kafka_sasl_password"}
_NONEMPTY_STR = {"broker", "data_dir", "web_host", "input_topic", "output_topic", "dlq_topic"}
_FILE = {"kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile"}
_CHOICE = {"kafka_security_protocol": SECURITY_PROTOCOLS, "kafka_sasl_mechanism": SASL_MECHANISMS}


def _load_lists(s: Settings) -> tuple[ListSpec, ...]:
    """The lists of the LISTS file, checked (ValueError naming its line and the reason), or the default list."""
    if s.lists is None:
        return default_lists(s.top_n, s.window_days, s.min_allegations)
    try:
        return load_lists(s.lists)
    except ListsError as exc:
        raise ValueError(f"HARMRANK_LISTS: {exc}") from None


def _convert(name: str, value: Any, source: str) -> Any:
    """Convert ``value`` (a string from the environment, or a typed value) for ``name``."""
    label = source if source.startswith(("HARMRANK_", "--")) else name
    if name in _OPTIONAL_POSITIVE_INT and (value is None or (isinstance(value, str) and not value.strip())):
        return None
    if name in _POSITIVE_INT or name in _OPTIONAL_POSITIVE_INT or name in _PORT:
        kind = "a port number (1-65535)" if name in _PORT else "a positive integer"
        try:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, str):
                n = int(value.strip())
            elif isinstance(value, int):
                n = value
            else:
                raise ValueError
        except (ValueError, TypeError):
            raise ValueError(f"{label} must be {kind}, got {value!r}") from None
        if n < 1 or (name in _PORT and n > 65535):
            raise ValueError(f"{label} must be {kind}, got {value!r}")
        if n > _MAX_INT.get(name, n):
            raise ValueError(f"{label} must be at most {_MAX_INT[name]}, got {value!r}")
        return n
    if name in _POSITIVE_FLOAT:
        try:
            if isinstance(value, bool):
                raise ValueError
            x = float(value.strip()) if isinstance(value, str) else float(value)
        except (ValueError, TypeError):
            raise ValueError(f"{label} must be a positive number, got {value!r}") from None
        if not (x > 0) or x == float("inf"):
            raise ValueError(f"{label} must be a positive number, got {value!r}")
        return x
    if name == "clock":
        v = str(value).strip().lower()
        if v not in CLOCK_MODES:
            raise ValueError(f"{label} must be 'wall' or 'event', got {value!r}")
        return v
    if name in _CHOICE:
        v = str(value).strip().upper()
        if v not in _CHOICE[name]:
            raise ValueError(f"{label} must be one of {', '.join(_CHOICE[name])}, got {value!r}")
        return v
    if name in _FILE:
        if value is None or not str(value).strip():
            return None
        if not Path(str(value)).is_file():
            raise ValueError(f"{label}: no such file {str(value)!r}")
        return str(value)
    if name in _OPTIONAL_STR:
        if value is None:
            return None
        v = str(value)
        return v if v.strip() else None
    if name in _NONEMPTY_STR:
        v = str(value).strip() if value is not None else ""
        if not v:
            raise ValueError(f"{label} must not be empty")
        if name == "broker":
            bootstrap_servers(v)  # validates
        return v
    return value


def _check_kafka_security(s: Settings) -> None:
    """The KAFKA_* settings must agree with each other: SASL needs a user and a password, a
    certificate needs TLS, a key needs its certificate. (Named as settings: each is a
    HARMRANK_KAFKA_* variable or a --kafka-* flag.)"""
    protocol = s.kafka_security_protocol
    sasl = protocol.startswith("SASL_")
    tls = protocol in TLS_PROTOCOLS
    where = " (HARMRANK_KAFKA_* variables or --kafka-* flags)"
    if sasl and not (s.kafka_sasl_username and s.kafka_sasl_password):
        raise ValueError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
                         + where)
    if not sasl and (s.kafka_sasl_username or s.kafka_sasl_password):
        raise ValueError(f"KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD are set but KAFKA_SECURITY_PROTOCOL is "
                         f"{protocol}: use SASL_PLAINTEXT or SASL_SSL" + where)
    files = [n.upper() for n in sorted(_FILE) if getattr(s, n)]
    if files and not tls:
        raise ValueError(f"{', '.join(files)} set but KAFKA_SECURITY_PROTOCOL is {protocol}: use SSL or SASL_SSL"
                         + where)
    if s.kafka_ssl_keyfile and not s.kafka_ssl_certfile:
        raise ValueError("KAFKA_SSL_KEYFILE needs KAFKA_SSL_CERTFILE (the certificate of that key)" + where)


def _tls_context(s: Settings) -> Optional[ssl.SSLContext]:
    """A TLS client context checking the broker's certificate (against KAFKA_SSL_CAFILE when set, else the
    system's), with the client certificate when one is set; None without TLS. A file that does not load
    raises ValueError naming its setting; an encrypted key is refused rather than prompted for."""
    if s.kafka_security_protocol not in TLS_PROTOCOLS:
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=s.kafka_ssl_cafile)
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"KAFKA_SSL_CAFILE {s.kafka_ssl_cafile!r} holds no certificate that loads: {exc}") from None
    if s.kafka_ssl_certfile:
        try:
            context.load_cert_chain(s.kafka_ssl_certfile, s.kafka_ssl_keyfile, password=_no_password)
        except (ssl.SSLError, OSError) as exc:
            files = f"KAFKA_SSL_CERTFILE {s.kafka_ssl_certfile!r}" + (
                f" and KAFKA_SSL_KEYFILE {s.kafka_ssl_keyfile!r}" if s.kafka_ssl_keyfile else "")
            raise ValueError(f"{files}: not a certificate with its unencrypted key: {exc}") from None
    return context


def _no_password() -> bytes:
    """The password of an encrypted key: none (OpenSSL would otherwise ask on the terminal), so it is refused."""
    return b""


def bootstrap_servers(url: str) -> list[str]:
    """``"kafka://h1:9092;h2:9092"`` or ``"h:9092,h2:9093"`` -> ``["h1:9092", ...]``.

    A host without a port gets DEFAULT_KAFKA_PORT. Raises ``ValueError`` for an empty or bad URL.
    """
    if url is None or not str(url).strip():
        raise ValueError("broker URL must not be empty")
    s = str(url).strip()
    if "://" in s:
        scheme, _, s = s.partition("://")
        if scheme.lower() not in ("kafka", "tcp", "plaintext", "aiokafka"):
            raise ValueError(f"unsupported broker URL scheme {scheme!r} in {url!r} (use kafka://host:port)")
    out: list[str] = []
    for part in s.replace(";", ",").split(","):
        part = part.strip()
        if part.startswith("kafka://"):
            part = part[len("kafka://"):]
        part = part.rstrip("/")
        if not part:
            continue
        host, sep, port = part.rpartition(":")
        if not sep:
            host, port = part, str(DEFAULT_KAFKA_PORT)
        if not host or not port.isdigit() or not (0 < int(port) < 65536):
            raise ValueError(f"bad broker address {part!r} in {url!r} (expected host:port)")
        out.append(f"{host}:{int(port)}")
    if not out:
        raise ValueError(f"no broker address in {url!r}")
    return out


_HELP = {
    "broker": "Kafka broker URL, e.g. kafka://h1:9092;h2:9092",
    "data_dir": "directory for local state",
    "top_n": "size of the top N",
    "window_days": "rolling window in days",
    "retention_days": "days after which a report is forgotten, at least the longest list window (default: that "
                      "window + 90)",
    "lists": "TOML file of [[list]] tables (SPEC §7; default: one list 'vawg' from top_n, window_days, "
             "min_allegations)",
    "min_allegations": "VAWG allegations needed to be ranked",
    "harm_table": "harm table CSV",
    "clock": "'wall' or 'event'",
    "web_port": "HTTP API port",
    "web_host": "HTTP API bind address",
    "api_token": "the shared bearer token for the personal-data paths (user \"token\" in the audit)",
    "api_tokens": "file of named users' tokens, lines 'name:<sha256 hex of the token>'",
    "partitions": "partitions of the input topic when created",
    "tick_seconds": "wall clock tick interval in seconds",
    "batch_window_ms": "how long each stage gathers a batch once a message is there, in ms: longer means fewer, "
                       "larger batches on the broker and more latency per hop",
    "input_topic": "input topic",
    "output_topic": "output topic",
    "dlq_topic": "dead-letter topic",
    "kafka_security_protocol": "how clients talk to Kafka: " + ", ".join(SECURITY_PROTOCOLS),
    "kafka_sasl_mechanism": "SASL mechanism: " + ", ".join(SASL_MECHANISMS),
    "kafka_sasl_username": "SASL user name",
    "kafka_sasl_password": "SASL password (prefer the environment variable: flags show in process lists)",
    "kafka_ssl_cafile": "CA certificates (PEM) that sign the broker's certificate",
    "kafka_ssl_certfile": "client certificate (PEM), for brokers that require one",
    "kafka_ssl_keyfile": "the client certificate's private key (PEM), if not in the certificate file",
}


_DEFAULT_IN_WORDS = {"harm_table": "the shipped table", "kafka_ssl_cafile": "the system's CA certificates"}


def help_text(name: str) -> str:
    """A setting's help: what it is, its variable, and its default (taken from the field, so written once)."""
    field = next(f for f in fields(Settings) if f.name == name)
    default = _DEFAULT_IN_WORDS.get(name, field.default)
    default = "" if default is None else f"; default {default}"
    return f"{_HELP[name]} (env {ENV_PREFIX}{name.upper()}{default})"



def add_common_args(parser: argparse.ArgumentParser, only: Optional[Iterable[str]] = None) -> argparse.ArgumentParser:
    """Add ``--broker``, ``--data-dir``, ... (dest = field name, default None).

    Values are kept as strings; ``Settings.from_env(**vars(args))`` converts and validates
    them, so a bad flag gives the same clear message as a bad environment variable.
    ``only`` restricts the flags to the named fields.
    """
    for f in fields(Settings):
        if only is not None and f.name not in only:
            continue
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(), help=help_text(f.name))
    return parser


def settings_from_args(args: argparse.Namespace, environ: Optional[Mapping[str, str]] = None) -> Settings:
    """Settings from the environment plus the (non-None) flags found on ``args``."""
    names = {f.name for f in fields(Settings)}
    overrides = {k: v for k, v in vars(args).items() if k in names}
    return Settings.from_env(environ, **overrides)
