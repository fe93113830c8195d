"""A dependency's failure answers 503 with a fixed message and `Retry-After`: the driver's own text
(SQL, table names, hosts, ports) goes to the log, never to the caller."""

from __future__ import annotations

import psycopg
from fastapi import FastAPI
from fastapi.testclient import TestClient

from query_api.service import READ_MODEL_ERRORS
from web.errors import install_error_handlers


def app_failing_with(error: Exception) -> TestClient:
    app = FastAPI()
    install_error_handlers(app, READ_MODEL_ERRORS)

    @app.get("/products")
    async def products() -> None:
        raise error

    return TestClient(app)


def test_a_read_model_not_built_yet_answers_503_without_the_drivers_text() -> None:
    missing = psycopg.errors.UndefinedTable(
        'relation "products" does not exist\nLINE 1: SELECT id FROM products'
    )
    response = app_failing_with(missing).get("/products")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json() == {
        "message": "The read model is still being built; retry shortly",
        "error": "read_model_not_ready",
    }


def test_a_database_that_does_not_answer_is_not_named_to_the_caller() -> None:
    refused = psycopg.OperationalError(
        'connection failed: connection to server at "127.0.0.1", port 5432 failed: Connection refused'
    )
    response = app_failing_with(refused).get("/products")
    assert response.status_code == 503
    assert "5432" not in response.text and "127.0.0.1" not in response.text
    assert response.json()["error"] == "database_unavailable"
