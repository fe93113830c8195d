"""`python -m auth`: create the local JWT key pair if there is none (local mode only), before the
services start, so that no two of them race to create it."""

from __future__ import annotations

import sys

from auth.tokens import load_issuer
from config.settings import get_settings


def main() -> None:
    settings = get_settings()
    load_issuer(settings)
    print(f"JWT keys ready: {settings.jwt_public_key_file}", file=sys.stderr)


if __name__ == "__main__":
    main()
