"""Topic names: one topic per bounded context, keyed by aggregate id.

A deployment's namespace prefixes every topic (and every consumer group and transactional id), so
that several deployments, or test runs, can share one Kafka cluster without sharing a log.
"""

from typing import Final

USERS: Final = "users.events"
CATALOG: Final = "catalog.events"
ORDERS: Final = "orders.events"
PAYMENTS: Final = "payments.events"

ALL: Final = (USERS, CATALOG, ORDERS, PAYMENTS)


def dead_letters(topic: str) -> str:
    """Where projectors put the records of `topic` they cannot apply (with or without the namespace:
    `dead_letters(in_namespace(ns, t)) == in_namespace(ns, dead_letters(t))`)."""
    return f"{topic}.dead-letters"


DEAD_LETTERS: Final = tuple(dead_letters(topic) for topic in ALL)


def checkpoints(topic: str) -> str:
    """Where the command side keeps checkpoints of its partitions' stores (compacted: derived data,
    one checkpoint per partition kept; deleting it costs a full replay, never a fact)."""
    return f"{topic}.checkpoints"


CHECKPOINTS: Final = tuple(checkpoints(topic) for topic in ALL)


def in_namespace(namespace: str, name: str) -> str:
    return f"{namespace}.{name}"
