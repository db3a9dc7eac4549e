"""The audit trail of the web port (SPEC §9): one record on `harmrank-audit` per request to personal data.

The gate (agents/access.py) hands each record here; it goes out through the Faust
app's own producer, and the request does not wait for the broker. A record that
cannot be sent is never dropped silently: it is logged at error (it holds no
token) and counted in `harmrank_audit_failures_total`.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Callable

from . import metrics

AUDIT_TOPIC = "harmrank-audit"

log = logging.getLogger("harmrank.audit")


class AuditTrail:
    """Sends audit records with the producer of the app that `app_of()` returns (called per record,
    so the trail can be made before the app that owns it)."""

    def __init__(self, app_of: Callable):
        self._app_of = app_of
        self._topic = None
        self._pending: set = set()  # the sends under way: a task must be referenced until it ends

    def __call__(self, record: dict) -> None:
        task = asyncio.ensure_future(self._send(record))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send(self, record: dict) -> None:
        try:
            if self._topic is None:
                self._topic = self._app_of().topic(AUDIT_TOPIC, key_serializer="raw", value_serializer="raw",
                                                   internal=False)
            value = json.dumps(record, separators=(",", ":")).encode()
            future = await self._topic.send(value=value)
            await future  # acknowledged by the broker
        except Exception as exc:  # any failure: logged and counted, the request was answered anyway
            metrics.AUDIT_FAILURES.inc()
            log.error("audit record not sent to %s (%s): %s", AUDIT_TOPIC, type(exc).__name__,
                      json.dumps(record, separators=(",", ":")))
