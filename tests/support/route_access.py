"""Who may call each route of each service: the one table the security matrix checks cell by cell and
the fuzzer reads to send each operation with a token that gets past its gate.

Every route a service's OpenAPI lists must have a row here; a new route without one fails the
security matrix, so its access rule is decided, not forgotten."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Caller = Literal["anonymous", "customer", "admin", "service"]


@dataclass(frozen=True)
class Audience:
    """Who gets past a route's gate (what it answers them after that is the request's business)."""

    name: str
    callers: frozenset[Caller]

    def admits(self, caller: Caller) -> bool:
        return caller in self.callers


PUBLIC = Audience("public", frozenset({"anonymous", "customer", "admin", "service"}))
# No token: Stripe signs the body with the endpoint's secret (a bad signature is a 400).
SIGNED = Audience("signed", frozenset({"anonymous", "customer", "admin", "service"}))
ANY_TOKEN = Audience("any token", frozenset({"customer", "admin", "service"}))
# A user acting for themselves: carts, orders and payments are the caller's own (an admin's too).
CUSTOMER = Audience("customer", frozenset({"customer", "admin"}))
ADMIN = Audience("admin", frozenset({"admin"}))
OPERATOR = Audience("operator", frozenset({"admin", "service"}))
SERVICE = Audience("service", frozenset({"service"}))


# (service, method, path template as in the OpenAPI); a query after `?` names a variant of the route
# whose query changes who may call it.
Route = tuple[str, str, str]

ROUTE_AUDIENCES: dict[Route, Audience] = {
    ("users", "GET", "/health"): PUBLIC,
    ("users", "POST", "/auth/register"): PUBLIC,
    ("users", "POST", "/auth/login"): PUBLIC,
    ("users", "GET", "/auth/validate"): ANY_TOKEN,
    ("users", "GET", "/users/me"): ANY_TOKEN,
    ("users", "POST", "/users/roles"): ADMIN,
    ("users", "POST", "/internal/users/roles"): SERVICE,
    ("users", "POST", "/users/sessions/revoke"): ADMIN,
    ("users", "POST", "/internal/users/sessions/revoke"): SERVICE,
    ("users", "GET", "/internal/partitions"): OPERATOR,
    ("catalog", "GET", "/health"): PUBLIC,
    ("catalog", "GET", "/products"): PUBLIC,
    ("catalog", "GET", "/products/{product_id}"): PUBLIC,
    ("catalog", "POST", "/products/stock"): ANY_TOKEN,
    ("catalog", "POST", "/products"): ADMIN,
    ("catalog", "PATCH", "/products/{product_id}"): ADMIN,
    ("catalog", "DELETE", "/products/{product_id}"): ADMIN,
    ("catalog", "POST", "/products/{product_id}/stock-adjustments"): ADMIN,
    ("catalog", "POST", "/internal/reservations"): SERVICE,
    ("catalog", "POST", "/internal/reservations/release"): SERVICE,
    ("catalog", "POST", "/internal/reservations/commit"): SERVICE,
    ("catalog", "POST", "/internal/stock-returns"): SERVICE,
    ("catalog", "GET", "/internal/partitions"): OPERATOR,
    ("orders", "GET", "/health"): PUBLIC,
    ("orders", "POST", "/cart"): CUSTOMER,
    ("orders", "GET", "/cart"): CUSTOMER,
    ("orders", "PATCH", "/cart/{line_item_id}"): CUSTOMER,
    ("orders", "DELETE", "/cart/{line_item_id}"): CUSTOMER,
    ("orders", "POST", "/orders"): CUSTOMER,
    ("orders", "GET", "/orders"): CUSTOMER,
    # One route, two gates: the query decides whose orders (every customer's is for admins only).
    ("orders", "GET", "/orders?scope=all"): ADMIN,
    ("orders", "GET", "/orders/{id}"): CUSTOMER,
    ("orders", "GET", "/order/{id}"): CUSTOMER,
    ("orders", "GET", "/orders/{orderNumber}/checkout"): CUSTOMER,
    ("orders", "POST", "/orders/{order_number}/cancel"): CUSTOMER,
    ("orders", "POST", "/internal/orders/{order_number}/reservations"): SERVICE,
    ("orders", "POST", "/internal/orders/{order_number}/paid"): SERVICE,
    ("orders", "POST", "/internal/orders/{order_number}/refunded"): SERVICE,
    ("orders", "POST", "/internal/orders/{order_number}/expire"): SERVICE,
    ("orders", "GET", "/internal/orders/{order_number}"): SERVICE,
    ("orders", "GET", "/internal/partitions"): OPERATOR,
    ("payments", "GET", "/health"): PUBLIC,
    ("payments", "POST", "/create-payment"): CUSTOMER,
    ("payments", "POST", "/verify-payment/{intent_id}"): CUSTOMER,
    ("payments", "POST", "/simulated-gateway/payment_intents/{intent_id}/confirm"): PUBLIC,
    ("payments", "POST", "/webhooks/stripe"): SIGNED,
    ("payments", "POST", "/refunds"): ADMIN,
    ("payments", "GET", "/payments/{orderNumber}"): ANY_TOKEN,
    ("payments", "POST", "/internal/payments/{order_number}/refund-unclaimed"): SERVICE,
    ("payments", "POST", "/internal/payments/{order_number}/reconcile"): SERVICE,
    ("payments", "GET", "/internal/partitions"): OPERATOR,
    # Left out of the OpenAPI, checked all the same. A local deployment without COMMERCE_METRICS_TOKEN
    # (as the tests run it) answers anyone; production needs the token (tests/integration/test_hostile_input.py).
    ("users", "GET", "/metrics"): PUBLIC,
    ("catalog", "GET", "/metrics"): PUBLIC,
    ("orders", "GET", "/metrics"): PUBLIC,
    ("payments", "GET", "/metrics"): PUBLIC,
}


def served_route(route: Route) -> Route:
    """The OpenAPI route a row (a variant with its query, too) is served by."""
    service, method, path = route
    return service, method, path.partition("?")[0]


def caller_admitted(service: str, method: str, path: str) -> Caller:
    """The least privileged caller with a token that gets past the route's gate."""
    audience = ROUTE_AUDIENCES[(service, method.upper(), path)]
    return next(caller for caller in ("customer", "admin", "service") if audience.admits(caller))
