"""Per-address limits count one IPv4 address or one IPv6 /64, and a forwarding instance passes on the
client it resolved, after whatever X-Forwarded-For it received."""

from __future__ import annotations

from starlette.requests import Request

from web.client_address import address_bucket, forwarded_for


def request_from(client: str, forwarded: list[str]) -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return Request({"type": "http", "method": "POST", "headers": headers, "client": (client, 51000)})


def test_an_ipv4_address_is_its_own_bucket() -> None:
    assert address_bucket("203.0.113.7") == "203.0.113.7"


def test_the_addresses_of_one_ipv6_64_share_a_bucket() -> None:
    one = address_bucket("2001:db8:1:2:aaaa::1")
    assert one == address_bucket("2001:db8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64"
    assert address_bucket("2001:db8:1:3::1") != one


def test_an_ipv4_mapped_ipv6_address_counts_as_the_ipv4_address() -> None:
    assert address_bucket("::ffff:203.0.113.7") == "203.0.113.7"


def test_a_client_named_otherwise_by_a_trusted_proxy_is_kept_short() -> None:
    assert address_bucket("unknown") == "unknown"
    assert len(address_bucket("x" * 5000)) == 100


def test_a_forwarded_request_names_the_resolved_client_last() -> None:
    # An untrusted caller's own header is kept, but the next hop reads the address after it.
    assert forwarded_for(request_from("198.51.100.9", ["10.9.9.9"])) == "10.9.9.9, 198.51.100.9"
    assert forwarded_for(request_from("198.51.100.9", ["1.1.1.1", "2.2.2.2"])) == (
        "1.1.1.1, 2.2.2.2, 198.51.100.9"
    )
    assert forwarded_for(request_from("198.51.100.9", [])) == "198.51.100.9"
