"""/readyz detail over real servers: each upstream's last success and failure, the OAuth2 token's
state (a token endpoint that fails, one that cannot be reached), the event bus and the webhook
inbox (SQLite that cannot be opened, Redis cut mid-run) — and `graftql status` showing them."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import strawberry

from graftql import Context, GatewaySchema
from graftql.demo.servers import ServerThread
from graftql.server import create_app
from graftql.testing import ChaosUpstream, Respond
from integration import helpers
from integration.events_helpers import gateway_config, source
from integration.helpers import (
    RedisProxy,
    free_port_block,
    require_postgres,
    require_redis,
    run,
    unique_prefix,
)


@strawberry.type
class Query:
    @strawberry.field
    async def item(self, info: strawberry.Info[Context, None], i: int = 0) -> str | None:
        params = {"i": i} if i else None
        return str(await info.context.upstreams.rest("svc").get("/item", params=params))


SCHEMA = GatewaySchema(query=Query)


def serve(upstream: dict[str, Any], environ: dict[str, str] | None = None) -> ServerThread:
    return helpers.serve(SCHEMA, upstreams={"svc": upstream}, environ=environ or {})


def ready(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/readyz")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def item(url: str, i: int) -> dict[str, Any]:
    response = httpx.post(f"{url}/graphql", json={"query": f"{{ item(i: {i}) }}"}, timeout=30)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def recent(entry: dict[str, Any]) -> None:
    """A time within the last minute, said twice: as ISO 8601 UTC and as seconds ago."""
    at = datetime.fromisoformat(entry["at"].replace("Z", "+00:00"))
    assert entry["at"].endswith("Z")
    assert abs((datetime.now(UTC) - at).total_seconds() - entry["seconds_ago"]) < 5
    assert 0 <= entry["seconds_ago"] < 60


def test_last_success_and_last_failure_with_its_code(chaos: ChaosUpstream) -> None:
    chaos.route("GET /", Respond(json={}))  # the readiness probe
    chaos.route("GET /item").queue(
        Respond(json={"ok": 1}),
        Respond(503, json={}),
    )
    breaker = {"minimum_calls": 1, "failure_rate": 0.5, "open_for": 600}
    upstream = {"kind": "rest", "url": chaos.url, "retry": {"attempts": 1}, "breaker": breaker}
    with serve(upstream) as server:
        svc = ready(server.url)["upstreams"]["svc"]
        assert svc["last_success"] is None and svc["last_failure"] is None
        assert "token" not in svc  # no OAuth2 credentials

        assert item(server.url, 1) == {"data": {"item": "{'ok': 1}"}}
        svc = ready(server.url)["upstreams"]["svc"]
        recent(svc["last_success"])
        assert svc["last_failure"] is None
        succeeded = svc["last_success"]["at"]

        failed = item(server.url, 2)
        assert failed["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
        svc = ready(server.url)["upstreams"]["svc"]
        assert svc["last_success"]["at"] == succeeded
        assert svc["last_failure"]["code"] == "UPSTREAM_UNAVAILABLE"
        recent(svc["last_failure"])
        assert svc["breaker"] == "open"

        # The open breaker refuses without sending: the upstream's last failure stays the 503.
        refused = item(server.url, 3)
        assert refused["errors"][0]["extensions"]["code"] == "CIRCUIT_OPEN"
        svc = ready(server.url)["upstreams"]["svc"]
        assert svc["last_failure"]["code"] == "UPSTREAM_UNAVAILABLE"
        assert svc["last_success"]["at"] == succeeded
        assert chaos.count("GET /item") == 2

        status = run("status", "--url", server.url)
    assert status.returncode == 0, status
    header, row = status.stdout.splitlines()[2:4]
    assert header.split("  ")[:1] == ["UPSTREAM"]
    for heading in ("TOKEN", "LAST OK", "LAST FAILURE"):
        assert heading in header
    last_failure = row[header.index("LAST FAILURE") :]
    assert last_failure.split()[1:3] == ["ago", "UPSTREAM_UNAVAILABLE"]
    assert row[header.index("LAST OK") :].split()[1] == "ago"
    assert row[header.index("TOKEN") :].split()[0] == "-"


def test_a_404_is_a_success(chaos: ChaosUpstream) -> None:
    chaos.route("GET /", Respond(json={}))
    chaos.route("GET /item", Respond(404, json={}))
    with serve({"kind": "rest", "url": chaos.url}) as server:
        # An answer: "no such resource" is the caller's problem, not the upstream failing.
        assert item(server.url, 1)["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        svc = ready(server.url)["upstreams"]["svc"]
    recent(svc["last_success"])
    assert svc["last_failure"] is None


def oauth(token_url: str) -> dict[str, Any]:
    return {
        "type": "oauth2_client_credentials",
        "token_url": token_url,
        "client_id": "gateway",
        "client_secret": "${READYZ_CLIENT_SECRET}",
    }


SECRET = {"READYZ_CLIENT_SECRET": "client-secret-4f1e9c"}


def test_token_missing_valid_then_failing_when_the_token_endpoint_refuses(
    chaos: ChaosUpstream,
) -> None:
    chaos.route("GET /", Respond(json={}))
    chaos.route("POST /oauth/token").queue(
        Respond(json={"access_token": "token-value-8a7b", "expires_in": 3600}),
        Respond(401, json={"error": "invalid_client"}),
    )
    # The token works once; then the API answers 401, the token endpoint refuses a new one.
    chaos.route("GET /item").queue(Respond(json={}), Respond(401, json={}))
    upstream = {"kind": "rest", "url": chaos.url, "auth": oauth(f"{chaos.url}/oauth/token")}
    with serve(upstream, SECRET) as server:
        assert ready(server.url)["upstreams"]["svc"]["token"] == {"state": "missing"}

        assert item(server.url, 1) == {"data": {"item": "{}"}}
        token = ready(server.url)["upstreams"]["svc"]["token"]
        assert token["state"] == "valid" and 3500 < token["expires_in_s"] <= 3600
        assert set(token) == {"state", "expires_in_s"}

        failed = item(server.url, 2)
        assert failed["errors"][0]["extensions"]["code"] == "UPSTREAM_AUTH_FAILED"
        response = httpx.get(f"{server.url}/readyz")
        svc = response.json()["upstreams"]["svc"]
        assert svc["token"]["state"] == "failing" and svc["token"]["error"] == "HTTP 401"
        assert 0 <= svc["token"]["since_s"] < 60
        assert svc["last_failure"]["code"] == "UPSTREAM_AUTH_FAILED"
        # Neither the token, the client secret nor any URL is shown.
        for secret in ("token-value-8a7b", "client-secret-4f1e9c", "http", "127.0.0.1"):
            assert secret not in response.text

        status = run("status", "--url", server.url)
    assert status.returncode == 0, status
    assert "failing (HTTP 401)" in status.stdout
    assert "UPSTREAM_AUTH_FAILED" in status.stdout


def test_token_expired_once_its_lifetime_passed(chaos: ChaosUpstream) -> None:
    chaos.route("GET /", Respond(json={}))
    chaos.route("POST /oauth/token", Respond(json={"access_token": "short", "expires_in": 1}))
    chaos.route("GET /item", Respond(json={}))
    upstream = {"kind": "rest", "url": chaos.url, "auth": oauth(f"{chaos.url}/oauth/token")}
    with serve(upstream, SECRET) as server:
        assert item(server.url, 1) == {"data": {"item": "{}"}}
        # A one-second token: wait (bounded) until the gateway's clock has passed its expiry.
        deadline = time.monotonic() + 10
        while (token := ready(server.url)["upstreams"]["svc"]["token"])["state"] == "valid":
            assert token["expires_in_s"] <= 1
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert token == {"state": "expired"}
        # The next call fetches a new one.
        assert item(server.url, 2) == {"data": {"item": "{}"}}
        assert chaos.count("POST /oauth/token") == 2


def test_token_failing_when_the_token_endpoint_cannot_be_reached(chaos: ChaosUpstream) -> None:
    chaos.route("GET /", Respond(json={}))
    dead = f"http://127.0.0.1:{free_port_block(1)}/oauth/token"
    upstream = {"kind": "rest", "url": chaos.url, "auth": oauth(dead), "retry": {"attempts": 1}}
    with serve(upstream, SECRET) as server:
        failed = item(server.url, 1)
        assert failed["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
        svc = ready(server.url)["upstreams"]["svc"]
    assert svc["token"]["state"] == "failing" and svc["token"]["error"] == "no answer"
    assert svc["last_failure"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert svc["last_success"] is None
    assert chaos.count("GET /item") == 0


def test_bus_and_inbox_are_shown_and_an_unusable_inbox_store_keeps_the_gateway_ready(
    tmp_path: Path,
) -> None:
    config = gateway_config(str(tmp_path), {"payments": source()})
    with ServerThread(create_app(config, SCHEMA)) as server:
        body = ready(server.url)
    assert body["bus"] == {"backend": "memory", "status": "up"}
    assert body["inbox"] == {"backend": "sqlite", "status": "up", "backlog": 0}
    assert "realtime" not in body

    # The inbox's file is below a regular file: SQLite cannot open it.
    (tmp_path / "not-a-directory").write_text("")
    events = {"inbox": {"path": str(tmp_path / "not-a-directory" / "inbox.sqlite3")}}
    config = gateway_config(str(tmp_path), {"payments": source()}, events=events)
    with ServerThread(create_app(config, SCHEMA)) as server:
        response = httpx.get(f"{server.url}/readyz")
        status = run("status", "--url", server.url)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["inbox"] == {
        "backend": "sqlite",
        "status": "down",
        "detail": "the store could not be opened; webhooks are answered 503",
    }
    assert body["bus"]["status"] == "up"
    assert body["realtime"] == (
        "degraded, the gateway stays ready (queries and mutations do not need it): "
        "inbox down, webhooks are answered 503 (their senders retry)"
    )
    assert "not-a-directory" not in response.text  # no path
    assert status.returncode == 0, status
    assert "inbox: backend=sqlite, status=down" in status.stdout
    assert "realtime: degraded" in status.stdout


async def test_redis_bus_and_inbox_cut_mid_run_show_down_and_the_gateway_stays_ready(
    tmp_path: Path,
) -> None:
    require_redis()
    proxy = RedisProxy()
    await proxy.start()
    redis = {
        "url": f"redis://127.0.0.1:{proxy.port}/0",
        "key_prefix": unique_prefix(),
    }
    events = {"bus": {"backend": "redis"}, "inbox": {"backend": "redis"}}
    config = gateway_config(str(tmp_path), {"payments": source()}, events=events, redis=redis)
    # Started and stopped off this loop: the proxy runs on it and must answer meanwhile.
    server = await asyncio.to_thread(ServerThread(create_app(config, SCHEMA)).start)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            before = (await client.get("/readyz")).json()
            assert before["bus"] == {"backend": "redis", "reconnects": 0, "status": "up"}
            assert before["inbox"] == {"backend": "redis", "status": "up", "backlog": 0}
            await proxy.cut()
            response = await client.get("/readyz")
    finally:
        await asyncio.to_thread(server.stop)
    assert response.status_code == 200
    after = response.json()
    assert after["status"] == "ready"
    assert after["bus"]["status"] == "down" and after["bus"]["backend"] == "redis"
    assert after["bus"]["detail"].startswith("no answer (")
    assert after["inbox"]["status"] == "down"
    assert after["inbox"]["detail"].startswith("inbox store: cannot count the backlog (")
    assert after["realtime"].endswith(
        "bus down, subscriptions receive no events; "
        "inbox down, webhooks are answered 503 (their senders retry)"
    )
    for secret in ("redis://", str(proxy.port)):
        assert secret not in response.text


def test_a_postgres_inbox_that_cannot_connect_is_down_without_its_dsn(tmp_path: Path) -> None:
    require_postgres()  # the server is there; the database named below is not
    missing = f"graftql_missing_{uuid.uuid4().hex[:12]}"
    dsn = f"postgresql://postgres@127.0.0.1:5432/{missing}"
    events = {"inbox": {"backend": "postgres", "dsn": dsn}}
    config = gateway_config(str(tmp_path), {"payments": source()}, events=events)
    with ServerThread(create_app(config, SCHEMA)) as server:
        response = httpx.get(f"{server.url}/readyz")
    assert response.status_code == 200
    assert response.json()["inbox"] == {
        "backend": "postgres",
        "status": "down",
        "detail": "the store could not be opened; webhooks are answered 503",
    }
    assert missing not in response.text and "postgresql://" not in response.text
