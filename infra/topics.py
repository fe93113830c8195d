"""Creates the event topics, and the dead-letter topics of the records projectors could not apply:
the log is the source of truth, so nothing is ever deleted from either.

`python -m infra.topics` is idempotent; it also checks that existing topics keep infinite retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from config.settings import Settings, get_settings
from event_schemas import topics


def topic_configs(settings: Settings) -> dict[str, str]:
    return {
        "retention.ms": "-1",
        "retention.bytes": "-1",
        "cleanup.policy": "delete",
        "min.insync.replicas": str(settings.kafka_min_insync_replicas),
        "unclean.leader.election.enable": "false",
    }


async def ensure_topics(settings: Settings) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        names = [topics.in_namespace(settings.namespace, t) for t in topics.ALL + topics.DEAD_LETTERS]
        missing = [t for t in names if t not in existing]
        for topic in missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            topic,
                            num_partitions=settings.kafka_partitions,
                            replication_factor=settings.kafka_replication_factor,
                            topic_configs=topic_configs(settings),
                        )
                    ]
                )
        # Topics that were already there must still keep their log forever.
        kept = [t for t in names if t in existing]
        described = (
            await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in kept])
            if kept
            else []
        )
        for response in described:
            for resource in response.resources:
                name, entries = resource[3], resource[4]
                retention = {entry[0]: entry[1] for entry in entries}.get("retention.ms")
                if retention != "-1":
                    raise RuntimeError(
                        f"topic {name} has retention.ms={retention}; the event log must be kept forever"
                    )
        return missing
    finally:
        await admin.close()


def main() -> None:
    settings = get_settings()
    created = asyncio.run(ensure_topics(settings))
    print(f"topics of namespace {settings.namespace!r} ready ({len(created)} created)", file=sys.stderr)


if __name__ == "__main__":
    main()
