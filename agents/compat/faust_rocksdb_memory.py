"""One RocksDB block cache and one write-buffer manager for every table partition of the worker.

Faust's rocksdb store (faust-streaming 0.15.3, `faust.stores.rocksdb.RocksDBOptions.as_options`)
gives each partition database a block cache of its own and memtables bounded only per
database, so the worker's RocksDB memory grows with the number of partitions it holds.
`install(cache_bytes, write_buffer_bytes)` makes every database it opens with rocksdict
share one LRU block cache and one write-buffer manager whose memtables are charged to
that cache, so RocksDB's memory is bounded by the cache's capacity whatever the
partitions. Index and filter blocks live in the cache (not unbounded on the heap), those
of level 0 pinned there, since every read consults them. The memtables get at most half
the cache (`WRITE_BUFFER_BYTES`), so reads keep the other half.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

log = logging.getLogger(__name__)

MIB = 1 << 20
CACHE_BYTES = 64 * MIB  # the block cache: data, index and filter blocks, and the memtables charged to it
WRITE_BUFFER_BYTES = 32 * MIB  # every memtable of the worker together

_original: Any = None
_shared: Optional[tuple] = None  # (the block cache, the write-buffer manager)


def _table_factory(cache: Any, bloom_bits: int) -> Any:
    """Faust's block-based table options (bloom filter, binary-search index) over the shared cache."""
    import rocksdict

    table = rocksdict.BlockBasedOptions()
    table.set_bloom_filter(bloom_bits, block_based=True)
    table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
    table.set_block_cache(cache)
    table.set_cache_index_and_filter_blocks(True)
    table.set_pin_l0_filter_and_index_blocks_in_cache(True)
    return table


def _as_options(self: Any) -> Any:
    options = _original(self)
    if self.use_rocksdict and _shared is not None:
        cache, write_buffers = _shared
        options.set_block_based_table_factory(_table_factory(cache, self.bloom_filter_size))
        options.set_write_buffer_manager(write_buffers)
    return options


def install(cache_bytes: int = CACHE_BYTES, write_buffer_bytes: int = WRITE_BUFFER_BYTES) -> bool:
    """Share one block cache and one write-buffer manager among the databases opened from now on.

    False (and nothing changed) if already installed. Raises ValueError for a size below 1 MiB.
    """
    global _original, _shared
    import rocksdict
    from faust.stores.rocksdb import RocksDBOptions

    if min(cache_bytes, write_buffer_bytes) < 1 << 20:
        raise ValueError("the RocksDB block cache and write buffers need at least 1 MiB each")
    if _original is not None:
        return False
    cache = rocksdict.Cache(cache_bytes)
    write_buffers = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
        write_buffer_bytes, False, cache)  # no stall: a full budget makes RocksDB flush, not wait
    _shared = (cache, write_buffers)
    _original = RocksDBOptions.as_options
    RocksDBOptions.as_options = _as_options  # type: ignore[method-assign]
    log.info("RocksDB: one %d MiB block cache and %d MiB of write buffers for every table partition",
             cache_bytes >> 20, write_buffer_bytes >> 20)
    return True


def is_installed() -> bool:
    return _original is not None


def shared_cache() -> Optional[Any]:
    """The block cache every database shares, or None if not installed."""
    return _shared[0] if _shared else None


def uninstall() -> None:
    """Undo :func:`install` (for tests); databases already open keep the shared cache."""
    global _original, _shared
    from faust.stores.rocksdb import RocksDBOptions

    if _original is not None:
        RocksDBOptions.as_options = _original  # type: ignore[method-assign]
    _original = None
    _shared = None
