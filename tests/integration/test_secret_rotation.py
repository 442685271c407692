"""Secret rotation without a restart, against real upstreams and real files changed during the
test: a ``file:`` secret is read again when the upstream rejects it, the request goes once
more with the new value, and the audit trail records it without ever showing a secret."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import strawberry

from graftql import Context, GatewaySchema
from graftql.config import UpstreamConfig, parse_config
from graftql.demo.servers import ServerThread
from graftql.errors import UpstreamAuthError
from graftql.server import create_app
from graftql.server.logs import configure_logging
from graftql.testing import Call, ChaosUpstream, ReceivedRequest, Respond
from graftql.upstreams import RestUpstream, events
from graftql.upstreams.auth import OAuth2ClientCredentialsAuth

OLD, NEW = "old-k3y-41f0c2", "new-k3y-9be7d1"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# How each scheme presents the key, as the upstream sees it.
SCHEMES: dict[str, tuple[dict[str, Any], Callable[[ReceivedRequest], str | None]]] = {
    "bearer": ({"type": "bearer"}, lambda r: r.headers.get("authorization")),
    "api_key_header": (
        {"type": "api_key", "header": "X-Api-Key"},
        lambda r: r.headers.get("x-api-key"),
    ),
    "api_key_query": (
        {"type": "api_key", "query": "key"},
        lambda r: dict(p.split("=", 1) for p in r.query.split("&") if "=" in p).get("key"),
    ),
    "basic": ({"type": "basic", "username": "gw"}, lambda r: r.headers.get("authorization")),
}
EXPECTED = {
    "bearer": lambda key: f"Bearer {key}",
    "api_key_header": lambda key: key,
    "api_key_query": lambda key: key,
    "basic": lambda key: basic("gw", key),
}
SECRET_KEY = {"bearer": "token", "basic": "password"}  # else "value"


class Guarded:
    """An upstream that accepts only the current key (which the test rotates)."""

    def __init__(self, scheme: str, key: str) -> None:
        self.key = key
        self.presented = SCHEMES[scheme][1]
        self.expected = EXPECTED[scheme]

    def __call__(self, request: ReceivedRequest) -> Respond:
        if self.presented(request) == self.expected(self.key):
            return Respond(json={"ok": True})
        return Respond(401, json={"error": "invalid key"})


@pytest.fixture
def audit() -> Iterator[list[tuple[str, str, dict[str, Any]]]]:
    seen: list[tuple[str, str, dict[str, Any]]] = []

    def listener(event: str, upstream: str, fields: dict[str, Any]) -> None:
        if event in ("secret_reload", "token", "auth_rejected"):
            seen.append((event, upstream, fields))

    events.listen(listener)
    yield seen
    events.unlisten(listener)


def upstream_with_file(url: str, scheme: str, path: Path, **extra: Any) -> RestUpstream:
    auth = dict(SCHEMES[scheme][0])
    auth[SECRET_KEY.get(scheme, "value")] = f"file:{path}"
    config = UpstreamConfig.model_validate({"kind": "rest", "url": url, "auth": auth, **extra})
    return RestUpstream("svc", config)


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
async def test_rotated_file_secret_is_picked_up_on_401(
    chaos: ChaosUpstream, tmp_path: Path, scheme: str, audit: list[Any]
) -> None:
    secret = tmp_path / "key"
    secret.write_text(OLD + "\n")
    guard = Guarded(scheme, OLD)
    chaos.route("GET /items", Call(guard))
    svc = upstream_with_file(chaos.url, scheme, secret)
    assert await svc.get("/items") == {"ok": True}
    # The key is rotated: the upstream now wants the new one, and the file has it.
    guard.key = NEW
    secret.write_text(NEW + "\n")
    assert await svc.get("/items") == {"ok": True}
    assert await svc.get("/items") == {"ok": True}  # the new key is used from now on
    await svc.aclose()
    presented = [SCHEMES[scheme][1](r) for r in chaos.requests]
    old, new = EXPECTED[scheme](OLD), EXPECTED[scheme](NEW)
    assert presented == [old, old, new, new]
    key = f"auth.{SECRET_KEY.get(scheme, 'value')}"
    assert audit == [
        ("auth_rejected", "svc", {"status": 401, "method": "GET", "principal": None}),
        ("secret_reload", "svc", {"key": key, "outcome": "changed", "principal": None}),
    ]


async def test_a_401_the_file_does_not_fix_is_one_attempt_and_auth_failed(
    chaos: ChaosUpstream, tmp_path: Path, audit: list[Any]
) -> None:
    secret = tmp_path / "key"
    secret.write_text(OLD)
    chaos.route("GET /items", Respond(401, json={}))
    svc = upstream_with_file(chaos.url, "bearer", secret)
    with pytest.raises(UpstreamAuthError) as caught:
        await svc.get("/items")
    secret.write_text("")  # an emptied file (a rotation half done) keeps the value we have
    with pytest.raises(UpstreamAuthError):
        await svc.get("/items")
    await svc.aclose()
    assert caught.value.code == "UPSTREAM_AUTH_FAILED" and caught.value.status == 401
    assert chaos.count("GET /items") == 2  # one attempt per call, never a retry loop
    outcomes = [fields["outcome"] for event, _, fields in audit if event == "secret_reload"]
    assert outcomes == ["unchanged", "failed"]
    assert [r.headers["authorization"] for r in chaos.requests] == [f"Bearer {OLD}"] * 2


async def test_concurrent_rejections_share_one_reread(
    chaos: ChaosUpstream, tmp_path: Path, audit: list[Any]
) -> None:
    secret = tmp_path / "key"
    secret.write_text(OLD)
    guard = Guarded("bearer", NEW)  # already rotated upstream
    chaos.route("GET /items", Call(guard))
    svc = upstream_with_file(chaos.url, "bearer", secret)
    secret.write_text(NEW)
    results = await asyncio.gather(*(svc.get("/items", params={"n": i}) for i in range(10)))
    await svc.aclose()
    assert results == [{"ok": True}] * 10
    assert chaos.count("GET /items") == 20  # each: the old key refused, then the new one
    assert [e for e, _, _ in audit].count("secret_reload") == 1


async def test_rotated_oauth2_client_secret_is_read_again_when_refused(
    chaos: ChaosUpstream, tmp_path: Path, audit: list[Any]
) -> None:
    secret = tmp_path / "client_secret"
    secret.write_text(OLD)
    current = {"secret": OLD}

    def token_endpoint(request: ReceivedRequest) -> Respond:
        if request.headers.get("authorization") != basic("gw", current["secret"]):
            return Respond(401, json={"error": "invalid_client"})
        return Respond(json={"access_token": f"at-{current['secret']}", "expires_in": 60})

    chaos.route("POST /oauth/token", Call(token_endpoint))
    chaos.route("GET /items", Respond(json={"ok": True}))
    auth = {
        "type": "oauth2_client_credentials",
        "token_url": f"{chaos.url}/oauth/token",
        "client_id": "gw",
        "client_secret": f"file:{secret}",
    }
    config = UpstreamConfig.model_validate({"kind": "rest", "url": chaos.url, "auth": auth})
    svc = RestUpstream("payments", config)
    now = [1000.0]
    assert config.auth is not None and config.auth.type == "oauth2_client_credentials"
    svc.auth = OAuth2ClientCredentialsAuth("payments", config.auth, clock=lambda: now[0])
    await svc.get("/items")
    current["secret"] = NEW  # the client secret is rotated at the authorization server
    secret.write_text(NEW)
    now[0] += 60  # and the token expires
    await svc.get("/items")
    await svc.aclose()
    assert chaos.count("POST /oauth/token") == 3  # old: ok; old: refused; new: ok
    assert chaos.requests[-1].headers["authorization"] == f"Bearer at-{NEW}"
    tokens = [(f["trigger"], f["outcome"]) for e, _, f in audit if e == "token"]
    assert tokens == [("missing", "fetched"), ("expiring", "failed"), ("expiring", "fetched")]
    reloads = [(f["key"], f["outcome"]) for e, _, f in audit if e == "secret_reload"]
    assert reloads == [("auth.client_secret", "changed")]


@strawberry.type
class Query:
    @strawberry.field
    async def items(self, info: strawberry.Info[Context, None]) -> str:
        await info.context.upstreams.rest("crm").get("/crm")
        await info.context.upstreams.rest("payments").get("/pay")
        return "ok"


def test_audit_log_records_credential_events_and_never_a_secret(
    chaos: ChaosUpstream, tmp_path: Path, restore_logging: None
) -> None:
    crm_key, client_secret = tmp_path / "crm", tmp_path / "client_secret"
    crm_key.write_text(OLD)
    client_secret.write_text("cs-5e1f0a77")
    guard = Guarded("api_key_header", OLD)
    chaos.route("GET /crm", Call(guard))
    chaos.route("GET /pay", Respond(json={}))
    chaos.route(
        "POST /oauth/token", Respond(json={"access_token": "at-0c6f2e9a41", "expires_in": 60})
    )
    config = parse_config(
        {
            "schema": "tests:unused",
            "server": {"log_format": "json"},
            "upstreams": {
                "crm": {
                    "kind": "rest",
                    "url": chaos.url,
                    "auth": {"type": "api_key", "header": "X-Api-Key", "value": f"file:{crm_key}"},
                },
                "payments": {
                    "kind": "rest",
                    "url": chaos.url,
                    "auth": {
                        "type": "oauth2_client_credentials",
                        "token_url": f"{chaos.url}/oauth/token",
                        "client_id": "gw",
                        "client_secret": f"file:{client_secret}",
                    },
                },
            },
        }
    )
    stream = io.StringIO()
    configure_logging(config, "info", stream=stream)
    with ServerThread(create_app(config, GatewaySchema(query=Query))) as server:
        url = f"{server.url}/graphql"
        assert httpx.post(url, json={"query": "{ items }"}).json() == {"data": {"items": "ok"}}
        guard.key = NEW
        crm_key.write_text(NEW)  # rotated: the redaction filter has never heard of this value
        assert httpx.post(url, json={"query": "{ items }"}).json() == {"data": {"items": "ok"}}
    text = stream.getvalue()
    for secret in (OLD, NEW, "cs-5e1f0a77", "at-0c6f2e9a41"):
        assert secret not in text
    audit = [
        {k: v for k, v in line.items() if k not in ("time", "request_id")}
        for line in map(json.loads, text.splitlines())
        if line["logger"] == "graftql.audit"
    ]
    assert audit == [
        {
            "level": "info",
            "logger": "graftql.audit",
            "message": "token payments fetched trigger=missing",
            "audit": "token",
            "upstream": "payments",
            "outcome": "fetched",
            "principal": None,
            "trigger": "missing",
        },
        {
            "level": "warning",
            "logger": "graftql.audit",
            "message": "auth_rejected crm rejected status=401 method=GET",
            "audit": "auth_rejected",
            "upstream": "crm",
            "outcome": "rejected",
            "principal": None,
            "status": 401,
            "method": "GET",
        },
        {
            "level": "info",
            "logger": "graftql.audit",
            "message": "secret_reload crm changed key=auth.value",
            "audit": "secret_reload",
            "upstream": "crm",
            "outcome": "changed",
            "principal": None,
            "key": "auth.value",
        },
    ]


async def test_rotated_static_header_secret_is_picked_up_on_401(
    chaos: ChaosUpstream, tmp_path: Path, audit: list[Any]
) -> None:
    secret = tmp_path / "header"
    secret.write_text(OLD)
    guard = Guarded("api_key_header", OLD)
    chaos.route("GET /items", Call(guard))
    config = UpstreamConfig.model_validate(
        {"kind": "rest", "url": chaos.url, "headers": {"X-Api-Key": f"file:{secret}"}}
    )
    svc = RestUpstream("svc", config)
    assert await svc.get("/items") == {"ok": True}
    guard.key = NEW
    secret.write_text(NEW)
    assert await svc.get("/items") == {"ok": True}
    assert await svc.get("/items", params={"again": 1}) == {"ok": True}
    await svc.aclose()
    assert [r.headers["x-api-key"] for r in chaos.requests] == [OLD, OLD, NEW, NEW]
    reloads = [(f["key"], f["outcome"]) for e, _, f in audit if e == "secret_reload"]
    assert reloads == [("headers.X-Api-Key", "changed")]
