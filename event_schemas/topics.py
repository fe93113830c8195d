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


def in_namespace(namespace: str, name: str) -> str:
    return f"{namespace}.{name}"
