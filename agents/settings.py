"""Settings of harmrank: defaults, ``HARMRANK_<FIELD>`` environment variables, CLI flags.

Precedence (highest first): CLI flags (overrides that are not None), environment
variables ``HARMRANK_<FIELD upper>``, the defaults below.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional

ENV_PREFIX = "HARMRANK_"
CLOCK_MODES = ("wall", "event")
RETENTION_MARGIN_DAYS = 90  # the default retention is the window and this much more


@dataclass
class Settings:
    broker: str = "kafka://127.0.0.1:9092"
    data_dir: str = "./data"
    top_n: int = 100
    window_days: int = 365
    retention_days: Optional[int] = None  # None = window_days + 90 (SPEC §9); never shorter than the window
    min_allegations: int = 2
    harm_table: Optional[str] = None  # None = the shipped default table
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

    def __post_init__(self) -> None:
        # Validate (and normalise) every field, whatever its source.
        for f in fields(self):
            value = getattr(self, f.name)
            setattr(self, f.name, _convert(f.name, value, source=f.name))
        if self.retention_days is None:
            self.retention_days = self.window_days + RETENTION_MARGIN_DAYS
        elif self.retention_days < self.window_days:
            raise ValueError(f"HARMRANK_RETENTION_DAYS ({self.retention_days}) must be at least HARMRANK_WINDOW_DAYS "
                             f"({self.window_days}): a report must not be forgotten while it still counts")

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
_PORT = {"web_port"}
_POSITIVE_FLOAT = {"tick_seconds", "batch_window_ms"}
_OPTIONAL_STR = {"harm_table", "api_token", "api_tokens"}
_NONEMPTY_STR = {"broker", "data_dir", "web_host", "input_topic", "output_topic", "dlq_topic"}


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


def bootstrap_servers(url: str) -> list[str]:
    """``"kafka://h1:9092;h2:9092"`` or ``"h:9092,h2:9093"`` -> ``["h1:9092", ...]``.

    A host without a port gets 9092. Raises ``ValueError`` for an empty or bad URL.
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
            host, port = part, "9092"
        if not host or not port.isdigit() or not (0 < int(port) < 65536):
            raise ValueError(f"bad broker address {part!r} in {url!r} (expected host:port)")
        out.append(f"{host}:{int(port)}")
    if not out:
        raise ValueError(f"no broker address in {url!r}")
    return out


_HELP = {
    "broker": "Kafka broker URL, e.g. kafka://127.0.0.1:9092 (env HARMRANK_BROKER)",
    "data_dir": "directory for local state (env HARMRANK_DATA_DIR; default ./data)",
    "top_n": "size of the top N (env HARMRANK_TOP_N; default 100)",
    "window_days": "rolling window in days (env HARMRANK_WINDOW_DAYS; default 365)",
    "retention_days": "days after which a report is forgotten, at least the window (env HARMRANK_RETENTION_DAYS; "
                      "default: window_days + 90)",
    "min_allegations": "VAWG allegations needed to be ranked (env HARMRANK_MIN_ALLEGATIONS; default 2)",
    "harm_table": "harm table CSV (env HARMRANK_HARM_TABLE; default: the shipped table)",
    "clock": "'wall' or 'event' (env HARMRANK_CLOCK; default wall)",
    "web_port": "HTTP API port (env HARMRANK_WEB_PORT; default 6066)",
    "web_host": "HTTP API bind address (env HARMRANK_WEB_HOST; default 127.0.0.1)",
    "api_token": "bearer token for /ranking and /suspects (env HARMRANK_API_TOKEN)",
    "api_tokens": "file of named users' tokens, lines 'name:<sha256 hex of the token>' (env HARMRANK_API_TOKENS)",
    "partitions": "partitions of the input topic when created (env HARMRANK_PARTITIONS; default 4)",
    "tick_seconds": "wall clock tick interval in seconds (env HARMRANK_TICK_SECONDS; default 10)",
    "batch_window_ms": "how long each stage gathers a batch once a message is there, in ms: longer means fewer, "
                       "larger batches on the broker and more latency per hop (env HARMRANK_BATCH_WINDOW_MS; "
                       "default 10)",
    "input_topic": "input topic (env HARMRANK_INPUT_TOPIC; default crime-reports)",
    "output_topic": "output topic (env HARMRANK_OUTPUT_TOPIC; default harm-ranking)",
    "dlq_topic": "dead-letter topic (env HARMRANK_DLQ_TOPIC; default crime-reports.dlq)",
}


def add_common_args(parser: argparse.ArgumentParser, only: Optional[list[str]] = None) -> argparse.ArgumentParser:
    """Add ``--broker``, ``--data-dir``, ... (dest = field name, default None).

    Values are kept as strings; ``Settings.from_env(**vars(args))`` converts and validates
    them, so a bad flag gives the same clear message as a bad environment variable.
    ``only`` restricts the flags to the named fields.
    """
    for f in fields(Settings):
        if only is not None and f.name not in only:
            continue
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(), help=_HELP.get(f.name))
    return parser


def settings_from_args(args: argparse.Namespace, environ: Optional[Mapping[str, str]] = None) -> Settings:
    """Settings from the environment plus the (non-None) flags found on ``args``."""
    names = {f.name for f in fields(Settings)}
    overrides = {k: v for k, v in vars(args).items() if k in names}
    return Settings.from_env(environ, **overrides)
