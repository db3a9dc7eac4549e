"""Prometheus metrics of the harmrank worker, served at ``GET /metrics``.

All metrics live in a dedicated :data:`REGISTRY` (not the process-global default), are
prefixed ``harmrank_``, use base units (seconds, messages, days) and counters end in
``_total``. No suspect id or victim id ever appears in a metric name or label: every label
below takes its values from a small closed set listed in this module.

Call :func:`prime` once at start-up so that every labelled series exists at 0 from the
beginning (rates, dashboards and ``absent()``-style alerts need the series to exist before
the first event of a kind arrives). :func:`render` gives the exposition text.
"""
from __future__ import annotations

from typing import Tuple

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from schemas.events import EVENT_TYPES
from schemas.events import EXIT_REASONS as SPEC_EXIT_REASONS
from schemas.validate import REJECTION_CODES
from streams.register import STATEFUL_REJECTION_CODES

# No ``*_created`` companion series: Prometheus ignores them in the text format, and they
# would double the series count. (A process-wide switch of prometheus-client.)
disable_created_metrics()

# --- closed label value sets ------------------------------------------------------------

#: Input event types (SPEC §2), plus "invalid" for a message whose type could not be read.
INPUT_TYPES: Tuple[str, ...] = (*EVENT_TYPES, "invalid")
#: What became of a consumed input event.
OUTCOMES: Tuple[str, ...] = ("accepted", "dead_lettered", "duplicate")
#: Reason codes written to ``crime-reports.dlq`` and counted in ``harmrank_dead_letters_total``:
#: the validator's, then the core's (which need state to decide).
DEAD_LETTER_REASONS: Tuple[str, ...] = (*REJECTION_CODES, *STATEFUL_REJECTION_CODES)
#: Reasons of a ``ranking.exited`` event (SPEC §3).
EXIT_REASONS: Tuple[str, ...] = SPEC_EXIT_REASONS
#: Processing stages of the worker pipeline.
STAGES: Tuple[str, ...] = ("intake", "register", "ledger", "ranker")
#: Output event types on ``harm-ranking``.
OUTPUT_TYPES: Tuple[str, ...] = ("ranking.entered", "ranking.exited")


def _version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("harmrank")
        except PackageNotFoundError:
            return "unknown"
    except Exception:  # pragma: no cover - very old/odd environments
        return "unknown"


VERSION = _version()

REGISTRY = CollectorRegistry(auto_describe=True)

# --- counters ----------------------------------------------------------------------------

EVENTS_CONSUMED = Counter(
    "harmrank_events_consumed_total",
    "Input messages consumed from crime-reports, by event type ('invalid' when the type "
    "could not be read) and outcome (accepted, dead_lettered, duplicate event_id). "
    "rate() of this is the intake throughput.",
    ["type", "outcome"],
    registry=REGISTRY,
)
"""Input messages consumed, by type and outcome; the intake throughput."""

DEAD_LETTERS = Counter(
    "harmrank_dead_letters_total",
    "Input messages sent to crime-reports.dlq, by reason code. A rise means an upstream "
    "publisher is sending bad or out-of-order data: inspect the DLQ topic.",
    ["reason"],
    registry=REGISTRY,
)
"""Messages dead-lettered, by reason; a spike points at an upstream publisher."""

MERGES_FORWARDED = Counter(
    "harmrank_merges_forwarded_total",
    "suspects.merged events that arrived on another input partition than the one of the key "
    "suspects.merged, and were forwarded there (so every register partition sees the merges in one "
    "order). A steady rate means a publisher keys merges otherwise: harmless, but a merge then "
    "applies a little later.",
    registry=REGISTRY,
)
"""Merges forwarded to the merge partition of the input topic."""

AUDIT_FAILURES = Counter(
    "harmrank_audit_failures_total",
    "Audit records of requests to personal data (SPEC §9) that could not be sent to harmrank-audit; "
    "each is logged at error instead. Any increase needs attention: the audit trail has a gap.",
    registry=REGISTRY,
)
"""Audit records not sent (no labels: never a user name)."""

RANKING_ENTRIES = Counter(
    "harmrank_ranking_entries_total",
    "ranking.entered events: suspects who entered the top N.",
    registry=REGISTRY,
)
"""Suspects who entered the top N."""

