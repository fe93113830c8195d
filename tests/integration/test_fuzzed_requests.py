"""Hostile input, generated (issue 10): schemathesis sends every operation of every service requests
made from the service's own OpenAPI, valid and invalid ones, and every check it has must hold: no 5xx,
every status answered is documented, every answer matches its documented schema and content type,
invalid input is refused, valid input is not. Each 4xx must also carry our JSON error body.

The run is bounded (a fixed number of examples per operation) and seeded, so CI sees the same
requests every time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import Case, CheckContext, Response

from config.settings import Settings
from gateway.apps import service_app
from tests.support.deployment import Deployment
from tests.support.processes import HttpService
from tests.support.route_access import caller_admitted

SERVICES = ("users", "catalog", "orders", "payments")

FUZZING = schemathesis.Config.from_dict(
    {
        "seed": 20_260_710,
        # Hypothesis's health checks judge generation speed, which a loaded 2-core CI machine would fail.
        "suppress-health-check": ["all"],
        "request-timeout": 15,
        "generation": {"max-examples": 25, "deterministic": True, "database": "none"},
        "checks": {
            # Every check runs. A schema-valid request may still be refused with a 422 the schema cannot
            # express (a reused idempotency key, a consistency token for another topic, a zero stock
            # delta, a name that is only spaces); a 400, 405 or 415 for one still fails.
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "422", "429"]
            },
            # An answer that takes this long is a hang: commands answer within their timeout (3 s here).
            "max_response_time": 10,
        },
    }
)


@schemathesis.check
def client_errors_are_json_error_bodies(
    ctx: CheckContext, response: Response, case: Case[Any]
) -> bool | None:
    """Every 4xx says what went wrong as `{"message", "error"}` JSON, as web/errors.py renders it."""
    if not 400 <= response.status_code < 500:
        return None
    body: Any = response.json()
    assert isinstance(body, dict) and isinstance(body.get("message"), str), body
    assert isinstance(body.get("error"), str), body
    return True


@pytest.fixture(scope="module")
def tokens(admin_token: str, customer_token: str, deployment: Deployment) -> dict[str, str]:
    return {"customer": customer_token, "admin": admin_token, "service": deployment.service_token()}


def served_openapi(service: str) -> dict[str, Any]:
    """The OpenAPI the service's app serves at /openapi.json (built without starting it, so the
    operations are known when pytest collects; the first test checks the running service serves it)."""
    spec: dict[str, Any] = service_app(service, Settings()).openapi()
    return spec


@pytest.mark.parametrize("service", SERVICES)
def test_each_running_service_serves_the_openapi_fuzzed_here(
    service: str, request: pytest.FixtureRequest
) -> None:
    running: HttpService = request.getfixturevalue(f"{service}_service")
    assert httpx.get(f"{running.url}/openapi.json").json() == served_openapi(service)


def fuzzing(service: str) -> Callable[..., None]:
    """One test per operation of the service: its generated requests, sent as a caller its gate admits."""
    schema = schemathesis.openapi.from_dict(served_openapi(service), config=FUZZING)

    def test(case: Case[Any], tokens: dict[str, str], request: pytest.FixtureRequest) -> None:
        running: HttpService = request.getfixturevalue(f"{service}_service")
        caller = caller_admitted(service, case.operation.method, case.operation.path)
        case.headers["Authorization"] = f"Bearer {tokens[caller]}"  # in place of a generated one
        case.call_and_validate(base_url=running.url)

    parametrized: Callable[..., None] = schema.parametrize()(test)
    return parametrized


test_users_answers_generated_requests_as_documented = fuzzing("users")
test_catalog_answers_generated_requests_as_documented = fuzzing("catalog")
test_orders_answers_generated_requests_as_documented = fuzzing("orders")
test_payments_answers_generated_requests_as_documented = fuzzing("payments")
