"""HTTP helpers for the catalog service."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.support.users_client import bearer


def product_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"Product {uuid.uuid4().hex[:8]}",
        "description": "A thing worth having",
        "price": "19.99",
        "stock": 10,
    }
    return body | overrides


def create_product(
    base_url: str, token: str, headers: dict[str, str] | None = None, **overrides: Any
) -> httpx.Response:
    return httpx.post(
        f"{base_url}/products",
        json=product_body(**overrides),
        headers=bearer(token) | (headers or {}),
        timeout=30,
    )


def created(base_url: str, token: str, **overrides: Any) -> tuple[dict[str, Any], str]:
    """A new product and the consistency token of its creation."""
    response = create_product(base_url, token, **overrides)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body, response.headers["X-Consistency-Token"]


def get_product(base_url: str, product_id: int, consistency: str | None = None) -> httpx.Response:
    headers = {"X-Consistency-Token": consistency} if consistency else {}
    return httpx.get(f"{base_url}/products/{product_id}", headers=headers, timeout=30)


def list_products(base_url: str, consistency: str | None = None, **params: Any) -> httpx.Response:
    headers = {"X-Consistency-Token": consistency} if consistency else {}
    return httpx.get(f"{base_url}/products", params=params, headers=headers, timeout=30)
