"""The JWKS cache of ``server.auth`` with an injected clock, against a real local key server:
refresh interval, stale keys kept when a refresh fails, refetch for an unknown kid at most
once per ``jwks_min_refetch``, one fetch for many concurrent tokens."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from graftql.config import InboundAuthConfig
from graftql.demo.servers import ServerThread
from graftql.server.identity import InboundAuth, TokenRejected
from integration.test_inbound_auth import EC_A, EC_B, KeyServer, public_jwk, sign


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    server = KeyServer(keys=[public_jwk(EC_A, "a")])
    with ServerThread(server.app()) as thread:
        server.url = f"{thread.url}/.well-known/jwks.json"
        yield server


def verifier(url: str, clock: Clock, **config: Any) -> InboundAuth:
    settings = {"algorithms": ["ES256"], "jwks_url": url, **config}
    return InboundAuth(InboundAuthConfig.model_validate(settings), clock=clock)


def token(key: Any = EC_A, kid: str = "a") -> str:
    return "Bearer " + sign(key, "ES256", kid=kid, aud=None)


async def test_keys_are_fetched_again_after_the_refresh_interval(key_server: KeyServer) -> None:
    clock = Clock()
    auth = verifier(key_server.url, clock, jwks_refresh=300)
    try:
        await auth.authenticate(token())
        clock.now += 299
        await auth.authenticate(token())
        assert key_server.requests == 1
        clock.now += 1
        await auth.authenticate(token())
        assert key_server.requests == 2
    finally:
        await auth.aclose()


async def test_a_failed_refresh_keeps_the_cached_keys(key_server: KeyServer) -> None:
    clock = Clock()
    auth = verifier(key_server.url, clock, jwks_refresh=300, jwks_min_refetch=30)
    try:
        await auth.authenticate(token())
        key_server.status = 503
        clock.now += 300
        assert (await auth.authenticate(token()))["sub"] == "user-1"  # stale, still served
        assert key_server.requests == 2
        # The failure is not retried on every request, only after jwks_min_refetch.
        clock.now += 29
        await auth.authenticate(token())
        assert key_server.requests == 2
        clock.now += 1
        await auth.authenticate(token())
        assert key_server.requests == 3
        # A kid that is not cached while the provider is down: cannot decide, 503.
        with pytest.raises(TokenRejected) as caught:
            await auth.authenticate(token(EC_B, "b"))
        assert caught.value.status == 503
    finally:
        await auth.aclose()


async def test_with_nothing_cached_a_down_provider_is_asked_at_most_once_per_interval(
    key_server: KeyServer,
) -> None:
    clock = Clock()
    key_server.status = 500
    auth = verifier(key_server.url, clock, jwks_min_refetch=30)
    try:
        for _ in range(5):
            with pytest.raises(TokenRejected) as caught:
                await auth.authenticate(token())
            assert caught.value.status == 503 and caught.value.code == "IDENTITY_UNAVAILABLE"
        assert key_server.requests == 1
        key_server.status = 200
        clock.now += 30
        assert (await auth.authenticate(token()))["sub"] == "user-1"
        assert key_server.requests == 2
    finally:
        await auth.aclose()


async def test_concurrent_tokens_with_a_new_kid_share_one_fetch(key_server: KeyServer) -> None:
    clock = Clock()
    auth = verifier(key_server.url, clock, jwks_min_refetch=30)
    try:
        await auth.authenticate(token())
        key_server.keys = [public_jwk(EC_A, "a"), public_jwk(EC_B, "b")]
        clock.now += 30
        results = await asyncio.gather(*(auth.authenticate(token(EC_B, "b")) for _ in range(20)))
        assert [claims["sub"] for claims in results] == ["user-1"] * 20
        assert key_server.requests == 2
    finally:
        await auth.aclose()


async def test_unknown_kids_after_a_refetch_are_refused_without_asking_again(
    key_server: KeyServer,
) -> None:
    clock = Clock()
    auth = verifier(key_server.url, clock, jwks_min_refetch=30)
    try:
        await auth.authenticate(token())
        clock.now += 30
        for i in range(5):
            with pytest.raises(TokenRejected) as caught:
                await auth.authenticate(token(EC_B, f"kid-{i}"))
            assert caught.value.status == 401 and caught.value.reason == "unknown key id"
        assert key_server.requests == 2  # the first unknown kid asked; the rest did not
    finally:
        await auth.aclose()


async def test_a_key_set_with_no_usable_key_is_unavailable(key_server: KeyServer) -> None:
    clock = Clock()
    # A symmetric key in a public key set is ignored: it must never verify anything.
    key_server.keys = [{"kty": "oct", "k": "c2VjcmV0", "kid": "a"}, {"kty": "nope", "kid": "x"}]
    auth = verifier(key_server.url, clock)
    try:
        with pytest.raises(TokenRejected) as caught:
            await auth.authenticate(token())
        assert caught.value.status == 503
    finally:
        await auth.aclose()
