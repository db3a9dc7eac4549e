"""agents.compat.install: one call puts in the work-arounds that apply, the tansu ones only for the local broker."""
from __future__ import annotations

import pytest
from faust.transport.consumer import Consumer

from agents import compat
from agents.compat import (faust_bulk_recovery, faust_drain, faust_rocksdb_memory, faust_seek, faust_sticky, faust_tables_start, tansu_fetch,
                           tansu_member_id, tansu_offsets)
from agents.settings import Settings


@pytest.fixture(autouse=True)
def clean():
    compat.uninstall()
    yield
    compat.uninstall()


def test_a_loopback_broker_gets_every_work_around():
    names = compat.install(Settings(broker="kafka://127.0.0.1:9092"), ["stage-a"], environ={})
    assert faust_drain.is_installed() and faust_seek.is_installed() and faust_rocksdb_memory.is_installed()
    assert tansu_offsets.is_installed() and tansu_fetch.is_installed() and tansu_member_id.is_installed()
    assert faust_tables_start.is_installed() and faust_sticky.is_installed() and faust_bulk_recovery.is_installed()
    assert tansu_fetch.current_wait_ms() == tansu_fetch.WORKER_FETCH_WAIT_MS
    assert len(names) == 9


def test_a_remote_broker_gets_only_the_faust_ones():
    compat.install(Settings(broker="kafka://kafka.example:9092"), ["stage-a"], environ={})
    assert faust_drain.is_installed() and faust_seek.is_installed() and faust_rocksdb_memory.is_installed()
    assert faust_tables_start.is_installed() and faust_sticky.is_installed() and faust_bulk_recovery.is_installed()
    assert not tansu_offsets.is_installed() and not tansu_fetch.is_installed() and not tansu_member_id.is_installed()


def test_a_bad_variable_is_refused_before_anything_is_installed():
    original = Consumer._drain_messages
    with pytest.raises(ValueError, match="HARMRANK_TANSU_FETCH_WAIT_MS"):
        compat.install(Settings(), ["stage-a"], environ={"HARMRANK_TANSU_FETCH_WAIT_MS": "soon"})
    with pytest.raises(ValueError, match="HARMRANK_TANSU_FIX"):
        compat.install(Settings(), ["stage-a"], environ={"HARMRANK_TANSU_FIX": "maybe"})
    assert Consumer._drain_messages is original and not faust_seek.is_installed()
    assert not faust_rocksdb_memory.is_installed() and not faust_tables_start.is_installed()
    assert not faust_sticky.is_installed() and not tansu_member_id.is_installed()
    assert not faust_bulk_recovery.is_installed()


def test_uninstall_undoes_everything():
    compat.install(Settings(), ["stage-a"], environ={"HARMRANK_TANSU_FIX": "1"})
    compat.uninstall()
    assert not any(m.is_installed() for m in (faust_bulk_recovery, faust_drain, faust_seek, faust_rocksdb_memory, faust_sticky,
                                              faust_tables_start, tansu_offsets, tansu_fetch, tansu_member_id))


def test_the_end_offset_fix_and_the_bulk_reader_reach_the_broker_with_the_security_settings():
    settings = Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="u", kafka_sasl_password="p")
    compat.install(settings, ["stage-a"], environ={"HARMRANK_TANSU_FIX": "1"})
    assert tansu_offsets._client_kwargs["security_protocol"] == "SASL_PLAINTEXT"
    assert tansu_offsets._client_kwargs["sasl_plain_username"] == "u"
    assert faust_bulk_recovery._client["security_protocol"] == "SASL_PLAINTEXT"
    assert faust_bulk_recovery._client["sasl_plain_username"] == "u"
