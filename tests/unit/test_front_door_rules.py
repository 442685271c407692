"""The front door's pure logic: client buckets (injected clock), who the client is
(X-Forwarded-For), and the ``server.rate_limit`` / ``server.cors`` keys."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from starlette.requests import Request

from graftql.config import parse_config
from graftql.errors import ConfigError
from graftql.resolvers import Context
from graftql.schema.ratelimit import ClientBuckets, InboundRateLimiter, client_address
from graftql.upstreams import Upstreams


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- buckets ------------------------------------------------------------------------------------


def test_a_bucket_admits_the_burst_then_one_per_interval() -> None:
    clock = Clock()
    buckets = ClientBuckets(rate=2, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == 0.5  # one token every 0.5 s
    clock.now += 0.2
    assert buckets.take("a") == pytest.approx(0.3)  # the refusal took nothing
    clock.now += 0.3
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == 0.5
    assert buckets.take("b") == 0.0  # every client has its own


def test_a_bucket_never_saves_more_than_the_burst() -> None:
    clock = Clock()
    buckets = ClientBuckets(rate=1, burst=2, clock=clock)
    buckets.take("a")
    clock.now += 3600
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 1.0]


def test_a_weighted_operation_takes_its_cost() -> None:
    clock = Clock()
    buckets = ClientBuckets(rate=1, burst=5, clock=clock)
    assert buckets.take("a", cost=4) == 0.0
    assert buckets.take("a", cost=2) == 1.0  # one token left, two needed
    assert buckets.take("a", cost=1) == 0.0


def test_the_least_recently_seen_client_is_forgotten_and_starts_full() -> None:
    clock = Clock()
    buckets = ClientBuckets(rate=1, burst=1, max_clients=2, clock=clock)
    buckets.take("a")
    buckets.take("b")
    assert buckets.take("a") > 0  # "a" is now the most recently seen
    buckets.take("c")  # forgets "b"
    assert len(buckets) == 2
    assert buckets.take("b") == 0.0  # forgotten: a full bucket again (and "a" is forgotten)
    assert buckets.take("a") == 0.0


# -- who the client is --------------------------------------------------------------------------


def request(peer: str | None, *forwarded: str) -> Request:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/graphql",
        "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded],
        "client": (peer, 51000) if peer is not None else None,
    }
    return Request(scope)


TRUSTED = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8:ffff::/48"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # An untrusted peer is the client, whatever it claims.
        ("203.0.113.5", ["198.51.100.1"], "203.0.113.5"),
        ("203.0.113.5", [], "203.0.113.5"),
        # A trusted proxy: the right-most address it and other trusted proxies did not add.
        ("10.0.0.1", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.1", ["192.0.2.66, 198.51.100.1, 10.9.9.9"], "198.51.100.1"),
        ("10.0.0.1", ["192.0.2.66", "198.51.100.1, 10.9.9.9"], "198.51.100.1"),  # two lines
        ("10.0.0.1", [" 198.51.100.1 , 10.2.2.2 "], "198.51.100.1"),
        # Every hop trusted: the left-most.
        ("10.0.0.1", ["10.3.3.3, 10.2.2.2"], "10.3.3.3"),
        # No header: the proxy itself.
        ("10.0.0.1", [], "10.0.0.1"),
        # A hop that is not an address: nothing left of it is believed.
        ("10.0.0.1", ["198.51.100.1, unknown, 10.2.2.2"], "10.2.2.2"),
        ("10.0.0.1", ["_hidden"], "10.0.0.1"),
        # How proxies write addresses: with ports, bracketed IPv6, IPv4-mapped IPv6.
        ("10.0.0.1", ["198.51.100.1:4711"], "198.51.100.1"),
        ("10.0.0.1", ["[2001:db8::1]:4711"], "2001:db8::1"),
        ("10.0.0.1", ["2001:db8::1"], "2001:db8::1"),
        ("::ffff:10.0.0.1", ["::ffff:198.51.100.1"], "198.51.100.1"),
        ("2001:db8:ffff::1", ["198.51.100.1"], "198.51.100.1"),
    ],
)
def test_the_client_address(peer: str, forwarded: list[str], client: str) -> None:
    assert str(client_address(request(peer, *forwarded), TRUSTED)) == client


def test_without_a_peer_address_there_is_no_client_address() -> None:
    assert client_address(request(None, "198.51.100.1"), TRUSTED) is None


def limiter(**rate_limit: Any) -> InboundRateLimiter:
    config = parse_config({"schema": "a:b", "server": {"rate_limit": {"rate": 1, **rate_limit}}})
    assert config.server.rate_limit is not None
    return InboundRateLimiter(config.server.rate_limit)


def context(peer: str | None, principal: dict[str, Any] | None = None) -> Context:
    return Context(
        request=request(peer), response=None, upstreams=Upstreams({}), principal=principal or {}
    )


def test_the_client_key_is_the_principal_else_the_address() -> None:
    limits = limiter()
    assert limits.client_key(context("203.0.113.5")) == "ip:203.0.113.5"
    assert limits.client_key(context(None)) == "ip:unknown"
    # IPv6 by its /64: one subscriber's block is one client.
    assert limits.client_key(context("2001:db8:1:2::5")) == "ip:2001:db8:1:2::/64"
    assert limits.client_key(context("2001:db8:1:2:ffff::9")) == "ip:2001:db8:1:2::/64"
    # The principal wins over the address, hashed; the same subject is one client.
    alice = limits.client_key(context("203.0.113.5", {"sub": "alice", "scope": "a"}))
    assert alice.startswith("principal:") and "alice" not in alice
    assert limits.client_key(context("198.51.100.9", {"sub": "alice", "scope": "b"})) == alice
    assert limits.client_key(context("203.0.113.5", {"sub": "bob"})) != alice


# -- configuration ------------------------------------------------------------------------------


def server(**block: Any) -> Any:
    return parse_config({"schema": "a:b", "server": block}).server


def problems(document: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as raised:
        parse_config({"schema": "a:b", **document})
    return raised.value.errors


def test_rate_limit_and_cors_are_off_by_default() -> None:
    assert server().rate_limit is None
    assert server().cors is None


def test_rate_limit_keys_and_defaults() -> None:
    limit = server(rate_limit={"rate": 2.5}).rate_limit
    assert (limit.rate, limit.burst, limit.shared, limit.trusted_proxies) == (2.5, 3, False, [])
    assert server(rate_limit={"rate": 0.1}).rate_limit.burst == 1  # one second's worth, >= 1
    limit = server(rate_limit={"rate": 1, "burst": 7, "trusted_proxies": ["10.0.0.1", "::1"]})
    assert limit.rate_limit.burst == 7
    assert limit.rate_limit.trusted_proxies == ["10.0.0.1/32", "::1/128"]


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ({}, [("server.rate_limit.rate", "required key is missing")]),
        ({"rate": 0}, [("server.rate_limit.rate", "input should be greater than 0")]),
        (
            {"rate": 1, "burst": 0},
            [("server.rate_limit.burst", "input should be greater than or equal to 1")],
        ),
        ({"rate": 1, "burts": 2}, [("server.rate_limit.burts", "unknown key")]),
        (
            {"rate": 1, "trusted_proxies": ["10.0.0.1/8"]},
            [
                (
                    "server.rate_limit.trusted_proxies[0]",
                    "'10.0.0.1/8' is not an IP address or network (10.0.0.0/8): "
                    "10.0.0.1/8 has host bits set",
                )
            ],
        ),
        (
            {"rate": 1, "shared": True},
            [("server.rate_limit.shared", "needs the top-level 'redis:' block")],
        ),
    ],
)
def test_rate_limit_errors_name_the_key(
    block: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert problems({"server": {"rate_limit": block}}) == expected


def test_a_shared_rate_limit_with_redis_is_valid() -> None:
    config = parse_config(
        {"schema": "a:b", "redis": {}, "server": {"rate_limit": {"rate": 1, "shared": True}}}
    )
    assert config.server.rate_limit is not None and config.server.rate_limit.shared


def test_cors_keys_and_defaults() -> None:
    cors = server(cors={"allow_origins": ["https://App.example.com:443", "http://localhost:3000"]})
    assert cors.cors.allow_origins == ["https://app.example.com", "http://localhost:3000"]
    assert (cors.cors.allow_credentials, cors.cors.allow_headers, cors.cors.max_age) == (
        False,
        [],
        600,
    )


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (
            {"allow_origins": ["*"], "allow_credentials": True},
            [
                (
                    "server.cors.allow_credentials",
                    "cannot be true when allow_origins has '*' (any site could then send "
                    "requests with its visitors' cookies); list the origins",
                )
            ],
        ),
        ({}, [("server.cors.allow_origins", "required key is missing")]),
        (
            {"allow_origins": ["https://app.example.com/"]},
            [
                (
                    "server.cors.allow_origins[0]",
                    "'https://app.example.com/' is not an origin: scheme://host[:port] with no "
                    "path, e.g. 'https://app.example.com', or '*'",
                )
            ],
        ),
        (
            {"allow_origins": ["*"], "allow_headers": ["x y"]},
            [("server.cors.allow_headers[0]", "'x y' is not a header name")],
        ),
    ],
)
def test_cors_errors_name_the_key(block: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert problems({"server": {"cors": block}}) == expected
