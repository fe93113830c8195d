"""Topic names: one topic per bounded context, keyed by aggregate id."""

from typing import Final

USERS: Final = "commerce.users.events"
CATALOG: Final = "commerce.catalog.events"
ORDERS: Final = "commerce.orders.events"
PAYMENTS: Final = "commerce.payments.events"

ALL: Final = (USERS, CATALOG, ORDERS, PAYMENTS)
