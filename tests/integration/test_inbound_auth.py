"""Inbound identity (``server.auth``): the client's JWT over real HTTP and WebSocket.

Keys are made in the test; a JWKS is served by a real local HTTP server for the URL case.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import strawberry
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from websockets.typing import Subprotocol

from graftql import Context, GatewaySchema
from graftql.demo.servers import ServerThread
from graftql.upstreams import caller
from integration.helpers import serve, ws_connected, ws_url

PROTOCOLS = [Subprotocol("graphql-transport-ws")]
ISSUER = "https://id.example.test/"
AUDIENCE = "graftql-tests"


@strawberry.type
class Query:
    @strawberry.field
    def me(self, info: strawberry.Info[Context, None]) -> str | None:
        sub = info.context.principal.get("sub")
        return str(sub) if sub is not None else None

    @strawberry.field
    def principal_id(self, info: strawberry.Info[Context, None]) -> str | None:
        return info.context.principal_id

    @strawberry.field
    def upstream_sees(self) -> str | None:
        """What the upstream layer knows of the client (forwarding, cache scope)."""
        current = caller.current()
        return current.principal if current is not None else None


SCHEMA = GatewaySchema(query=Query)
ME = {"query": "{ me }"}


# -- keys and tokens --------------------------------------------------------------------------


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "user-1",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: Any, algorithm: str = "RS256", kid: str | None = None, **changes: Any) -> str:
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims(**changes), key, algorithm=algorithm, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# -- gateways ---------------------------------------------------------------------------------

KEY = rsa_key()
OTHER_KEY = rsa_key()


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "jwt.pem"
    path.write_bytes(pem(KEY))
    return path


def rs256(key_file: Path, **auth: Any) -> dict[str, Any]:
    return {
        "algorithms": ["RS256"],
        "public_key": f"file:{key_file}",
        "issuer": ISSUER,
        "audience": AUDIENCE,
        **auth,
    }


@pytest.fixture(scope="module")
def gateway(key_file: Path) -> Iterator[str]:
    with serve(SCHEMA, auth=rs256(key_file)) as server:
        yield server.url


@pytest.fixture(scope="module")
def anonymous_gateway(key_file: Path) -> Iterator[str]:
    with serve(SCHEMA, auth=rs256(key_file, anonymous=True)) as server:
        yield server.url


def post(url: str, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{url}/graphql", json=ME, headers=headers, timeout=30, **kwargs)


def assert_refused(response: httpx.Response, message: str = "the bearer token is invalid") -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == 'Bearer realm="graftql", error="invalid_token"'
    assert response.json() == {
        "errors": [{"message": message, "extensions": {"code": "UNAUTHENTICATED"}}]
    }


# -- HTTP: what is accepted --------------------------------------------------------------------


def test_a_valid_token_makes_its_claims_the_principal(gateway: str) -> None:
    response = httpx.post(
        f"{gateway}/graphql",
        json={"query": "{ me principalId upstreamSees }"},
        headers=bearer(sign(KEY)),
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["me"] == "user-1"
    hashed = hashlib.sha256(b"user-1").hexdigest()[:32]
    assert data["principalId"] == data["upstreamSees"] == hashed


def test_rate_limits_count_per_principal(key_file: Path) -> None:
    # One address, two principals: each has its own bucket (server.rate_limit).
    limit = {"rate": 0.001, "burst": 2}
    with serve(SCHEMA, auth=rs256(key_file, anonymous=True), rate_limit=limit) as server:
        alice, bob = bearer(sign(KEY, sub="alice")), bearer(sign(KEY, sub="bob"))
        assert [post(server.url, alice).status_code for _ in range(3)] == [200, 200, 429]
        assert [post(server.url, bob).status_code for _ in range(3)] == [200, 200, 429]
        # Anonymous clients share their address's bucket, apart from both.
        assert [post(server.url).status_code for _ in range(3)] == [200, 200, 429]


def test_a_token_expired_within_the_leeway_is_accepted(gateway: str) -> None:
    now = int(time.time())
    response = post(gateway, bearer(sign(KEY, exp=now - 5, iat=now - 60)))
    assert response.json() == {"data": {"me": "user-1"}}


def test_the_scheme_is_case_insensitive(gateway: str) -> None:
    response = post(gateway, {"authorization": f"bearer {sign(KEY)}"})
    assert response.json() == {"data": {"me": "user-1"}}


def test_an_es256_public_key(tmp_path: Path) -> None:
    key = ec_key()
    (tmp_path / "ec.pem").write_bytes(pem(key))
    auth = {"algorithms": ["ES256"], "public_key": f"file:{tmp_path / 'ec.pem'}"}
    with serve(SCHEMA, auth=auth) as server:
        assert post(server.url, bearer(sign(key, "ES256", aud=None))).json() == {
            "data": {"me": "user-1"}
        }
        # An RS256 token is refused by an ES256-only gateway.
        assert_refused(post(server.url, bearer(sign(KEY, aud=None))))


def test_an_hs256_secret(tmp_path: Path) -> None:
    secret = "s3cret-for-hs256-tests-0123456789abcdef"
    (tmp_path / "secret").write_text(secret + "\n")
    auth = {"algorithms": ["HS256"], "secret": f"file:{tmp_path / 'secret'}", "audience": "a"}
    with serve(SCHEMA, auth=auth) as server:
        assert post(server.url, bearer(sign(secret, "HS256", aud="a"))).json() == {
            "data": {"me": "user-1"}
        }
        assert_refused(post(server.url, bearer(sign(secret + "x", "HS256", aud="a"))))


# -- HTTP: what is refused, and how ----------------------------------------------------------


def test_an_expired_token_is_401_and_says_expired(gateway: str) -> None:
    now = int(time.time())
    response = post(gateway, bearer(sign(KEY, exp=now - 3600, iat=now - 7200)))
    assert_refused(response, "the bearer token has expired")


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"nbf": int(time.time()) + 3600}, id="not-yet-valid"),
        pytest.param({"aud": "someone-else"}, id="wrong-audience"),
        pytest.param({"aud": None}, id="no-audience"),
        pytest.param({"iss": "https://evil.example/"}, id="wrong-issuer"),
        pytest.param({"exp": None}, id="no-expiry"),
        pytest.param({"iat": int(time.time()) + 3600}, id="issued-in-the-future"),
    ],
)
def test_a_token_with_wrong_claims_is_401(gateway: str, changes: dict[str, Any]) -> None:
    assert_refused(post(gateway, bearer(sign(KEY, **changes))))


def test_a_token_signed_by_another_key_is_401(gateway: str) -> None:
    assert_refused(post(gateway, bearer(sign(OTHER_KEY))))


def test_a_tampered_payload_is_401(gateway: str) -> None:
    header, _, signature = sign(KEY).split(".")
    forged = b64(json.dumps(claims(sub="admin")).encode())
    assert_refused(post(gateway, bearer(f"{header}.{forged}.{signature}")))


def test_alg_none_is_401(gateway: str) -> None:
    token = unsigned({"alg": "none", "typ": "JWT"}, claims()) + "."
    assert_refused(post(gateway, bearer(token)))
    # "None" and "NONE" are no different.
    token = unsigned({"alg": "NONE", "typ": "JWT"}, claims()) + "."
    assert_refused(post(gateway, bearer(token)))


def test_an_hs256_token_signed_with_the_rs256_public_key_is_401(gateway: str) -> None:
    # Algorithm confusion: a verifier that trusted the token's alg would check this HMAC with
    # the public key's bytes as the secret, and anyone can read a public key.
    signing_input = unsigned({"alg": "HS256", "typ": "JWT"}, claims(sub="admin"))
    digest = hmac.new(pem(KEY), signing_input.encode(), hashlib.sha256).digest()
    assert_refused(post(gateway, bearer(f"{signing_input}.{b64(digest)}")))


@pytest.mark.parametrize(
    "value",
    [
        "Bearer",
        "Bearer .",
        "Bearer  .",
        "Bearer a.b",
        "Bearer a.b.c",
        "Bearer !!!.???.***",
        "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0",  # two segments
        "Bearer e30.e30.",  # '{}' header: no alg
        "Bearer bm90IGpzb24.e30.c2ln",  # the header is not JSON
        "Bearer W10.e30.c2ln",  # the header is a JSON list
        "Bearer " + "A" * 9000,  # over max_token_bytes
        "Bearer token with spaces",
    ],
)
def test_a_malformed_bearer_value_is_401(gateway: str, value: str) -> None:
    assert_refused(post(gateway, {"authorization": value}))


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Digest x", "Token abc", "garbage"])
def test_another_scheme_is_401(gateway: str, value: str) -> None:
    response = post(gateway, {"authorization": value})
    assert response.status_code == 401
    assert response.json()["errors"][0] == {
        "message": "the Authorization header must be 'Bearer <token>'",
        "extensions": {"code": "UNAUTHENTICATED"},
    }


def test_a_100_kb_header_is_401_without_being_parsed(gateway: str) -> None:
    assert_refused(post(gateway, {"authorization": "Bearer " + "A" * 100_000}))


def test_a_non_latin1_header_value_is_401(gateway: str) -> None:
    raw = ("Bearer " + "é" * 10).encode("utf-8")
    response = httpx.post(
        f"{gateway}/graphql", json=ME, headers=[(b"authorization", raw)], timeout=30
    )
    assert_refused(response)


def test_no_token_is_401_without_an_error_code_when_anonymous_is_off(gateway: str) -> None:
    response = post(gateway)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="graftql"'
    assert response.json() == {
        "errors": [
            {"message": "authentication required", "extensions": {"code": "UNAUTHENTICATED"}}
        ]
    }


def test_no_token_is_anonymous_when_allowed(anonymous_gateway: str) -> None:
    response = httpx.post(
        f"{anonymous_gateway}/graphql", json={"query": "{ me principalId }"}, timeout=30
    )
    assert response.json() == {"data": {"me": None, "principalId": None}}


def test_an_invalid_token_is_401_even_when_anonymous_is_allowed(anonymous_gateway: str) -> None:
    assert_refused(post(anonymous_gateway, bearer(sign(OTHER_KEY))))
    response = post(anonymous_gateway, {"authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401


def test_the_refusal_comes_before_the_body_is_read(gateway: str) -> None:
    # No body at all, and not JSON: an unauthenticated client learns only that it is one.
    response = httpx.post(f"{gateway}/graphql", content=b"{", headers={"content-type": "x/y"})
    assert response.status_code == 401


def test_graphiql_loads_without_a_token(gateway: str) -> None:
    response = httpx.get(f"{gateway}/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200 and "graphiql" in response.text.lower()
    # GraphiQL's own state in the query string (the demo's link fills its Headers tab).
    headers = json.dumps({"Authorization": f"Bearer {sign(KEY)}"})
    for params in ({"headers": headers}, {"q": "{ me }", "headers": headers}):
        page = httpx.get(f"{gateway}/graphql", params=params, headers={"accept": "text/html"})
        assert page.status_code == 200 and "graphiql" in page.text.lower()
    # A query in the query string is a GraphQL request, browser or not.
    query = httpx.get(
        f"{gateway}/graphql", params={"query": "{ me }"}, headers={"accept": "text/html"}
    )
    assert query.status_code == 401


def test_get_requests_are_authenticated_too(gateway: str) -> None:
    response = httpx.get(f"{gateway}/graphql", params={"query": "{ me }"})
    assert response.status_code == 401
    response = httpx.get(
        f"{gateway}/graphql", params={"query": "{ me }"}, headers=bearer(sign(KEY))
    )
    assert response.json() == {"data": {"me": "user-1"}}


def test_every_rejection_is_audited_without_the_token(
    gateway: str, caplog: pytest.LogCaptureFixture
) -> None:
    now = int(time.time())
    tokens = [
        sign(KEY, exp=now - 3600, iat=now - 7200),
        sign(OTHER_KEY),
        sign(KEY, aud="someone-else"),
    ]
    with caplog.at_level(logging.INFO, logger="graftql.audit"):
        for token in tokens:
            assert post(gateway, bearer(token)).status_code == 401
        assert post(gateway).status_code == 401
    records = [r for r in caplog.records if r.name == "graftql.audit"]
    assert [r.graftql["reason"] for r in records] == [  # type: ignore[attr-defined]
        "expired",
        "bad signature",
        "wrong audience",
        "no token",
    ]
    for record in records:
        assert record.graftql["event"] == "inbound_token_rejected"  # type: ignore[attr-defined]
        assert record.graftql["transport"] == "http"  # type: ignore[attr-defined]
        text = record.getMessage() + json.dumps(record.graftql)  # type: ignore[attr-defined]
        for token in tokens:
            for part in token.split("."):
                assert part not in text


# -- WebSocket --------------------------------------------------------------------------------


async def ws_me(url: str, payload: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """The answer to ``{ me }`` over graphql-transport-ws, or the close code when closed."""
    async with websockets.connect(ws_url(url), subprotocols=PROTOCOLS, **kwargs) as ws:
        init: dict[str, Any] = {"type": "connection_init"}
        if payload is not None:
            init["payload"] = payload
        await ws.send(json.dumps(init))
        try:
            ack = json.loads(await ws.recv())
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code
        assert ack == {"type": "connection_ack"}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": ME}))
        return json.loads(await ws.recv())["payload"]


async def test_websocket_token_in_connection_init(gateway: str) -> None:
    answer = await ws_me(gateway, {"Authorization": f"Bearer {sign(KEY)}"})
    assert answer == {"data": {"me": "user-1"}}
    answer = await ws_me(gateway, {"authorization": f"Bearer {sign(KEY, sub='user-2')}"})
    assert answer == {"data": {"me": "user-2"}}


async def test_websocket_token_in_the_handshake_header(gateway: str) -> None:
    answer = await ws_me(gateway, additional_headers=bearer(sign(KEY)))
    assert answer == {"data": {"me": "user-1"}}


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(None, id="no-token"),
        pytest.param({"Authorization": f"Bearer {sign(OTHER_KEY)}"}, id="wrong-key"),
        pytest.param({"Authorization": "Basic x"}, id="basic"),
        pytest.param({"Authorization": 42}, id="not-a-string"),
        pytest.param({"Authorization": "Bearer garbage"}, id="garbage"),
    ],
)
async def test_websocket_refusal_closes_with_4403(
    gateway: str, payload: dict[str, Any] | None
) -> None:
    assert await ws_me(gateway, payload) == 4403


async def test_websocket_anonymous_when_allowed(anonymous_gateway: str) -> None:
    assert await ws_me(anonymous_gateway, {}) == {"data": {"me": None}}
    bad = {"Authorization": f"Bearer {sign(OTHER_KEY)}"}
    assert await ws_me(anonymous_gateway, bad) == 4403


async def test_websocket_rejection_is_audited(
    gateway: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="graftql.audit"):
        assert await ws_me(gateway, {"Authorization": f"Bearer {sign(OTHER_KEY)}"}) == 4403
    (record,) = [r for r in caplog.records if r.name == "graftql.audit"]
    assert record.graftql == {  # type: ignore[attr-defined]
        "event": "inbound_token_rejected",
        "reason": "bad signature",
        "status": 401,
        "transport": "websocket",
    }


# -- JWKS from a URL and from a file ----------------------------------------------------------


def public_jwk(key: Any, kid: str, alg: str | None = None) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    else:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk["kid"] = kid
    if alg:
        jwk["alg"] = alg
    return jwk


@dataclass
class KeyServer:
    """A JWKS endpoint on loopback whose keys and health the test sets."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    requests: int = 0
    url: str = ""

    def app(self) -> Starlette:
        async def jwks(_: Request) -> Response:
            self.requests += 1
            if self.status != 200:
                return Response("down", status_code=self.status)
            return JSONResponse({"keys": self.keys})

        return Starlette(routes=[Route("/.well-known/jwks.json", jwks)])


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    server = KeyServer()
    with ServerThread(server.app()) as thread:
        server.url = f"{thread.url}/.well-known/jwks.json"
        yield server


