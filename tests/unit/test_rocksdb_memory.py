"""Every RocksDB database of a worker within one budget: one block cache they all share, with
the memtables charged to it (runtime/rocksdb_memory.py), however many table partitions."""
from __future__ import annotations

import os

from faust.stores.rocksdb import RocksDBOptions

from runtime import rocksdb_memory
from runtime.settings import Settings

MIB = 1024 * 1024


def test_every_database_shares_the_one_cache_and_its_memtables_are_charged_to_it(tmp_path, monkeypatch):
    rocksdb_memory.apply()
    monkeypatch.setenv("CALLBILL_STORE", "rocksdb://")
    monkeypatch.setenv("CALLBILL_ROCKSDB_MEMORY", str(16 * MIB))
    s = Settings(_env_file=None)
    shared = rocksdb_memory.shared(s.rocksdb_memory)
    options = RocksDBOptions(**s.table_store_options(), use_rocksdict=True, **shared)
    dbs = [options.open(str(tmp_path / f"ledger-{p}.db")) for p in range(3)]
    for db in dbs:
        for k in range(5000):
            db[f"k{k}".encode()] = os.urandom(200)
    assert shared[rocksdb_memory.WRITE_BUFFERS].get_usage() > 3 * 5000 * 200  # the memtables, counted once for all
    for db in dbs:
        db.flush()
        for k in range(0, 5000, 3):
            assert db.get(f"k{k}".encode()) is not None
    usage = {db.property_int_value("rocksdb.block-cache-usage") for db in dbs}
    capacity = {db.property_int_value("rocksdb.block-cache-capacity") for db in dbs}
    assert capacity == {16 * MIB}  # the worker's budget, not a cache per database
    assert len(usage) == 1 and 0 < usage.pop() <= 16 * MIB  # one cache: every database sees the same usage
    assert shared[rocksdb_memory.CACHE].get_usage() <= 16 * MIB
    for db in dbs:
        db.close()


def test_a_store_without_the_shared_objects_keeps_fausts_own_options(tmp_path):
    rocksdb_memory.apply()
    rocksdb_memory.apply()  # idempotent
    db = RocksDBOptions(block_cache_size=4 * MIB, use_rocksdict=True).open(str(tmp_path / "plain.db"))
    assert db.property_int_value("rocksdb.block-cache-capacity") == 4 * MIB
    db.close()
