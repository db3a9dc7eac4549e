"""Every work-around for Faust, aiokafka and the local tansu broker, and every private attribute used.

`install(settings, stage_topics)` puts in the work-arounds that apply, in one
call before the worker starts: Faust's direct message drain, its seek of
uncommitted partitions, one RocksDB memory budget for every table partition, its
tables' start without a one-second wait, a bulk read of the changelogs before Faust's
recovery and an assignor that keeps each process on its partitions across a restart
always; the tansu end-offset, fetch-wait and group member id
fixes only for the local broker (`tansu_offsets.is_local_tansu`). The worker reaches
Faust's private parts only through the functions of `faust_private`. One more is
not installed but registered by the topology, a timer: `faust_stalls` reads a
stage partition again when Faust dropped its last messages in a rebalance.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping, Optional

from . import (faust_bulk_recovery, faust_drain, faust_rocksdb_memory, faust_seek, faust_sticky, faust_tables_start,
               tansu_fetch, tansu_member_id, tansu_offsets)
from .faust_private import aiokafka_producer, held_partitions, owner_url, partition_db, route_request

__all__ = ["aiokafka_producer", "held_partitions", "install", "owner_url", "partition_db", "route_request",
           "uninstall"]

log = logging.getLogger("harmrank")


def install(settings: Any, stage_topics: Iterable[str], environ: Optional[Mapping[str, str]] = None) -> list:
    """Install the work-arounds this worker needs; returns their names, for the log.

    Raises ValueError (naming the variable) for a bad ``HARMRANK_TANSU_FIX`` or
    ``HARMRANK_TANSU_FETCH_WAIT_MS``, before anything is installed.
    """
    from ..kafka_clients import aiokafka_kwargs

    servers = settings.bootstrap_servers
    local = tansu_offsets.is_local_tansu(servers, environ)
    fetch_wait_ms = tansu_fetch.wait_from_env(environ)  # checked even when unused: a typo is said at once
    installed = ["faust direct drain", "faust seek of uncommitted partitions",
                 "one RocksDB block cache and write-buffer manager for every table partition",
                 "faust tables started without a wait", "partition assignment kept across restarts",
                 "changelogs read in bulk before Faust's recovery"]
    faust_drain.install()
    faust_tables_start.install()
    faust_sticky.install()
    faust_seek.install(stage_topics)
    faust_rocksdb_memory.install()
    faust_bulk_recovery.install(servers, aiokafka_kwargs(settings))
    if local:
        tansu_offsets.install_tansu_end_offset_fix(aiokafka_kwargs(settings))
        tansu_fetch.install_fetch_wait(fetch_wait_ms)
        tansu_member_id.install(settings.data_dir)
        installed += ["tansu end offsets from the fetch high watermark", f"tansu fetch wait {fetch_wait_ms} ms",
                      "tansu groups rejoined under the last member id"]
    return installed


def uninstall() -> None:
    """Undo :func:`install` (for tests)."""
    faust_bulk_recovery.uninstall()
    faust_drain.uninstall()
    faust_seek.uninstall()
    faust_rocksdb_memory.uninstall()
    faust_tables_start.uninstall()
    faust_sticky.uninstall()
    tansu_offsets.uninstall()
    tansu_fetch.uninstall()
    tansu_member_id.uninstall()
