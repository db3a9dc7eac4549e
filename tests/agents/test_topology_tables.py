"""agents.topology: the tables' RocksDB memory is bounded: one budget shared by every partition once installed."""
from __future__ import annotations

from pathlib import Path

import pytest

from agents.compat import faust_rocksdb_memory, partition_db
from agents.settings import Settings
from agents.topology import MIB, ROCKSDB_OPTIONS, build_app
from schemas.harm_table import load_harm_table


def test_every_table_opens_rocksdb_with_bounded_memtables_and_cache(tmp_path):
    app, _ = build_app(Settings(data_dir=str(tmp_path), partitions=2), load_harm_table(None))
    tables = list(app.tables.values())
    assert sorted(t.name for t in tables) == ["ledger", "ranker", "register"]
    for table in tables:
        opts = table.data.rocksdb_options
        assert opts.use_rocksdict
        assert opts.write_buffer_size == ROCKSDB_OPTIONS["write_buffer_size"] <= 8 * MIB
        assert opts.max_write_buffer_number == ROCKSDB_OPTIONS["max_write_buffer_number"] <= 2
        assert opts.block_cache_size == ROCKSDB_OPTIONS["block_cache_size"] <= 16 * MIB
    assert ROCKSDB_OPTIONS == {"write_buffer_size": 8 * MIB, "max_write_buffer_number": 2,
                               "block_cache_size": 16 * MIB}  # each table got a copy, none was emptied


@pytest.fixture
def shared_memory():
    faust_rocksdb_memory.uninstall()
    faust_rocksdb_memory.install()
    yield
    faust_rocksdb_memory.uninstall()


def open_every_partition(tmp_path, partitions: int) -> list:
    """(table name, partition, rocksdict database) for every partition of the worker's tables."""
    app, _ = build_app(Settings(data_dir=str(tmp_path), partitions=partitions), load_harm_table(None))
    return [(t.name, p, partition_db(t, p)) for t in app.tables.values() for p in range(t.partitions)]


def options_file(db) -> str:
    """The newest OPTIONS file RocksDB wrote in the database's directory."""
    files = sorted(Path(db.path()).glob("OPTIONS-*"), key=lambda f: int(f.name.split("-")[1]))
    return files[-1].read_text()


def test_every_partition_shares_one_block_cache_that_holds_the_memtables_and_index_blocks(tmp_path, shared_memory):
    dbs = open_every_partition(tmp_path, partitions=2)
    assert len(dbs) == 5
    for name, p, db in dbs:
        assert db.property_int_value("rocksdb.block-cache-capacity") == faust_rocksdb_memory.CACHE_BYTES, (name, p)
        opts = options_file(db)
        assert "cache_index_and_filter_blocks=true" in opts, (name, p)
        assert "pin_l0_filter_and_index_blocks_in_cache=true" in opts, (name, p)
    (_, _, writer), (_, _, reader) = dbs[0], dbs[-1]
    before = reader.property_int_value("rocksdb.block-cache-usage")
    for i in range(20_000):  # about 2 MiB into one partition's memtable
        writer[b"k%06d" % i] = b"v" * 100
    # the write-buffer manager charges the memtable to the cache every partition reads
    assert reader.property_int_value("rocksdb.block-cache-usage") >= before + MIB


def test_without_the_shared_budget_each_partition_has_its_own_cache(tmp_path):
    faust_rocksdb_memory.uninstall()
    for name, p, db in open_every_partition(tmp_path, partitions=1):
        assert db.property_int_value("rocksdb.block-cache-capacity") == ROCKSDB_OPTIONS["block_cache_size"]
        assert "cache_index_and_filter_blocks=false" in options_file(db), (name, p)
