"""Routes are added to an app flat, not through `include_router`.

FastAPI (0.16x) keeps an included router as a lazy branch that is re-validated and walked on every
request; composing a service from a few routers that way cost a third of the framework's throughput
(`python -m bench`). Our routers have no prefixes or router-level dependencies, so their routes can be
added as they are.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI


def add_routes(app: FastAPI, *routers: APIRouter) -> None:
    for router in routers:
        app.router.routes.extend(router.routes)
