"""Operator commands, run on the server (they sign with the service key, never the users key):

python -m auth                          create the local key pairs (users and service tokens) if there
                                        are none (local mode only), before the services start, so that
                                        no two race to them
python -m auth grant-admin EMAIL        make a registered user an admin (how the first admin is made)
python -m auth withdraw-admin EMAIL     make an admin a customer again
python -m auth revoke-sessions EMAIL    end every session of a user: their tokens issued until now
                                        stop working on every service within a second
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

import httpx

from auth.tokens import ensure_local_keys, load_service_issuer, service_token
from config.settings import get_settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m auth")
    parser.add_argument(
        "command",
        nargs="?",
        choices=["keys", "grant-admin", "withdraw-admin", "revoke-sessions"],
        default="keys",
    )
    parser.add_argument("email", nargs="?")
    parser.add_argument("--users-url", default="http://127.0.0.1:6000", help="the users service")
    args = parser.parse_args()
    settings = get_settings()
    if args.command == "keys":
        ensure_local_keys(settings)
        print(
            f"keys ready: {settings.jwt_public_key_file}, {settings.service_public_key_file}", file=sys.stderr
        )
        return
    issuer = load_service_issuer(settings)
    if not args.email:
        parser.error(f"{args.command} needs an EMAIL")
    if args.command == "revoke-sessions":
        route, body = "/internal/users/sessions/revoke", {"email": args.email}
    else:
        role = "admin" if args.command == "grant-admin" else "customer"
        route, body = "/internal/users/roles", {"email": args.email, "role": role}
    response = httpx.post(
        f"{args.users_url.rstrip('/')}{route}",
        json=body,
        headers={"Authorization": f"Bearer {service_token(issuer, 'operator', datetime.now(UTC))}"},
        timeout=30,
    )
    print(response.text)
    if response.status_code != 200:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
