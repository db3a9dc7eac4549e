"""agents.topology: the tables' RocksDB memory is bounded, not Faust's per-database defaults."""
from __future__ import annotations

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
