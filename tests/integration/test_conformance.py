"""GraphQL-over-HTTP conformance: graphql-http's server audits against a running gateway.

The audits are graphql-http's own (``serverAudits`` from its JavaScript API, pinned in
tests/conformance/package-lock.json), run on Node 20 with ``node:test`` by
tests/conformance/audit.mjs, against a gateway in development and in production mode
(introspection off). Every audit must pass: no error (a MUST), no warning (a SHOULD) and no
notice (a MAY) either. Node 20 and npm are required; ``npm ci`` runs here when
tests/conformance/node_modules is missing or stale, so a clean clone needs nothing else.

Some audits accept any 4xx where the gateway promises an exact status; those are checked
here as well."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import strawberry

from graftql import GatewaySchema
from graftql.config import parse_config
from graftql.demo.servers import ServerThread
from graftql.server import create_app
from integration.node_packages import node_with_packages

CONFORMANCE = Path(__file__).resolve().parents[1] / "conformance"
AUDIT_TIMEOUT = 120.0  # seconds for all audits; they take about 2 s
GQL = "application/graphql-response+json"
JSON = "application/json"
EXECUTED: list[str] = []


@strawberry.type
class Query:
    @strawberry.field
    def hello(self, name: str = "world") -> str:
        EXECUTED.append("hello")
        return f"hello {name}"

    @strawberry.field
    def echo(self, id: strawberry.ID) -> strawberry.ID:
        """Puts ID in the schema: the audits' variable-coercion request declares ``$id: ID!``."""
        return id


@strawberry.type
class Mutation:
    @strawberry.mutation
    def touch(self) -> bool:
        EXECUTED.append("touch")
        return True


@pytest.fixture(scope="module")
def node() -> str:
    """The ``node`` executable, with graphql-http installed from the lockfile."""
    return node_with_packages(CONFORMANCE, "the GraphQL-over-HTTP conformance audits")


@pytest.fixture(scope="module", params=["development", "production"])
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    config = parse_config({"schema": "tests:unused", "server": {"env": request.param}})
    assert config.server.introspection_enabled is (request.param == "development")
    schema = GatewaySchema(query=Query, mutation=Mutation)
    with ServerThread(create_app(config, schema)) as server:
        yield f"{server.url}/graphql"


@pytest.fixture(autouse=True)
def _forget() -> None:
    EXECUTED.clear()


def _describe(result: dict[str, Any]) -> str:
    return (
        f"- {result['id']} {result['name']}: {result['status']}: {result['reason']}\n"
        f"  request:  {json.dumps(result['request'], ensure_ascii=False)}\n"
        f"  response: {json.dumps(result['response'], ensure_ascii=False)}"
    )


def test_graphql_http_server_audits_all_pass(node: str, url: str, tmp_path: Path) -> None:
    report = tmp_path / "audits.jsonl"
    try:
        run = subprocess.run(
            [node, "audit.mjs", url, "--report", str(report)],
            cwd=CONFORMANCE,
            capture_output=True,
            text=True,
            timeout=AUDIT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        pytest.fail(
            f"the audits did not finish in {AUDIT_TIMEOUT} s:\n{expired.stdout!r}", pytrace=False
        )
    output = f"exit status {run.returncode}\nstdout:\n{run.stdout[-4000:]}\nstderr:\n{run.stderr}"
    lines = report.read_text().splitlines() if report.exists() else []
    assert lines, f"audit.mjs wrote no report\n{output}"
    audits = json.loads(lines[0])["audits"]
    results = {r["id"]: r for r in map(json.loads, lines[1:])}
    assert audits, f"graphql-http listed no audits\n{output}"
    missing = [f"{a['id']} {a['name']}" for a in audits if a["id"] not in results]
    assert not missing, f"audits without a result: {missing}\n{output}"

    failed = [r for r in results.values() if r["status"] != "ok"]
    if failed:
        counts = Counter(r["status"] for r in results.values())
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        pytest.fail(
            f"{len(failed)} of {len(results)} graphql-http audits did not pass ({summary}):\n"
            + "\n".join(map(_describe, failed)),
            pytrace=False,
        )
    assert run.returncode == 0, output


@pytest.mark.parametrize("accept", [GQL, JSON])
def test_a_mutation_over_get_is_exactly_405_allow_post(url: str, accept: str) -> None:
    # The audit (9C48) accepts any 4xx.
    for query in ("mutation { __typename }", "mutation { touch }"):
        response = httpx.get(url, params={"query": query}, headers={"accept": accept})
        assert response.status_code == 405, response.text
        assert response.headers["allow"] == "POST"
        assert response.json()["errors"], response.text
    assert EXECUTED == []


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("accept", ["application/xml", "text/plain, application/xml;q=0.9"])
def test_an_accept_allowing_neither_json_type_is_exactly_406(
    url: str, method: str, accept: str
) -> None:
    query = "query Hello($name: String!) { hello(name: $name) }"
    variables = {"name": "audit"}
    if method == "GET":
        params = {"query": query, "variables": json.dumps(variables)}
        response = httpx.get(url, params=params, headers={"accept": accept})
    else:
        body = {"query": query, "variables": variables}
        response = httpx.post(url, json=body, headers={"accept": accept})
    assert response.status_code == 406, response.text
    assert EXECUTED == []
