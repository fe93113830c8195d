"""Forwarding a command to the instance that owns its aggregate's partition."""

from __future__ import annotations

from fastapi import Request, Response

from command_api.eventstore.errors import NotOwner
from config.telemetry import http_client_span, inject_http_headers
from web.acknowledged_writes import ACKNOWLEDGED_WRITES, CALLER
from web.client_address import FORWARDED_FOR, forwarded_for
from web.errors import error_body
from web.service_http import ServiceHttp, Unreachable

CONSISTENCY_HEADER = "x-consistency-token"

FORWARDED_HEADER = "x-commerce-forwarded"
# On the answer to a forwarded internal call (the order saga's): where it went, so that the caller can
# send the partition's next calls there itself. Public routes never name the platform's instances.
OWNER_HEADER = "x-commerce-owner"
_HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive"}


async def forward_to_owner(request: Request, error: NotOwner, client: ServiceHttp, own_url: str) -> Response:
    """Replay the request at the owner; one hop only, so a rebalance in progress cannot make a loop."""
    if error.owner_url is None or error.owner_url == own_url or FORWARDED_HEADER in request.headers:
        return error_body(
            503, "partition_moving", "This aggregate's partition is changing owner; retry shortly."
        )
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP | {FORWARDED_FOR}}
    headers[FORWARDED_HEADER] = own_url
    # The owner counts per-address limits: it must learn this caller's address, not this instance's, nor
    # an address the caller made up (the owner believes the header only because it trusts this instance).
    headers[FORWARDED_FOR] = forwarded_for(request)
    url = (
        error.owner_url.rstrip("/")
        + request.url.path
        + (f"?{request.url.query}" if request.url.query else "")
    )
    with http_client_span(request.method, url) as span:
        inject_http_headers(headers)  # the owner's span is a child of this hop, not of the caller's
        try:
            upstream = await client.request(
                request.method, url, content=await request.body(), headers=headers
            )
        except Unreachable as failure:
            return error_body(
                503, "owner_unreachable", f"The instance owning this aggregate did not answer: {failure}"
            )
        span.set_attribute("http.response.status_code", upstream.status)
    _remember_for_caller(upstream.header(CONSISTENCY_HEADER))
    # The body arrives decoded, so its content-encoding no longer applies.
    kept = {k: v for k, v in upstream.headers if k.lower() not in _HOP_BY_HOP | {"content-encoding"}}
    if request.url.path.startswith("/internal/"):
        kept[OWNER_HEADER] = error.owner_url
    return Response(upstream.body, status_code=upstream.status, headers=kept)


def _remember_for_caller(token: str | None) -> None:
    """The owner acknowledged the write; the caller's next read may well come here (see
    web/acknowledged_writes.py)."""
    caller = CALLER.get()
    parts = (token or "").rsplit(":", 2)
    if caller is not None and len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        ACKNOWLEDGED_WRITES.record(caller, parts[0], int(parts[1]), int(parts[2]))
