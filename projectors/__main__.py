"""`python -m projectors run users` keeps a read model current; `reset users` drops it for a replay."""

from __future__ import annotations

import argparse
import asyncio
import logging

from config.settings import Settings, get_settings
from event_schemas.registry import REGISTRY
from event_schemas.topics import in_namespace
from projectors.runtime.pool import make_pool
from projectors.runtime.postgres_runner import PostgresProjectionRunner, reset
from projectors.runtime.projection import Projection
from projectors.users.projection import UsersProjection


def projection_and_database(name: str, settings: Settings) -> tuple[Projection, str]:
    if name == "users":
        return UsersProjection(settings.namespace), settings.users_database_url
    raise SystemExit(f"unknown projection {name!r}; known: users")


async def run(name: str, settings: Settings) -> None:
    projection, database_url = projection_and_database(name, settings)
    async with make_pool(database_url) as pool:
        group_id = in_namespace(settings.namespace, f"{name}-projector")
        await PostgresProjectionRunner(
            projection, pool, settings.kafka_bootstrap_servers, REGISTRY, group_id=group_id
        ).run()


async def reset_projection(name: str, settings: Settings) -> None:
    projection, database_url = projection_and_database(name, settings)
    async with make_pool(database_url) as pool:
        await reset(pool, projection)
    print(f"{name}: read model dropped; the next run replays {projection.topic} from the start")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m projectors")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="keep a read model current").add_argument("projection")
    commands.add_parser("reset", help="drop a read model (stop its projector first)").add_argument(
        "projection"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    if args.command == "run":
        asyncio.run(run(args.projection, settings))
    else:
        asyncio.run(reset_projection(args.projection, settings))


if __name__ == "__main__":
    main()
