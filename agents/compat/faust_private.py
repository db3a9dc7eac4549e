"""The private parts of Faust (faust-streaming 0.15.3) that the worker relies on, each named once.

Faust has no public way to reach a table partition's RocksDB database, the
partitions a worker holds, the worker that owns a partition, the router's
proxying of a request, or the aiokafka producer under its own. A Faust upgrade
that changes any of them breaks here, and only here.
"""
from __future__ import annotations

from typing import Any, Optional

from faust.types import TP
from yarl import URL


def partition_db(table: Any, partition: int) -> Any:
    """The rocksdict database of one partition of a RocksDB-backed table (opened if need be)."""
    return table.data._db_for_partition(partition)


def held_partitions(table: Any) -> list:
    """The partitions of `table` whose databases this worker has open."""
    return list(table.data._dbs)


def owner_url(app: Any, table: Any, partition: int) -> Optional[str]:
    """The web URL of the worker that owns `partition` of `table`'s changelog, if known."""
    tp = TP(table.changelog_topic.get_topic_name(), partition)
    return getattr(app.assignor, "_tps_url", {}).get(tp)


async def route_request(app: Any, url: str, view: Any, request: Any) -> Any:
    """Proxy `request` to the worker at `url`, as Faust's router does (SameNode when that is us)."""
    return await app.router._route_req(URL(url), view.web, request)


def aiokafka_producer(app: Any) -> Any:
    """The started aiokafka producer under Faust's producer (for sending ready-made record batches)."""
    return app.producer._ensure_producer()
