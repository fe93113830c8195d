"""Which partition holds an aggregate: the Java client's murmur2 partitioner, so that every client
that keys by aggregate id agrees."""

from __future__ import annotations

from typing import Any

from aiokafka.partitioner import murmur2

from command_api.eventstore.errors import UnknownAggregate
from command_api.eventstore.model import AggregateKind

# Numeric ids are allocated by each partition's single writer as `n * ID_STRIDE + partition`,
# so they are unique without coordination as long as a topic has at most ID_STRIDE partitions.
ID_STRIDE = 1000


def partition_for_key(key: bytes, partitions: int) -> int:
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def partition_of(kind: AggregateKind[Any], aggregate_id: str, partitions: int) -> int:
    """Where an aggregate lives: a numbered one in the partition its number names, others by hash."""
    if kind.id_prefix is None:
        key = aggregate_id if kind.partition_key is None else kind.partition_key(aggregate_id)
        return partition_for_key(key.encode(), partitions)
    number = aggregate_id.removeprefix(kind.id_prefix)
    if not number.isdigit() or int(number) % ID_STRIDE >= partitions or int(number) < ID_STRIDE:
        raise UnknownAggregate(f"no {kind.name} has id {number}")
    return int(number) % ID_STRIDE
