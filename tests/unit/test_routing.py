"""Partition ownership is spread evenly over the instances, and stays where it is when it can."""

from __future__ import annotations

from command_api.eventstore.routing import assign_sticky, decode_advertisement


def test_partitions_are_dealt_evenly_between_new_instances() -> None:
    assignment = assign_sticky({"t": list(range(6))}, ["http://b", "http://a"])
    assert assignment == {"http://a": {"t": [0, 1, 2]}, "http://b": {"t": [3, 4, 5]}}


def test_a_single_instance_owns_every_partition() -> None:
    assert assign_sticky({"t": [2, 0, 1]}, ["http://a"]) == {"http://a": {"t": [0, 1, 2]}}


def test_an_instance_joining_takes_only_its_share_and_the_others_keep_the_rest() -> None:
    before = {"http://a": {"t": [0, 1, 2, 3, 4, 5]}}
    after = assign_sticky({"t": list(range(6))}, ["http://a", "http://b"], before)
    assert after["http://a"] == {"t": [0, 1, 2]}
    assert after["http://b"] == {"t": [3, 4, 5]}


def test_when_an_instance_leaves_only_its_partitions_move() -> None:
    before = {"http://a": {"t": [0, 3]}, "http://b": {"t": [1, 4]}, "http://c": {"t": [2, 5]}}
    after = assign_sticky({"t": list(range(6))}, ["http://a", "http://b"], before)
    assert set(after["http://a"]["t"]) >= {0, 3}
    assert set(after["http://b"]["t"]) >= {1, 4}
    assert sorted(after["http://a"]["t"] + after["http://b"]["t"]) == list(range(6))


def test_a_third_instance_moves_a_third_of_the_partitions() -> None:
    before = {"http://a": {"t": [0, 1, 2, 3, 4, 5]}, "http://b": {"t": [6, 7, 8, 9, 10, 11]}}
    after = assign_sticky({"t": list(range(12))}, ["http://a", "http://b", "http://c"], before)
    moved = [p for member, held in before.items() for p in held["t"] if p not in after[member].get("t", [])]
    assert len(moved) == 4
    assert sorted(after["http://c"]["t"]) == sorted(moved)


def test_shares_differ_by_at_most_one_and_the_largest_go_to_who_held_most() -> None:
    before = {"http://a": {"t": [0, 1, 2, 3, 4]}, "http://b": {"t": [5, 6]}}
    after = assign_sticky({"t": list(range(7))}, ["http://a", "http://b"], before)
    assert len(after["http://a"]["t"]) == 4 and len(after["http://b"]["t"]) == 3
    assert set(after["http://b"]["t"]) >= {5, 6}


def test_a_member_of_the_previous_version_advertises_its_url_alone() -> None:
    assert decode_advertisement(b"http://a:6000") == ("http://a:6000", {})
    assert decode_advertisement(b'{"url": "http://a:6000", "owned": {"t": [1]}}') == (
        "http://a:6000",
        {"t": [1]},
    )
