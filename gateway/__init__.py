"""One process per service on the seed's port, serving that service's command and query routes."""
