"""Serialization at the boundary: event classes by (type, version), bytes on the wire, upcasters.

The wire format is one JSON object: the envelope fields, `event_type`, `schema_version`,
`aggregate_type` and a `payload` object. Type and version also travel as Kafka headers so a consumer
can route or skip a record without parsing its value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

from event_schemas import catalog, orders, payments, users
from event_schemas.envelope import ENVELOPE_FIELDS, Event, payload_of

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]

EVENT_TYPE_HEADER = "event_type"
SCHEMA_VERSION_HEADER = "schema_version"


class UnknownEvent(Exception):
    """A record whose (event_type, schema_version) this code base does not know."""


class EventRegistry:
    """Maps (event_type, schema_version) to its class and upgrades old versions on read."""

    def __init__(self, classes: Iterable[type[Event]] = ()) -> None:
        self._classes: dict[tuple[str, int], type[Event]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        for cls in classes:
            self.register(cls)

    def register(self, cls: type[Event]) -> None:
        key = (cls.event_type, cls.schema_version)
        if key in self._classes:
            raise ValueError(f"{key} is registered twice")
        self._classes[key] = cls

    def classes(self) -> list[type[Event]]:
        return list(self._classes.values())

    def register_upcaster(self, event_type: str, from_version: int, upcast: Upcaster) -> None:
        """`upcast` turns a version-`from_version` payload into a version `from_version + 1` one."""
        self._upcasters[(event_type, from_version)] = upcast

    def to_bytes(self, event: Event) -> bytes:
        envelope = event.model_dump(mode="json", include=set(ENVELOPE_FIELDS))
        envelope |= {
            "event_type": event.event_type,
            "schema_version": event.schema_version,
            "aggregate_type": event.aggregate_type,
            "payload": payload_of(event),
        }
        return orjson.dumps(envelope)

    def headers(self, event: Event) -> list[tuple[str, bytes]]:
        return [
            (EVENT_TYPE_HEADER, event.event_type.encode()),
            (SCHEMA_VERSION_HEADER, str(event.schema_version).encode()),
        ]

    def from_bytes(self, data: bytes) -> Event:
        document = orjson.loads(data)
        event_type: str = document.pop("event_type")
        version: int = document.pop("schema_version")
        document.pop("aggregate_type", None)
        payload: Payload = document.pop("payload")
        while (event_type, version) not in self._classes:
            upcast = self._upcasters.get((event_type, version))
            if upcast is None:
                raise UnknownEvent(f"{event_type} v{version}")
            payload, version = upcast(payload), version + 1
        cls = self._classes[(event_type, version)]
        return cls.model_validate(document | payload)


REGISTRY = EventRegistry(
    [
        users.UserRegistered,
        users.UserRoleChanged,
        users.UserSessionsRevoked,
        users.UserPasswordRehashed,
        catalog.ProductCreated,
        catalog.ProductUpdated,
        catalog.ProductDeleted,
        catalog.StockAdjusted,
        catalog.StockReserved,
        catalog.StockReservationRejected,
        catalog.StockReleased,
        catalog.StockReservationCommitted,
        catalog.StockReturned,
        orders.CartLineAdded,
        orders.CartLineQuantityChanged,
        orders.CartLineRemoved,
        orders.CartCheckedOut,
        orders.OrderPlaced,
        orders.OrderConfirmed,
        orders.OrderRejected,
        orders.OrderCancelled,
        orders.OrderExpired,
        orders.OrderPaid,
        orders.OrderRefunded,
        payments.PaymentInitiated,
        payments.PaymentSucceeded,
        payments.PaymentFailed,
        payments.PaymentRefunded,
        payments.PaymentRequested,
    ]
)
REGISTRY.register_upcaster("PaymentFailed", 1, payments.payment_failed_v1_to_v2)
REGISTRY.register_upcaster("CartCheckedOut", 1, orders.cart_checked_out_v1_to_v2)
