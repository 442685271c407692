"""`graftql status --url`: a running gateway's /readyz as a table, and the exit status a script
or a person can act on."""

from __future__ import annotations

import httpx
import strawberry

from graftql import Context, GatewaySchema
from graftql.testing import ChaosUpstream, Respond
from integration.helpers import free_port_block, run, serve


@strawberry.type
class Query:
    @strawberry.field
    async def item(self, info: strawberry.Info[Context, None]) -> str | None:
        return str(await info.context.upstreams.rest("crm").get("/item"))


SCHEMA = GatewaySchema(query=Query)


def test_not_ready_prints_every_upstream_and_exits_1(chaos: ChaosUpstream) -> None:
    chaos.route("GET /", Respond(json={}))
    quota = {"ratelimit-remaining": "7", "ratelimit-limit": "10"}
    chaos.route("GET /item", Respond(json={"ok": 1}, headers=quota))
    dead = f"http://127.0.0.1:{free_port_block(1)}"
    upstreams = {
        "crm": {"kind": "rest", "url": chaos.url},
        "billing": {"kind": "rest", "url": dead, "breaker": {"enabled": False}},
    }
    with serve(SCHEMA, upstreams=upstreams) as gateway:
        httpx.post(f"{gateway.url}/graphql", json={"query": "{ item }"}).raise_for_status()
        result = run("status", "--url", gateway.url)
    assert result.returncode == 1, result
    lines = result.stdout.splitlines()
    assert lines[0] == f"graftql at {gateway.url}: NOT READY"
    header, *rows = lines[2:5]
    assert [h.strip() for h in header.split("  ") if h.strip()] == [
        "UPSTREAM", "STATUS", "REQUIRED", "KIND", "BREAKER", "LATENCY", "QUOTA", "TOKEN",
        "LAST OK", "LAST FAILURE", "DETAIL",
    ]  # fmt: skip
    crm = next(row for row in rows if row.startswith("crm "))
    billing = next(row for row in rows if row.startswith("billing "))
    assert crm.split()[:5] == ["crm", "up", "yes", "rest", "closed"]
    assert "7/10" in crm and crm.rstrip().endswith("HTTP 200")
    assert billing.split()[:5] == ["billing", "down", "yes", "rest", "disabled"]
    assert billing.rstrip().endswith("connection refused")
    assert lines[-1] == "not ready: required upstream(s) down: billing"


def test_ready_exits_0(chaos: ChaosUpstream) -> None:
    chaos.route("GET /", Respond(json={}))
    dead = f"http://127.0.0.1:{free_port_block(1)}"
    upstreams = {
        "crm": {"kind": "rest", "url": chaos.url},
        "billing": {"kind": "rest", "url": dead, "required": False},
    }
    with serve(SCHEMA, upstreams=upstreams) as gateway:
        result = run("status", "--url", gateway.url + "/")
    assert result.returncode == 0, result
    assert result.stdout.splitlines()[0] == f"graftql at {gateway.url}/: READY"
    assert "billing" in result.stdout and "not ready" not in result.stdout


def test_no_usable_answer_exits_3(chaos: ChaosUpstream) -> None:
    dead = f"http://127.0.0.1:{free_port_block(1)}"
    result = run("status", "--url", dead)
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr == f"graftql: {dead}/readyz: cannot connect (ConnectError)\n"
    # Something answers, but it is not a gateway's /readyz.
    chaos.route("GET /readyz", Respond(200, json=["no"]))
    result = run("status", "--url", chaos.url)
    assert result.returncode == 3
    assert result.stderr == (
        f"graftql: {chaos.url}/readyz: HTTP 200, not a graftql readiness answer\n"
    )
