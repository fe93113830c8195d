"""Partition ownership for several instances of one command service.

Instances of a service form one Kafka consumer group over the service's topic. This assignor spreads
the partitions over the members and tells every member which instance (by URL) owns each partition,
the way Kafka Streams shares `application.server`, so an instance that receives a command for a
partition it does not own can forward it to the owner.

It is sticky: each member advertises the partitions it owns, and a rebalance leaves every partition
where it is unless balance needs it elsewhere. A partition that stays keeps its writer as it is; one
that moves costs its new owner a fencing and a catch-up, so an instance joining a group of n moves
only about 1/(n+1) of the partitions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import orjson
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

Routes = dict[str, dict[int, str]]  # topic -> partition -> owner URL
Owned = dict[str, list[int]]  # topic -> partitions


def assign_sticky(
    partitions: Mapping[str, list[int]], members: list[str], owned: Mapping[str, Owned] | None = None
) -> dict[str, dict[str, list[int]]]:
    """Pure assignment: every member gets an even share (sizes differ by at most one), keeping what
    it owned as far as its share allows; the rest is dealt in order. Deterministic, so every member
    computing it agrees."""
    owned = owned or {}
    pairs = sorted((topic, p) for topic in partitions for p in partitions[topic])
    if not members:
        return {}
    base, extra = divmod(len(pairs), len(members))
    previous = {
        member: sorted((topic, p) for topic, ps in owned.get(member, {}).items() for p in ps)
        for member in members
    }
    # The larger shares go to the members that held the most, so fewer partitions move.
    by_holding = sorted(members, key=lambda member: (-len(previous[member]), member))
    share = {member: base + (1 if rank < extra else 0) for rank, member in enumerate(by_holding)}
    given: dict[str, list[tuple[str, int]]] = {member: [] for member in members}
    free = set(pairs)
    for member in sorted(members):
        for pair in previous[member]:
            if pair in free and len(given[member]) < share[member]:
                given[member].append(pair)
                free.discard(pair)
    remaining = sorted(free)
    for member in sorted(members):
        while len(given[member]) < share[member]:
            given[member].append(remaining.pop(0))
    assignment: dict[str, dict[str, list[int]]] = {member: {} for member in members}
    for member, held in given.items():
        for topic, p in sorted(held):
            assignment[member].setdefault(topic, []).append(p)
    return assignment


def routing_assignor(
    instance_url: str, on_routes: Callable[[Routes], None], owned: Callable[[], Owned]
) -> type[AbstractPartitionAssignor]:
    """An assignor class for one instance: it advertises `instance_url` and what it owns, and reports
    the routes."""

    class RoutingAssignor(AbstractPartitionAssignor):  # type: ignore[misc]
        name = "commerce-routing"
        version = 1

        @classmethod
        def assign(
            cls, cluster: ClusterMetadata, members: Mapping[str, ConsumerProtocolMemberMetadata]
        ) -> dict[str, ConsumerProtocolMemberAssignment]:
            topics = {topic for metadata in members.values() for topic in metadata.subscription}
            partitions = {topic: sorted(cluster.partitions_for_topic(topic) or ()) for topic in topics}
            advertised = {
                member: decode_advertisement(metadata.user_data) for member, metadata in members.items()
            }
            # Two members may share a URL (a restart before the old session expired): keep them apart.
            keyed = {f"{url}#{member}": member for member, (url, _) in advertised.items()}
            by_member = assign_sticky(
                partitions, list(keyed), {key: advertised[member][1] for key, member in keyed.items()}
            )
            routes: dict[str, dict[str, str]] = {}
            for key, owned_topics in by_member.items():
                url = key.split("#", 1)[0]
                for topic, held in owned_topics.items():
                    routes.setdefault(topic, {}).update({str(partition): url for partition in held})
            user_data = orjson.dumps(routes)
            return {
                keyed[key]: ConsumerProtocolMemberAssignment(cls.version, sorted(held.items()), user_data)
                for key, held in by_member.items()
            }

        @classmethod
        def metadata(cls, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
            advertised = orjson.dumps({"url": instance_url, "owned": owned()})
            return ConsumerProtocolMemberMetadata(cls.version, list(topics), advertised)

        @classmethod
        def on_assignment(cls, assignment: ConsumerProtocolMemberAssignment) -> None:
            decoded = orjson.loads(assignment.user_data or b"{}")
            on_routes({topic: {int(p): url for p, url in held.items()} for topic, held in decoded.items()})

    return RoutingAssignor


def decode_advertisement(user_data: bytes) -> tuple[str, Owned]:
    """A member's URL and owned partitions; an instance of the previous version sent its URL alone."""
    try:
        decoded = orjson.loads(user_data)
    except orjson.JSONDecodeError:
        return user_data.decode(), {}
    if not isinstance(decoded, dict):
        return user_data.decode(), {}
    return str(decoded["url"]), {
        topic: [int(p) for p in ps] for topic, ps in decoded.get("owned", {}).items()
    }
