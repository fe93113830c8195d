"""The catalog read models: products in PostgreSQL, and the product search index in Elasticsearch."""
