"""Which partition holds an aggregate: the Java client's murmur2 partitioner, so that every client
that keys by aggregate id agrees."""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_for_key(key: bytes, partitions: int) -> int:
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


# Numeric ids are allocated by each partition's single writer as `n * ID_STRIDE + partition`,
# so they are unique without coordination as long as a topic has at most ID_STRIDE partitions.
ID_STRIDE = 1000
