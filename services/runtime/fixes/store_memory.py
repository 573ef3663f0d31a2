"""One RocksDB memory budget per worker, however many table partitions it owns.

Faust opens one RocksDB per table partition, each with a block cache of its own (`block_cache_size`)
and memtables of its own: a worker owning 3 tables × 4 partitions could cache 12 × the setting, and
every partition it takes over multiplies it again. In the 1,000,000-report soak those caches were
still filling when the run ended (+6–7 MB over its second half, of the worker's +26–34 MB: bench/NOTES.md,
seventh session). Here every store of the process shares:

- one LRU cache of `rocksdb_block_cache_mb` for data blocks, and for index and filter blocks too
  (by default RocksDB keeps those beside the cache, per SST file, growing with the data);
- one write buffer manager: once the memtables of every store hold `rocksdb_memtables_mb` together,
  RocksDB flushes one; their memory is charged to the same cache, so the cache gives way to them.

So the worker's RocksDB memory is bounded by the two settings, not by the partition count.
"""

from __future__ import annotations

from typing import Any

import rocksdict
from faust.stores.rocksdb import RocksDBOptions


class StoreMemory:
    """The cache and the write buffer manager every RocksDB store of this process is opened with."""

    def __init__(self, cache_mb: int, memtables_mb: int) -> None:
        self.cache = rocksdict.Cache(cache_mb << 20)
        self.write_buffers = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            memtables_mb << 20, False, self.cache
        )

    def usage_bytes(self) -> int:
        """Cache contents, memtables included (they are charged to it)."""
        return int(self.cache.get_usage())

    def options(self, faust_options: RocksDBOptions) -> RocksDBOptions:
        """Faust's options for one store, opening it with this process's cache and memtable budget."""
        shared = _SharedOptions.__new__(_SharedOptions)
        shared.__dict__.update(faust_options.__dict__)
        shared.memory = self
        return shared


class _SharedOptions(RocksDBOptions):
    memory: StoreMemory

    def as_options(self) -> Any:
        """Faust's options (memtable size, file sizes, bloom filter) with the shared cache and manager."""
        options = super().as_options()
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, True)
        table.set_block_cache(self.memory.cache)
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)  # the newest files' are read the most
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table)
        options.set_write_buffer_manager(self.memory.write_buffers)
        return options
