"""TLS towards upstreams against real local HTTPS servers, with a CA and certificates made in
the test (trustme): verification is on by default, a CA bundle and mutual TLS work, and a
failed handshake says so."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import strawberry
import trustme

from graftql import GatewaySchema
from graftql.config import UpstreamConfig
from graftql.errors import UpstreamUnavailable
from graftql.resolvers import Context
from graftql.testing import ChaosUpstream, Respond
from graftql.upstreams import RestUpstream
from integration.helpers import serve


@pytest.fixture(scope="module")
def server_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def client_ca() -> trustme.CA:
    return trustme.CA()


def server_context(
    ca: trustme.CA, *, client_ca: trustme.CA | None = None, max_version: Any = None
) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    if client_ca is not None:  # mutual TLS: no certificate from the client, no connection
        context.verify_mode = ssl.CERT_REQUIRED
        client_ca.configure_trust(context)
    if max_version is not None:
        context.maximum_version = max_version
    return context


@pytest.fixture
def https(server_ca: trustme.CA) -> Iterator[ChaosUpstream]:
    with ChaosUpstream(ssl=server_context(server_ca)).running() as upstream:
        upstream.route("GET /items", Respond(json={"ok": True}))
        yield upstream


def pem(tmp_path: Path, ca: trustme.CA) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def client_files(tmp_path: Path, ca: trustme.CA) -> dict[str, str]:
    cert = ca.issue_cert("gateway.example")
    cert_path, key_path = tmp_path / "client.pem", tmp_path / "client.key"
    for blob in cert.cert_chain_pems:
        blob.write_to_path(str(cert_path), append=True)
    cert.private_key_pem.write_to_path(str(key_path))
    return {"client_cert": str(cert_path), "client_key": str(key_path)}


def upstream(url: str, **config: Any) -> RestUpstream:
    return RestUpstream(
        "svc",
        UpstreamConfig.model_validate(
            {"kind": "rest", "url": url, "retry": {"attempts": 1}, **config}
        ),
    )


async def test_untrusted_upstream_is_refused_by_default(https: ChaosUpstream) -> None:
    svc = upstream(https.url)
    with pytest.raises(UpstreamUnavailable) as caught:
        await svc.get("/items")
    await svc.aclose()
    assert str(caught.value) == (
        "svc could not be reached: TLS certificate verification failed "
        "(the upstream's certificate is not trusted)"
    )
    assert https.requests == []  # nothing was sent to it


async def test_ca_bundle_makes_the_upstream_trusted(
    https: ChaosUpstream, server_ca: trustme.CA, tmp_path: Path
) -> None:
    svc = upstream(https.url, tls={"ca_bundle": pem(tmp_path, server_ca)})
    assert await svc.get("/items") == {"ok": True}
    await svc.aclose()
    assert https.count("GET /items") == 1


async def test_a_self_signed_upstream_is_refused(tmp_path: Path) -> None:
    ca = trustme.CA()  # a CA certificate is self-signed: serve it as the upstream's own
    cert, key = tmp_path / "self.pem", tmp_path / "self.key"
    ca.cert_pem.write_to_path(str(cert))
    ca.private_key_pem.write_to_path(str(key))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    with ChaosUpstream(ssl=context).running() as self_signed:
        self_signed.route("GET /items", Respond(json={"ok": True}))
        svc = upstream(self_signed.url)
        with pytest.raises(UpstreamUnavailable, match="TLS certificate verification failed"):
            await svc.get("/items")
        await svc.aclose()
        assert self_signed.requests == []


async def test_another_cas_bundle_does_not_trust_it(https: ChaosUpstream, tmp_path: Path) -> None:
    svc = upstream(https.url, tls={"ca_bundle": pem(tmp_path, trustme.CA())})
    with pytest.raises(UpstreamUnavailable, match="TLS certificate verification failed"):
        await svc.get("/items")
    await svc.aclose()


async def test_mutual_tls_with_and_without_a_client_certificate(
    server_ca: trustme.CA, client_ca: trustme.CA, tmp_path: Path
) -> None:
    context = server_context(server_ca, client_ca=client_ca)
    with ChaosUpstream(ssl=context).running() as mtls:
        mtls.route("GET /items", Respond(json={"ok": True}))
        bundle = pem(tmp_path, server_ca)
        with_cert = upstream(
            mtls.url, tls={"ca_bundle": bundle, **client_files(tmp_path, client_ca)}
        )
        assert await with_cert.get("/items") == {"ok": True}
        await with_cert.aclose()
        without = upstream(mtls.url, tls={"ca_bundle": bundle})
        with pytest.raises(UpstreamUnavailable) as caught:
            await without.get("/items")
        await without.aclose()
        assert mtls.count("GET /items") == 1  # only the call that showed its certificate
    assert caught.value.code == "UPSTREAM_UNAVAILABLE"


async def test_minimum_tls_version_is_enforced(server_ca: trustme.CA, tmp_path: Path) -> None:
    context = server_context(server_ca, max_version=ssl.TLSVersion.TLSv1_2)
    with ChaosUpstream(ssl=context).running() as old:
        old.route("GET /items", Respond(json={"ok": True}))
        bundle = pem(tmp_path, server_ca)
        modern = upstream(old.url, tls={"ca_bundle": bundle, "min_version": "1.3"})
        with pytest.raises(
            UpstreamUnavailable, match="svc could not be reached: the TLS handshake"
        ):
            await modern.get("/items")
        await modern.aclose()
        tolerant = upstream(old.url, tls={"ca_bundle": bundle})  # 1.2 by default
        assert await tolerant.get("/items") == {"ok": True}
        await tolerant.aclose()


@strawberry.type
class Query:
    @strawberry.field
    async def items(self, info: strawberry.Info[Context, None]) -> str:
        await info.context.upstreams.rest("svc").get("/items")
        return "ok"


def test_gateway_answers_a_tls_failure_as_upstream_unavailable(https: ChaosUpstream) -> None:
    upstreams = {"svc": {"kind": "rest", "url": https.url, "retry": {"attempts": 1}}}
    with serve(GatewaySchema(query=Query), upstreams=upstreams) as gateway:
        body = httpx.post(f"{gateway.url}/graphql", json={"query": "{ items }"}).json()
    [error] = body["errors"]
    assert error["extensions"] == {"code": "UPSTREAM_UNAVAILABLE", "upstream": "svc"}
    assert "TLS certificate verification failed" in error["message"]
    assert https.url not in error["message"]
