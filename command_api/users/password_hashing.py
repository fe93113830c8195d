"""Password hashing (argon2id, ~35 ms of CPU each with OWASP's parameters) off the event loop and bounded: at most `concurrency`
hashes run at once in this process, on threads of their own, so a flood of logins or registrations
cannot take every core from the other routes. A request that waits longer than `wait_seconds` for its
turn answers 503 with `Retry-After` instead of queueing without end."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

from web.errors import RetryLater

T = TypeVar("T")


class HashingBusy(RetryLater):
    """Every turn to hash a password was taken for longer than this request may wait."""


class PasswordHashing:
    def __init__(self, hasher: PasswordHasher, *, concurrency: int, wait_seconds: float) -> None:
        self._hasher = hasher
        self._wait_seconds = wait_seconds
        self._turns = asyncio.Semaphore(concurrency)
        # The threads bound the hashing itself, even when a request gives up its turn while its hash runs.
        self._threads = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="password-hashing")
        # Verifying against a real hash for unknown emails keeps the response time the same.
        self._decoy_hash = hasher.hash("decoy password for unknown emails")

    async def hash(self, password: str) -> str:
        return await self._in_turn(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether the password matches; with no hash (an unknown email) it is checked, just as long,
        against a decoy and does not match."""
        if password_hash is None:
            await self._in_turn(self._matches, self._decoy_hash, password)
            return False
        return await self._in_turn(self._matches, password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with other parameters than the current ones."""
        return self._hasher.check_needs_rehash(password_hash)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def _in_turn(self, work: Callable[..., T], *arguments: str) -> T:
        try:
            async with asyncio.timeout(self._wait_seconds):
                await self._turns.acquire()
        except TimeoutError:
            raise HashingBusy(
                "The server is busy with other logins and registrations; retry shortly.", retry_after=1
            ) from None
        try:
            return await asyncio.get_running_loop().run_in_executor(self._threads, work, *arguments)
        finally:
            self._turns.release()

    def _matches(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except VerificationError:
            return False
