"""Who is calling, as far as per-address limits go. `X-Forwarded-For` has already been resolved by
uvicorn's ProxyHeadersMiddleware (installed by the gateway), which believes it only from a peer listed
in COMMERCE_TRUSTED_PROXIES; everyone else is known by the address of the connection itself."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from fastapi import Depends, Request

FORWARDED_FOR = "x-forwarded-for"


def address_bucket(host: str) -> str:
    """The unit a limit counts: one IPv4 address, or one IPv6 /64 (what a single subscriber is
    usually given, so an attacker cannot take a fresh address for each attempt)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a trusted proxy may name a client otherwise (RFC 7239's "unknown", a socket)
        return host[:100]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def forwarded_for(request: Request) -> str:
    """The `X-Forwarded-For` to send when this instance passes the request on: what it received, and the
    client it resolved. The next hop, if it trusts this instance, resolves the same client."""
    client = request.client.host if request.client else ""
    return ", ".join(hop for hop in [*request.headers.getlist(FORWARDED_FOR), client] if hop)


async def client_address(request: Request) -> str:
    return address_bucket(request.client.host if request.client else "")


ClientAddress = Annotated[str, Depends(client_address)]
