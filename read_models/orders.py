"""Where the orders context's read models live (all in the orders database)."""

from __future__ import annotations

# The orders side's replica of the catalog (built from the catalog topic): what a cart may hold.
ORDER_PRODUCTS = "orders-products"
ORDER_PRODUCTS_TABLE = "catalog_products"
# Carts and orders (built from the orders topic).
CARTS = "orders-carts"
CARTS_TABLE = "carts"
ORDERS = "orders"
ORDERS_TABLE = "orders"
