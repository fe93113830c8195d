"""Password hashing is bounded per process: at most `concurrency` hashes at once, and a request that
cannot get a turn within its wait is refused (503 with Retry-After), never queued without end."""

from __future__ import annotations

import asyncio
import threading
import time

from argon2 import PasswordHasher

from command_api.users.password_hashing import HashingBusy, PasswordHashing


class SlowHasher(PasswordHasher):
    """Takes `seconds` per hash and records how many hashes ran at the same time."""

    def __init__(self, seconds: float) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.seconds = seconds
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            time.sleep(self.seconds)
            return super().hash(password, salt=salt)
        finally:
            with self._lock:
                self.running -= 1


def test_no_more_hashes_run_at_once_than_the_bound() -> None:
    hasher = SlowHasher(seconds=0.0)
    hashing = PasswordHashing(hasher, concurrency=2, wait_seconds=30)
    hasher.seconds = 0.05

    async def scenario() -> list[str]:
        return await asyncio.gather(*(hashing.hash(f"password {n}") for n in range(8)))

    try:
        hashes = asyncio.run(scenario())
    finally:
        hashing.close()
    assert len(set(hashes)) == 8
    assert hasher.most_at_once == 2


def test_a_hash_that_cannot_get_a_turn_within_the_wait_is_refused_with_retry_after() -> None:
    hasher = SlowHasher(seconds=0.0)
    hashing = PasswordHashing(hasher, concurrency=1, wait_seconds=0.05)
    hasher.seconds = 0.5

    async def scenario() -> list[str | BaseException]:
        return await asyncio.gather(*(hashing.hash("password") for _ in range(3)), return_exceptions=True)

    try:
        started = time.monotonic()
        outcomes = asyncio.run(scenario())
        took = time.monotonic() - started
    finally:
        hashing.close()
    refused = [outcome for outcome in outcomes if isinstance(outcome, HashingBusy)]
    assert len(refused) == 2, outcomes
    assert all(outcome.retry_after >= 1 for outcome in refused)
    assert sum(isinstance(outcome, str) for outcome in outcomes) == 1
    assert took < 5, f"the refused hashes should not wait for the running one ({took:.1f}s)"


def test_an_unknown_account_is_checked_against_a_decoy_and_never_matches() -> None:
    hashing = PasswordHashing(
        PasswordHasher(time_cost=1, memory_cost=8, parallelism=1), concurrency=1, wait_seconds=5
    )

    async def scenario() -> tuple[bool, bool, bool]:
        stored = await hashing.hash("correct horse")
        return (
            await hashing.verify(stored, "correct horse"),
            await hashing.verify(stored, "wrong horse"),
            await hashing.verify(None, "decoy password for unknown emails"),
        )

    try:
        assert asyncio.run(scenario()) == (True, False, False)
    finally:
        hashing.close()
