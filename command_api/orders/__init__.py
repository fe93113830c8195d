"""The orders context's command side: carts, orders, and the routes the order saga drives."""
