"""The framework's ceiling: FastAPI under uvicorn answering a constant JSON object, with nothing
behind it. Whatever a service does per request, it cannot answer faster than this.

    python -m bench.baselines.trivial_app --port 8900
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI


def create_app() -> FastAPI:
    app = FastAPI(title="trivial baseline")

    @app.get("/")
    async def root() -> dict[str, str]:
        """A small constant body."""
        return {"status": "ok", "service": "trivial"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines.trivial_app")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    uvicorn.run(create_app(), host="127.0.0.1", port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
