"""The read-model builders: consume the topics, write PostgreSQL (and Elasticsearch) projections."""
