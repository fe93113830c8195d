"""The catalog query side: product lookups from PostgreSQL, full-text search from Elasticsearch."""