RANKING_EXITS = Counter(
    "harmrank_ranking_exits_total",
    "ranking.exited events: suspects who left the top N, by reason "
    "(displaced, expired, corrected, merged).",
    ["reason"],
    registry=REGISTRY,
)
"""Suspects who left the top N, by reason."""

OUTPUT_EVENTS = Counter(
    "harmrank_output_events_total",
    "Events produced to harm-ranking, by type.",
    ["type"],
    registry=REGISTRY,
)
"""Ranking events produced to ``harm-ranking``, by type."""

# --- gauges ------------------------------------------------------------------------------

SUSPECTS_TRACKED = Gauge(
    "harmrank_suspects_tracked",
    "Suspects with at least one allegation in the window (held by this worker).",
    registry=REGISTRY,
)
"""Suspects with any allegation in the window: the size of the working state."""

SUSPECTS_ELIGIBLE = Gauge(
    "harmrank_suspects_eligible",
    "Suspects with at least min_allegations VAWG allegations in the window.",
    registry=REGISTRY,
)
"""Suspects eligible for the ranking."""

RANKING_MEMBERS = Gauge(
    "harmrank_ranking_members",
    "Suspects currently in the top N (never more than N).",
    registry=REGISTRY,
)
"""Current members of the top N (at most N)."""

THRESHOLD_SCORE = Gauge(
    "harmrank_threshold_score_days",
    "Score (CCHI days) of the suspect at rank N; 0 while there are fewer than N members. "
    "The score a suspect must beat to enter the top N.",
    registry=REGISTRY,
)
"""Score at rank N (0 when fewer than N members): the bar to enter the top N."""

CLOCK_AS_OF = Gauge(
    "harmrank_clock_as_of_seconds",
    "The worker clock (as_of) as Unix seconds. In wall mode it moves at least once a "
    "minute; time() - this is how far the ranking lags real time.",
    registry=REGISTRY,
)
"""The ranking clock ``as_of`` in Unix seconds; ``time() - x`` is its lag behind now."""

CONSUMER_LAG = Gauge(
    "harmrank_consumer_lag_messages",
    "Messages not yet processed by a stage of this worker (end offset minus committed "
    "position, summed over its partitions). A growing value means the worker cannot keep up.",
    ["stage"],
    registry=REGISTRY,
)
"""Messages waiting for each pipeline stage; growth means the worker cannot keep up."""

STAGE_FAILURES = Counter(
    "harmrank_stage_failures_total",
    "Batches a stage failed to work and will try again (the batch is never skipped).",
    ["stage"],
    registry=REGISTRY,
)
"""A stage that keeps failing holds up its input: /healthz answers 503 meanwhile."""

SKIPPED_READS = Counter(
    "harmrank_skipped_reads_total",
    "Stage partitions read again from where their state ends because the consumer lost messages in a "
    "rebalance: a batch skipped some (it is not worked), or the state stood behind its topic's end.",
    ["stage"],
    registry=REGISTRY,
)

WORKER_READY = Gauge(
    "harmrank_worker_ready",
    "1 once the worker has recovered its state and serves /readyz, else 0.",
    registry=REGISTRY,
)
"""1 when the worker has recovered and is ready (``/readyz`` answers 200), else 0."""

BUILD_INFO = Gauge(
    "harmrank_build_info",
    "Always 1; the version label carries the harmrank version running.",
    ["version"],
    registry=REGISTRY,
)
"""Constant 1 labelled with the running harmrank version."""

# --- per list (SPEC §7): the list's name is the only label --------------------------------

LIST_MEMBERS = Gauge(
    "harmrank_list_members",
    "Members of each list's top N (on the worker that holds the ranker).",
    ["list"],
    registry=REGISTRY,
)
LIST_ELIGIBLE = Gauge(
    "harmrank_list_eligible",
    "Suspects eligible for each list in this worker's ledger partitions.",
    ["list"],
    registry=REGISTRY,
)
LIST_ENTRIES = Counter(
    "harmrank_list_entries_total",
    "ranking.entered events emitted for each list.",
    ["list"],
    registry=REGISTRY,
)
LIST_EXITS = Counter(
    "harmrank_list_exits_total",
    "ranking.exited events emitted for each list (reasons: harmrank_ranking_exits_total).",
    ["list"],
    registry=REGISTRY,
)
"""One series per list name: members, eligible, entries, exits."""

