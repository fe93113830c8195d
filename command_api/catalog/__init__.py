"""The catalog context's command side: products, stock, and stock reservations for orders."""
