"""One memory budget for every RocksDB database of a worker.

Faust opens one database per table partition (three tables times the partitions: 24 here),
each with a block cache and memtables of its own. Bounded one by one (two 4 MiB memtables, an
8 MiB cache) they still added up to 384 MiB, and in a soak the caches filled a little more each
minute, one database after another. Here every database of the worker shares one block cache,
and the memtables are charged to that same cache by one write buffer manager (RocksDB's way of
capping memtables and cache under a single limit): CALLBILL_ROCKSDB_MEMORY is what RocksDB
holds, whatever the number of partitions. Created once, by the composition root, for rocksdict
(the driver Faust uses with it); `apply()` teaches Faust's options to use them.
"""
from __future__ import annotations

from typing import Any

CACHE, WRITE_BUFFERS = "callbill_block_cache", "callbill_write_buffer_manager"  # keys in a table's options


def shared(memory: int) -> dict[str, Any]:
    """The table options that make a database use the worker's shared cache and write buffer
    manager: memtables may take half of `memory`, the cache's blocks the rest."""
    import rocksdict

    cache = rocksdict.Cache(memory)
    manager = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(memory // 2, False, cache)
    return {CACHE: cache, WRITE_BUFFERS: manager}


def apply() -> None:
    """Patch Faust's RocksDB options (idempotent): a database opened with our keys in its
    table options uses the shared objects instead of a cache of its own."""
    from faust.stores import rocksdb as faust_rocksdb

    options = faust_rocksdb.RocksDBOptions
    if getattr(options.as_options, "callbill", False):
        return
    original = options.as_options

    def as_options(self: Any) -> Any:
        cache, manager = self.extra_options.get(CACHE), self.extra_options.get(WRITE_BUFFERS)
        if not self.use_rocksdict or cache is None:
            return original(self)
        import rocksdict

        db = rocksdict.Options(raw_mode=True)
        db.create_if_missing(True)
        db.set_max_open_files(self.max_open_files)
        db.set_write_buffer_size(self.write_buffer_size)
        db.set_target_file_size_base(self.target_file_size_base)
        db.set_max_write_buffer_number(self.max_write_buffer_number)
        if manager is not None:
            db.set_write_buffer_manager(manager)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, block_based=True)
        table.set_block_cache(cache)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        db.set_block_based_table_factory(table)
        return db

    as_options.callbill = True  # type: ignore[attr-defined]
    options.as_options = as_options
