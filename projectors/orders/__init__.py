"""The orders context's read models: its replica of the catalog, carts and orders (all in the orders
database)."""