# --- histograms --------------------------------------------------------------------------

LATENCY_BUCKETS: Tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)

PROCESSING_LATENCY = Histogram(
    "harmrank_processing_latency_seconds",
    "Seconds from an event's publication (its Kafka timestamp) to a stage finishing with it.",
    ["stage"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
"""Publish-to-stage latency: intake, register, ledger, and ranker (= publish to ranking event)."""

#: Every metric family name as it appears in the exposition text (counters with ``_total``;
#: the histogram by its base name, exposed as ``_bucket``/``_sum``/``_count``).
METRIC_NAMES: Tuple[str, ...] = (
    "harmrank_events_consumed_total",
    "harmrank_dead_letters_total",
    "harmrank_merges_forwarded_total",
    "harmrank_audit_failures_total",
    "harmrank_ranking_entries_total",
    "harmrank_ranking_exits_total",
    "harmrank_output_events_total",
    "harmrank_suspects_tracked",
    "harmrank_suspects_eligible",
    "harmrank_ranking_members",
    "harmrank_threshold_score_days",
    "harmrank_clock_as_of_seconds",
    "harmrank_consumer_lag_messages",
    "harmrank_worker_ready",
    "harmrank_build_info",
    "harmrank_stage_failures_total",
    "harmrank_skipped_reads_total",
    "harmrank_list_members",
    "harmrank_list_eligible",
    "harmrank_list_entries_total",
    "harmrank_list_exits_total",
    "harmrank_processing_latency_seconds",
)


def prime(lists: Tuple[str, ...] = ("vawg",)) -> None:
    """Create every labelled series at 0 (idempotent), one per list name too, and set build info to 1.

    Does not reset values already counted.
    """
    for name in lists:
        for family in (LIST_MEMBERS, LIST_ELIGIBLE, LIST_ENTRIES, LIST_EXITS):
            family.labels(list=name)
    for t in INPUT_TYPES:
        for o in OUTCOMES:
            EVENTS_CONSUMED.labels(type=t, outcome=o)
    for r in DEAD_LETTER_REASONS:
        DEAD_LETTERS.labels(reason=r)
    for r in EXIT_REASONS:
        RANKING_EXITS.labels(reason=r)
    for t in OUTPUT_TYPES:
        OUTPUT_EVENTS.labels(type=t)
    for s in STAGES:
        STAGE_FAILURES.labels(stage=s)
        SKIPPED_READS.labels(stage=s)
        CONSUMER_LAG.labels(stage=s)
        PROCESSING_LATENCY.labels(stage=s)
    BUILD_INFO.labels(version=VERSION).set(1)


_consumed_children: dict = {}


def consumed(type: str, outcome: str):
    """The EVENTS_CONSUMED series of (type, outcome), looked up once: `labels()` costs more than the count."""
    child = _consumed_children.get((type, outcome))
    if child is None:
        child = _consumed_children[(type, outcome)] = EVENTS_CONSUMED.labels(type=type, outcome=outcome)
    return child


def render() -> Tuple[bytes, str]:
    """The exposition text of :data:`REGISTRY` and its HTTP content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


__all__ = [
    "REGISTRY",
    "EVENTS_CONSUMED",
    "DEAD_LETTERS",
    "AUDIT_FAILURES",
    "RANKING_ENTRIES",
    "RANKING_EXITS",
    "OUTPUT_EVENTS",
    "SUSPECTS_TRACKED",
    "SUSPECTS_ELIGIBLE",
    "RANKING_MEMBERS",
    "THRESHOLD_SCORE",
    "CLOCK_AS_OF",
    "CONSUMER_LAG",
    "WORKER_READY",
    "STAGE_FAILURES",
    "SKIPPED_READS",
    "LIST_MEMBERS",
    "LIST_ELIGIBLE",
    "LIST_ENTRIES",
    "LIST_EXITS",
    "BUILD_INFO",
    "PROCESSING_LATENCY",
    "LATENCY_BUCKETS",
    "METRIC_NAMES",
    "INPUT_TYPES",
    "OUTCOMES",
    "DEAD_LETTER_REASONS",
    "EXIT_REASONS",
    "STAGES",
    "OUTPUT_TYPES",
    "VERSION",
    "prime",
    "consumed",
    "render",
]
