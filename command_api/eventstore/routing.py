"""Partition ownership for several instances of one command service.

Instances of a service form one Kafka consumer group over the service's topic. This assignor spreads
the partitions over the members and tells every member which instance (by URL) owns each partition,
the way Kafka Streams shares `application.server`, so an instance that receives a command for a
partition it does not own can forward it to the owner.
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


def assign_round_robin(
    partitions: Mapping[str, list[int]], members: list[str]
) -> dict[str, dict[str, list[int]]]:
    """Pure assignment: each topic's partitions dealt in turn to the members (sorted, so stable)."""
    assignment: dict[str, dict[str, list[int]]] = {member: {} for member in members}
    ordered = sorted(members)
    turn = 0
    for topic in sorted(partitions):
        for partition in sorted(partitions[topic]):
            assignment[ordered[turn % len(ordered)]].setdefault(topic, []).append(partition)
            turn += 1
    return assignment


def routing_assignor(
    instance_url: str, on_routes: Callable[[Routes], None]
) -> type[AbstractPartitionAssignor]:
    """An assignor class for one instance: it advertises `instance_url` and reports the routes."""

    class RoutingAssignor(AbstractPartitionAssignor):  # type: ignore[misc]
        name = "commerce-routing"
        version = 0

        @classmethod
        def assign(
            cls, cluster: ClusterMetadata, members: Mapping[str, ConsumerProtocolMemberMetadata]
        ) -> dict[str, ConsumerProtocolMemberAssignment]:
            topics = {topic for metadata in members.values() for topic in metadata.subscription}
            partitions = {topic: sorted(cluster.partitions_for_topic(topic) or ()) for topic in topics}
            # Two members may share a URL (a restart before the old session expired): keep them apart.
            keyed = {
                f"{metadata.user_data.decode()}#{member}": member for member, metadata in members.items()
            }
            by_member = assign_round_robin(partitions, list(keyed))
            routes: dict[str, dict[str, str]] = {}
            for member, owned_topics in by_member.items():
                url = member.split("#", 1)[0]
                for topic, owned in owned_topics.items():
                    routes.setdefault(topic, {}).update({str(partition): url for partition in owned})
            user_data = orjson.dumps(routes)
            return {
                keyed[member]: ConsumerProtocolMemberAssignment(cls.version, sorted(owned.items()), user_data)
                for member, owned in by_member.items()
            }

        @classmethod
        def metadata(cls, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
            return ConsumerProtocolMemberMetadata(cls.version, list(topics), instance_url.encode())

        @classmethod
        def on_assignment(cls, assignment: ConsumerProtocolMemberAssignment) -> None:
            decoded = orjson.loads(assignment.user_data or b"{}")
            on_routes({topic: {int(p): url for p, url in owned.items()} for topic, owned in decoded.items()})

    return RoutingAssignor