EC_A, EC_B = ec_key(), ec_key()


def es256_jwks(url: str, **auth: Any) -> dict[str, Any]:
    return {"algorithms": ["ES256"], "jwks_url": url, "audience": AUDIENCE, **auth}


def test_jwks_url_keys_are_fetched_once_and_cached(key_server: KeyServer) -> None:
    key_server.keys = [public_jwk(EC_A, "a"), public_jwk(EC_B, "b")]
    with serve(SCHEMA, auth=es256_jwks(key_server.url)) as server:
        for key, kid in ((EC_A, "a"), (EC_B, "b"), (EC_A, "a")):
            response = post(server.url, bearer(sign(key, "ES256", kid=kid)))
            assert response.json() == {"data": {"me": "user-1"}}
        # The key with kid "b" does not verify a token that names kid "a".
        assert_refused(post(server.url, bearer(sign(EC_B, "ES256", kid="a"))))
    assert key_server.requests == 1


def test_an_unknown_kid_makes_the_gateway_fetch_the_keys_again(key_server: KeyServer) -> None:
    key_server.keys = [public_jwk(EC_A, "a")]
    with serve(SCHEMA, auth=es256_jwks(key_server.url, jwks_min_refetch=0)) as server:
        assert post(server.url, bearer(sign(EC_A, "ES256", kid="a"))).status_code == 200
        # The provider rotates in key "b"; the first token signed with it finds it.
        key_server.keys = [public_jwk(EC_A, "a"), public_jwk(EC_B, "b")]
        response = post(server.url, bearer(sign(EC_B, "ES256", kid="b")))
        assert response.json() == {"data": {"me": "user-1"}}
        assert key_server.requests == 2
        # A kid the provider does not have either: fetched again, then refused.
        assert_refused(post(server.url, bearer(sign(EC_B, "ES256", kid="nope"))))
        assert key_server.requests == 3


