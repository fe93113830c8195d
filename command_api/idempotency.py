"""Idempotency keys, done the way payment APIs do them.

A key belongs to its caller and its route: the event store sees only a digest of (caller, method and
route template, key), so another caller's key, or the same key on another route, is a different key
and can never return someone else's response. The digest of the request itself (method, path, body)
is stored with the first use: the same key with a different request is refused (422), and a retry of
the same request answers with the first response. Keys are remembered for 24 hours
(`command_api/eventstore/partition_state.py`, KEY_WINDOW).
"""

from __future__ import annotations

import hashlib


def scoped_key(caller: str, route: str, key: str) -> str:
    """The key as the event store records it: opaque, and unique per caller and route."""
    return hashlib.sha256(f"{caller}\n{route}\n{key}".encode()).hexdigest()[:40]


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256(f"{method} {path}\n".encode())
    digest.update(body)
    return digest.hexdigest()[:40]
