"""Which partition of a stage owns a key: one function, used by every stage, the driver and the API."""
from __future__ import annotations

import zlib


def partition_for(key: str, partitions: int) -> int:
    """The register / ledger partition that owns `key` (a crime_ref or a suspect id): stable across
    processes and restarts (CRC-32, not Python's salted hash)."""
    return zlib.crc32(key.encode()) % partitions