def test_unknown_kids_cannot_make_the_gateway_flood_the_provider(key_server: KeyServer) -> None:
    key_server.keys = [public_jwk(EC_A, "a")]
    with serve(SCHEMA, auth=es256_jwks(key_server.url, jwks_min_refetch=3600)) as server:
        assert post(server.url, bearer(sign(EC_A, "ES256", kid="a"))).status_code == 200
        for i in range(10):
            assert_refused(post(server.url, bearer(sign(EC_B, "ES256", kid=f"random-{i}"))))
    assert key_server.requests == 1


def test_a_jwks_endpoint_that_is_down_is_503_not_401(key_server: KeyServer) -> None:
    # The token may be perfectly valid: 401 would tell the client to throw it away.
    key_server.status = 500
    with serve(SCHEMA, auth=es256_jwks(key_server.url, jwks_min_refetch=0)) as server:
        response = post(server.url, bearer(sign(EC_A, "ES256", kid="a")))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert response.json() == {
            "errors": [
                {
                    "message": "the identity provider's keys are unavailable; try again shortly",
                    "extensions": {"code": "IDENTITY_UNAVAILABLE"},
                }
            ]
        }
        # Still no refusal for a bad token before anything is known: the alg is checked
        # first, then keys are needed.
        assert_refused(post(server.url, bearer(sign(KEY, "RS256", kid="a"))))
        # Back up: the next request fetches and is served.
        key_server.status = 200
        key_server.keys = [public_jwk(EC_A, "a")]
        assert post(server.url, bearer(sign(EC_A, "ES256", kid="a"))).status_code == 200


