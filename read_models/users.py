"""Where the users read model lives."""

from __future__ import annotations

USERS = "users"  # the projection's name (its offsets are kept under this name)
USERS_TABLE = "users"
