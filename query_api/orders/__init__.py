"""The orders query side: carts and orders, from the read models in the orders database."""
