"""The security matrix (issue 10): every route of every service, called once by each of anonymous, a
customer, another customer, an admin and a platform service, answers what its row says: 401 without a
token where one is needed, 403 for a role the route is not for, 404 for another customer's cart line,
order or payment (exactly as for one that does not exist: never their data), and for the callers it
admits the row's outcome. No answer and no log line holds a secret: a password hash, a password, a
payment's client secret, the token signing key.

The routes are read from each running service's OpenAPI, so a route added without a row here (and
in tests/support/route_access.py) fails the matrix."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from tests.support.catalog_client import created, product_body
from tests.support.deployment import Deployment
from tests.support.orders_client import add_to_cart
from tests.support.processes import HttpService, ServiceProcess
from tests.support.purchase import confirmed_order, payment_started
from tests.support.route_access import ROUTE_AUDIENCES, served_route
from tests.support.users_client import new_email, register, token_for

pytestmark = pytest.mark.usefixtures("order_saga")

Cell = Literal["anonymous", "customer", "other customer", "admin", "service"]
# The customer who owns the world's cart lines, orders and payment goes last on each row, so what the
# others do cannot depend on what the owner's own request changed.
CELLS: tuple[Cell, ...] = ("anonymous", "other customer", "admin", "service", "customer")
SERVICES = ("users", "catalog", "orders", "payments")
PASSWORD = f"matrix {uuid.uuid4().hex}"  # looked for in every answer and log line
WEBHOOK_SECRET = f"whsec_{uuid.uuid4().hex}"
CLIENT_SECRET = re.compile(r"pi_[A-Za-z0-9_]+?_secret_[A-Za-z0-9]+")


@dataclass(frozen=True)
class World:
    """What the rows' requests name: the customer's own things, and who calls."""

    urls: Mapping[str, str]
    tokens: Mapping[Cell, str | None]
    emails: Mapping[Cell, str]
    product_id: int  # in the customer's cart and order
    product_to_delete: int
    line_to_change: int  # the customer's cart lines
    line_to_remove: int
    order_number: int  # the customer's confirmed order, with a payment started
    order_to_cancel: int
    intent_id: str
    client_secret: str
    log_dir: Path


Body = Callable[[World, Cell], Any] | None


@dataclass(frozen=True)
class Row:
    """One route: its request (filled from the world), what a caller it admits gets, and, for a route
    that names the customer's own line, order or payment, that anyone else admitted gets a 404."""

    service: str
    method: str
    path: str  # as in the OpenAPI
    url: Callable[[World], str]
    admitted: int
    body: Body = None
    owned: bool = False
    answers: Mapping[Cell, int] = field(default_factory=dict)  # where a caller it admits gets another

    @property
    def route(self) -> tuple[str, str, str]:
        return (self.service, self.method, self.path)

    def expected(self, cell: Cell) -> int:
        audience = ROUTE_AUDIENCES[self.route]
        if not audience.admits("customer" if cell == "other customer" else cell):
            return 401 if cell == "anonymous" else 403
        if cell in self.answers:
            return self.answers[cell]
        if self.owned and cell != "customer":
            return 404
        return self.admitted


def fixed(path: str) -> Callable[[World], str]:
    return lambda world: path


def stripe_event(world: World, cell: Cell) -> Any:
    """What Stripe would post, sent with a signature that does not verify."""
    return {
        "id": "evt_matrix",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": world.intent_id}},
    }