def test_a_jwks_endpoint_that_cannot_be_reached_is_503() -> None:
    with ServerThread(Starlette()) as closed:
        url = closed.url  # a port that is free once the server stops
    with serve(SCHEMA, auth=es256_jwks(f"{url}/jwks.json")) as server:
        response = post(server.url, bearer(sign(EC_A, "ES256", kid="a")))
        assert response.status_code == 503


def test_a_jwk_that_names_its_algorithm_verifies_only_that_one(key_server: KeyServer) -> None:
    key_server.keys = [public_jwk(KEY, "r", alg="RS256")]
    auth = {"algorithms": ["RS256", "PS256"], "jwks_url": key_server.url}
    with serve(SCHEMA, auth=auth) as server:
        assert post(server.url, bearer(sign(KEY, "RS256", kid="r", aud=None))).status_code == 200
        assert_refused(post(server.url, bearer(sign(KEY, "PS256", kid="r", aud=None))))


def test_jwks_file(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [public_jwk(EC_A, "a")]}))
    auth = {"algorithms": ["ES256"], "jwks_file": str(path), "jwks_min_refetch": 0}
    with serve(SCHEMA, auth=auth) as server:
        assert post(server.url, bearer(sign(EC_A, "ES256", kid="a", aud=None))).status_code == 200
        # A new key written to the file is picked up by the first token that names it.
        path.write_text(json.dumps({"keys": [public_jwk(EC_A, "a"), public_jwk(EC_B, "b")]}))
        response = post(server.url, bearer(sign(EC_B, "ES256", kid="b", aud=None)))
        assert response.json() == {"data": {"me": "user-1"}}


async def test_a_websocket_closes_with_4403_when_its_token_expires(
    key_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with serve(SCHEMA, auth=rs256(key_file, leeway=0)) as server:
        expires = int(time.time()) + 4
        expiring = sign(KEY, exp=expires)
        async with ws_connected(server.url, {"Authorization": f"Bearer {expiring}"}) as ws:
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": ME}))
            assert json.loads(await ws.recv())["payload"] == {"data": {"me": "user-1"}}
            assert json.loads(await ws.recv()) == {"id": "1", "type": "complete"}
            # Nothing more is sent until the token's exp: then the gateway closes.
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), timeout=30)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4403, "token expired")
        assert time.time() >= expires - 0.1  # not before
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
