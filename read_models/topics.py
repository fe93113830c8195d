"""Which topic each read model is built from (before the deployment's namespace)."""

from __future__ import annotations

from event_schemas import topics
from read_models.catalog import PRODUCT_SEARCH, PRODUCTS
from read_models.orders import CARTS, ORDER_PRODUCTS, ORDERS
from read_models.payments import PAYABLE_ORDERS, PAYMENTS
from read_models.users import USERS

PROJECTION_TOPICS: dict[str, str] = {
    USERS: topics.USERS,
    PRODUCTS: topics.CATALOG,
    PRODUCT_SEARCH: topics.CATALOG,
    ORDER_PRODUCTS: topics.CATALOG,
    CARTS: topics.ORDERS,
    ORDERS: topics.ORDERS,
    PAYABLE_ORDERS: topics.ORDERS,
    PAYMENTS: topics.PAYMENTS,
}