ROWS: tuple[Row, ...] = (
    # users
    Row("users", "GET", "/health", fixed("/health"), 200),
    Row("users", "GET", "/metrics", fixed("/metrics"), 200),
    Row(
        "users",
        "POST",
        "/auth/register",
        fixed("/auth/register"),
        201,
        body=lambda w, c: {"username": "matrix", "email": new_email(), "password": PASSWORD},
    ),
    Row(
        "users",
        "POST",
        "/auth/login",
        fixed("/auth/login"),
        200,
        body=lambda w, c: {"email": w.emails["customer"], "password": PASSWORD},
    ),
    Row("users", "GET", "/auth/validate", fixed("/auth/validate"), 200),
    Row("users", "GET", "/users/me", fixed("/users/me"), 200, answers={"service": 404}),
    Row(
        "users",
        "POST",
        "/users/roles",
        fixed("/users/roles"),
        200,
        body=lambda w, c: {"email": w.emails["other customer"], "role": "customer"},
    ),
    Row(
        "users",
        "POST",
        "/internal/users/roles",
        fixed("/internal/users/roles"),
        200,
        body=lambda w, c: {"email": w.emails["other customer"], "role": "customer"},
    ),
    # Revoking a caller's sessions would end the tokens the other rows use: they name nobody (a 404
    # once past the gate); tests/integration/test_token_revocation.py revokes for real.
    Row(
        "users",
        "POST",
        "/users/sessions/revoke",
        fixed("/users/sessions/revoke"),
        404,
        body=lambda w, c: {"email": new_email()},
    ),
    Row(
        "users",
        "POST",
        "/internal/users/sessions/revoke",
        fixed("/internal/users/sessions/revoke"),
        404,
        body=lambda w, c: {"email": new_email()},
    ),
    Row("users", "GET", "/internal/partitions", fixed("/internal/partitions"), 200),
    # catalog
    Row("catalog", "GET", "/health", fixed("/health"), 200),
    Row("catalog", "GET", "/metrics", fixed("/metrics"), 200),
    Row("catalog", "GET", "/products", fixed("/products"), 200),
    Row("catalog", "GET", "/products/{product_id}", lambda w: f"/products/{w.product_id}", 200),
    Row(
        "catalog",
        "POST",
        "/products/stock",
        fixed("/products/stock"),
        200,
        body=lambda w, c: {"ids": [w.product_id]},
    ),
    Row("catalog", "POST", "/products", fixed("/products"), 201, body=lambda w, c: product_body()),
    Row(
        "catalog",
        "PATCH",
        "/products/{product_id}",
        lambda w: f"/products/{w.product_id}",
        200,
        body=lambda w, c: {"description": "Changed by the security matrix"},
    ),
    Row(
        "catalog",
        "DELETE",
        "/products/{product_id}",
        lambda w: f"/products/{w.product_to_delete}",
        200,
    ),
    Row(
        "catalog",
        "POST",
        "/products/{product_id}/stock-adjustments",
        lambda w: f"/products/{w.product_id}/stock-adjustments",
        200,
        body=lambda w, c: {"delta": 1, "reason": "security matrix"},
    ),
    Row(
        "catalog",
        "POST",
        "/internal/reservations",
        fixed("/internal/reservations"),
        200,
        body=lambda w, c: {"orderId": "matrix-hold", "productId": w.product_id, "quantity": 1},
    ),
    Row(
        "catalog",
        "POST",
        "/internal/reservations/release",
        fixed("/internal/reservations/release"),
        200,
        body=lambda w, c: {"orderId": "matrix-hold", "productId": w.product_id},
    ),
    Row(
        "catalog",
        "POST",
        "/internal/reservations/commit",
        fixed("/internal/reservations/commit"),
        200,
        body=lambda w, c: {"orderId": "matrix-nothing-held", "productId": w.product_id},
    ),
    Row(
        "catalog",
        "POST",
        "/internal/stock-returns",
        fixed("/internal/stock-returns"),
        200,
        body=lambda w, c: {
            "orderId": "matrix-refunded",
            "productId": w.product_id,
            "quantity": 1,
            "refundId": "re_matrix",
        },
    ),
    Row("catalog", "GET", "/internal/partitions", fixed("/internal/partitions"), 200),
    # orders: the cart rows before the order rows (placing an order empties the cart)
    Row("orders", "GET", "/health", fixed("/health"), 200),
    Row("orders", "GET", "/metrics", fixed("/metrics"), 200),
    Row(
        "orders",
        "POST",
        "/cart",
        fixed("/cart"),
        200,
        body=lambda w, c: {"productId": w.product_id, "qty": 1},
    ),
    Row("orders", "GET", "/cart", fixed("/cart"), 200),
    Row(
        "orders",
        "PATCH",
        "/cart/{line_item_id}",
        lambda w: f"/cart/{w.line_to_change}",
        200,
        body=lambda w, c: {"qty": 2},
        owned=True,
    ),
    Row(
        "orders",
        "DELETE",
        "/cart/{line_item_id}",
        lambda w: f"/cart/{w.line_to_remove}",
        200,
        owned=True,
    ),
    Row("orders", "POST", "/orders", fixed("/orders"), 200),
    Row("orders", "GET", "/orders", fixed("/orders"), 200),
    Row("orders", "GET", "/orders?scope=all", fixed("/orders?scope=all"), 200),
    Row("orders", "GET", "/orders/{id}", lambda w: f"/orders/{w.order_number}", 200, owned=True),
    Row("orders", "GET", "/order/{id}", lambda w: f"/order/{w.order_number}", 200, owned=True),
    Row(
        "orders",
        "GET",
        "/orders/{orderNumber}/checkout",
        lambda w: f"/orders/{w.order_number}/checkout",
        200,
        owned=True,
    ),
    Row(
        "orders",
        "POST",
        "/orders/{order_number}/cancel",
        lambda w: f"/orders/{w.order_to_cancel}/cancel",
        200,
        owned=True,
    ),
    # The saga's routes change an order for good: they are called for orders that do not exist (a 404
    # once past the gate), or, where nothing changes, for the customer's order.
    Row(
        "orders",
        "POST",
        "/internal/orders/{order_number}/reservations",
        fixed("/internal/orders/999999999/reservations"),
        404,
        body=lambda w, c: {"results": [{"productId": w.product_id, "reserved": True}]},
    ),
    Row(
        "orders",
        "POST",
        "/internal/orders/{order_number}/paid",
        fixed("/internal/orders/999999999/paid"),
        404,
        body=lambda w, c: {"intentId": "pi_matrix", "amountMinor": 1999},
    ),
    Row(
        "orders",
        "POST",
        "/internal/orders/{order_number}/refunded",
        fixed("/internal/orders/999999999/refunded"),
        404,
        body=lambda w, c: {"refundId": "re_matrix", "amountMinor": 1999, "fully": True},
    ),
    Row(
        "orders",
        "POST",
        "/internal/orders/{order_number}/expire",
        lambda w: f"/internal/orders/{w.order_number}/expire",
        200,
    ),
    Row(
        "orders",
        "GET",
        "/internal/orders/{order_number}",
        lambda w: f"/internal/orders/{w.order_number}",
        200,
    ),
    Row("orders", "GET", "/internal/partitions", fixed("/internal/partitions"), 200),
    # payments
    Row("payments", "GET", "/health", fixed("/health"), 200),
    Row("payments", "GET", "/metrics", fixed("/metrics"), 200),
    Row(
        "payments",
        "POST",
        "/create-payment",
        fixed("/create-payment"),
        200,
        body=lambda w, c: {"orderNumber": w.order_number},
        owned=True,
    ),
    Row(
        "payments",
        "POST",
        "/verify-payment/{intent_id}",
        lambda w: f"/verify-payment/{w.intent_id}",
        200,
        owned=True,
    ),
    # Knowing the intent is not enough to pay it: the client secret is (it is only ever the customer's).
    Row(
        "payments",
        "POST",
        "/simulated-gateway/payment_intents/{intent_id}/confirm",
        lambda w: f"/simulated-gateway/payment_intents/{w.intent_id}/confirm",
        404,
        body=lambda w, c: {"clientSecret": f"{w.intent_id}_secret_guessed", "card": "4242 4242 4242 4242"},
    ),
    # Stripe's webhook carries no token: its signature is the credential, and a bad one is refused.
    Row("payments", "POST", "/webhooks/stripe", fixed("/webhooks/stripe"), 400, body=stripe_event),
    Row(
        "payments",
        "POST",
        "/refunds",
        fixed("/refunds"),
        409,  # the order is not paid: refused, but past the gate
        body=lambda w, c: {"orderNumber": w.order_number},
    ),
    Row(
        "payments",
        "GET",
        "/payments/{orderNumber}",
        lambda w: f"/payments/{w.order_number}",
        200,
        owned=True,
        answers={"admin": 200},  # an admin sees any order's payment
    ),
    Row(
        "payments",
        "POST",
        "/internal/payments/{order_number}/refund-unclaimed",
        lambda w: f"/internal/payments/{w.order_number}/refund-unclaimed",
        409,  # the payment has not succeeded: nothing to give back
    ),
    Row(
        "payments",
        "POST",
        "/internal/payments/{order_number}/reconcile",
        lambda w: f"/internal/payments/{w.order_number}/reconcile",
        200,  # the log already holds what the gateway did: nothing to append
    ),
    Row("payments", "GET", "/internal/partitions", fixed("/internal/partitions"), 200),
)


