"""The key that signs the command side's checkpoints: every instance of every command service of a
deployment must hold the same one (a checkpoint signed with another is ignored, and the partition is
replayed from the log instead)."""

from __future__ import annotations

import contextlib
import os
import secrets

from config.settings import Settings


def load_checkpoint_key(settings: Settings) -> bytes:
    path = settings.checkpoint_key_file
    if settings.environment == "local" and not path.exists():
        # Create it at most once even when several processes start together: the first link wins,
        # and everyone reads what won.
        path.parent.mkdir(parents=True, exist_ok=True)
        candidate = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        candidate.write_bytes(secrets.token_bytes(32))
        candidate.chmod(0o600)
        with contextlib.suppress(FileExistsError):
            os.link(candidate, path)
        candidate.unlink()
    if not path.exists():
        raise RuntimeError("COMMERCE_CHECKPOINT_KEY_FILE must point at the deployment's checkpoint key")
    key = path.read_bytes()
    if len(key) < 32:
        raise RuntimeError("the checkpoint key must be at least 32 bytes")
    return key
