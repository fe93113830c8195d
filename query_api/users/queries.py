"""SQL of the users read model."""

from __future__ import annotations

from typing import Any

from read_models.pool import Pool


async def user_by_id(pool: Pool, user_id: int) -> dict[str, Any] | None:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT id, username, email, role, registered_at FROM users WHERE id = %s", (user_id,)
        )
        row: dict[str, Any] | None = await cursor.fetchone()
        return row
