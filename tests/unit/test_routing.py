"""Partition ownership is spread evenly and stably over the instances."""

from __future__ import annotations

from command_api.eventstore.routing import assign_round_robin


def test_partitions_are_dealt_evenly_between_instances() -> None:
    assignment = assign_round_robin({"t": list(range(6))}, ["http://b", "http://a"])
    assert assignment == {"http://a": {"t": [0, 2, 4]}, "http://b": {"t": [1, 3, 5]}}


def test_a_single_instance_owns_every_partition() -> None:
    assert assign_round_robin({"t": [2, 0, 1]}, ["http://a"]) == {"http://a": {"t": [0, 1, 2]}}
