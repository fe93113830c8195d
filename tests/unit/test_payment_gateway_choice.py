"""Which gateway the payments service runs: Stripe where it is named or has its key, the simulated one
only in local mode, and in production no silent fallback: without a Stripe key the service does not
start, and the simulated gateway's routes are never served."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from config.settings import ConfigurationError, Settings
from gateway.apps import service_app

CONFIRM = "/simulated-gateway/payment_intents/{intent_id}/confirm"


def settings(environment: str, gateway: str = "", key: str = "") -> Settings:
    # Every value given: a developer's own COMMERCE_* variables must not decide these tests.
    return Settings.model_validate(
        {"environment": environment, "payment_gateway": gateway, "stripe_secret_key": key}
    )


def served(app: FastAPI) -> set[str]:
    return {route.path for route in app.routes if isinstance(route, APIRoute)}


def test_local_mode_without_a_stripe_key_runs_the_simulated_gateway_and_serves_its_confirm_route() -> None:
    local = settings("local")
    assert local.chosen_payment_gateway() == "simulated"
    assert CONFIRM in served(service_app("payments", local))


@pytest.mark.parametrize(
    ("environment", "gateway"),
    [("local", ""), ("local", "stripe"), ("production", ""), ("production", "stripe")],
)
def test_with_a_stripe_key_stripe_runs_and_the_simulated_gateways_routes_are_not_served(
    environment: str, gateway: str
) -> None:
    with_key = settings(environment, gateway, key="sk_test_123")
    assert with_key.chosen_payment_gateway() == "stripe"
    routes = served(service_app("payments", with_key))
    assert "/create-payment" in routes
    assert not any(path.startswith("/simulated-gateway/") for path in routes)


def test_local_mode_may_name_the_simulated_gateway_even_with_a_stripe_key() -> None:
    named = settings("local", "simulated", key="sk_test_123")
    assert named.chosen_payment_gateway() == "simulated"
    assert CONFIRM in served(service_app("payments", named))


def test_production_without_a_stripe_key_refuses_to_build_the_payments_service() -> None:
    production = settings("production")
    with pytest.raises(ConfigurationError, match=r"COMMERCE_STRIPE_SECRET_KEY is not set.*never falls back"):
        service_app("payments", production)
    # Only the payments command side needs the key: its query side and the other services start.
    assert CONFIRM not in served(service_app("payments", production, side="query"))
    service_app("orders", production)


@pytest.mark.parametrize("key", ["", "sk_test_123"])
def test_production_refuses_the_simulated_gateway_even_when_named(key: str) -> None:
    with pytest.raises(
        ConfigurationError, match="COMMERCE_PAYMENT_GATEWAY=simulated is refused in production"
    ):
        service_app("payments", settings("production", "simulated", key))


def test_a_named_stripe_gateway_without_its_key_is_refused_in_local_mode_too() -> None:
    with pytest.raises(
        ConfigurationError, match="COMMERCE_PAYMENT_GATEWAY=stripe needs COMMERCE_STRIPE_SECRET_KEY"
    ):
        service_app("payments", settings("local", "stripe"))
