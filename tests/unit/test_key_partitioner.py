"""The producer's partitioner and the stray-record check place a key where Kafka's default
partitioner (aiokafka's, the Java client's) does, with the hash kept or not."""
from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

from runtime.partitioning import KeyPartitioner, home_partition, key_hash


def test_the_kept_hash_places_every_key_as_kafkas_default_partitioner():
    default, ours = DefaultPartitioner(), KeyPartitioner()
    keys = [f"gen-{i:06d}".encode() for i in range(2000)] + [b"", "山田-1".encode(), b"x" * 300]
    for n in (1, 3, 8, 24):
        parts = list(range(n))
        for key in keys:
            expected = default(key, parts, parts)
            assert ours(key, parts, parts) == expected == home_partition(key, n)
            assert ours(key, parts, parts) == expected  # again: from the kept hash
    assert key_hash.cache_info().hits > 0


def test_a_record_without_a_key_goes_to_an_available_partition():
    ours = KeyPartitioner()
    assert {ours(None, [0, 1, 2, 3], [2]) for _ in range(20)} == {2}
    assert ours(None, [0, 1], []) in (0, 1)