@pytest.fixture(scope="module")
def signed_payments(deployment: Deployment, payments_projector: ServiceProcess) -> Iterator[HttpService]:
    """Payments as in production: Stripe's webhooks accepted only when signed with the endpoint's secret."""
    service = deployment.gateway(
        "payments", name="payments-matrix", env={"COMMERCE_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}
    ).start()
    yield service
    service.stop()


def registered(users_url: str) -> tuple[str, str]:
    email = new_email()
    answered = register(users_url, email=email, password=PASSWORD)
    assert answered.status_code == 201, answered.text
    return email, token_for(users_url, email, PASSWORD)


def line_in_cart(orders_url: str, token: str, product_id: int) -> int:
    added = add_to_cart(orders_url, token, product_id, 1)
    assert added.status_code == 200, added.text
    return int(added.json()["id"])


@pytest.fixture(scope="module")
def world(
    users_service: HttpService,
    catalog_service: HttpService,
    orders_service: HttpService,
    signed_payments: HttpService,
    deployment: Deployment,
    admin_token: str,
) -> World:
    customer_email, customer = registered(users_service.url)
    other_email, other = registered(users_service.url)
    order_number, product_id = confirmed_order(orders_service.url, catalog_service.url, admin_token, customer)
    order_to_cancel, _ = confirmed_order(orders_service.url, catalog_service.url, admin_token, customer)
    payment = payment_started(signed_payments.url, customer, order_number)
    second, _ = created(catalog_service.url, admin_token, stock=100)
    lines = [line_in_cart(orders_service.url, customer, pid) for pid in (product_id, second["id"])]
    doomed, _ = created(catalog_service.url, admin_token)
    return World(
        urls={
            "users": users_service.url,
            "catalog": catalog_service.url,
            "orders": orders_service.url,
            "payments": signed_payments.url,
        },
        tokens={
            "anonymous": None,
            "customer": customer,
            "other customer": other,
            "admin": admin_token,
            "service": deployment.service_token(),
        },
        emails={"customer": customer_email, "other customer": other_email, "admin": deployment.admin_email},
        product_id=product_id,
        product_to_delete=int(doomed["id"]),
        line_to_change=lines[0],
        line_to_remove=lines[1],
        order_number=order_number,
        order_to_cancel=order_to_cancel,
        intent_id=str(payment["intentId"]),
        client_secret=str(payment["secret"]),
        log_dir=deployment.work_dir,
    )


def signing_key_forms(deployment: Deployment) -> dict[str, list[str]]:
    """Both token signing keys (users' tokens, service tokens), each as it could leak."""
    settings = deployment.settings
    return {
        "the users token signing key": key_forms(settings.jwt_private_key_file),
        "the service token signing key": key_forms(settings.service_private_key_file),
    }


def key_forms(private_key_file: Path) -> list[str]:
    """A private key as it could leak: its PEM's base64 and its raw bytes (base64url, hex)."""
    pem = private_key_file.read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    body = "".join(line for line in pem.decode().splitlines() if not line.startswith("-----"))
    return [body, base64.urlsafe_b64encode(raw).decode().rstrip("="), raw.hex()]


def secrets_in(
    text: str, world: World, signing_keys: dict[str, list[str]], may_hold_client_secret: bool
) -> list[str]:
    plain = (("a password hash", "$argon2"), ("a password", PASSWORD), ("the webhook secret", WEBHOOK_SECRET))
    found = [name for name, secret in plain if secret in text]
    if not may_hold_client_secret and (world.client_secret in text or CLIENT_SECRET.search(text)):
        found.append("a payment's client secret")
    found += [name for name, forms in signing_keys.items() if any(form in text for form in forms)]
    return found


@pytest.mark.parametrize("entry", ROWS, ids=lambda entry: f"{entry.service} {entry.method} {entry.path}")
def test_each_caller_gets_what_the_route_allows_it_and_nobody_elses_data_or_secrets(
    entry: Row, world: World, deployment: Deployment
) -> None:
    signing_keys = signing_key_forms(deployment)
    wrong = []
    for cell in CELLS:
        token = world.tokens[cell]
        headers = ({"Authorization": f"Bearer {token}"} if token else {}) | {"Stripe-Signature": "t=1,v1=bad"}
        body = entry.body(world, cell) if entry.body else None
        answered = httpx.request(
            entry.method, world.urls[entry.service] + entry.url(world), json=body, headers=headers, timeout=30
        )
        expected = entry.expected(cell)
        if answered.status_code != expected:
            wrong.append(f"{cell}: {answered.status_code} (expected {expected}) {answered.text[:200]}")
        if cell != "customer" and world.emails["customer"] in answered.text:
            wrong.append(f"{cell}: the customer's email in the answer")
        own_payment = cell == "customer" and entry.route == ("payments", "POST", "/create-payment")
        leaked = secrets_in(answered.text, world, signing_keys, may_hold_client_secret=own_payment)
        if leaked:
            wrong.append(f"{cell}: {', '.join(leaked)} in the answer")
    assert not wrong, "\n".join(wrong)


def test_every_route_of_every_service_has_a_row(world: World) -> None:
    served = {("users", "GET", "/metrics"), ("catalog", "GET", "/metrics")}
    served |= {("orders", "GET", "/metrics"), ("payments", "GET", "/metrics")}
    for service in SERVICES:
        spec = httpx.get(f"{world.urls[service]}/openapi.json").json()
        served |= {(service, method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    rows = [entry.route for entry in ROWS]
    assert len(rows) == len(set(rows)), "a route has two rows"
    assert served - set(rows) == set(), "routes without a row in the security matrix"
    assert {served_route(row) for row in rows} - served == set(), "rows for routes no service serves"
    assert set(ROUTE_AUDIENCES) == set(rows), "tests/support/route_access.py must list exactly the rows"


def test_no_log_line_holds_a_secret(world: World, deployment: Deployment) -> None:
    """Run after the rows (it is last in the file): every service's log, as the test deployment
    wrote it, free of password hashes, passwords, client secrets and both signing keys."""
    signing_keys = signing_key_forms(deployment)
    logs = sorted(world.log_dir.glob("*.log"))
    assert logs, f"no service logs under {world.log_dir}"
    leaks = {
        log.name: found
        for log in logs
        if (found := secrets_in(log.read_text(errors="replace"), world, signing_keys, False))
    }
    assert not leaks, leaks
