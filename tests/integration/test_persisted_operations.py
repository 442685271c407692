"""Persisted operations over real HTTP and WebSocket: APQ's hash negotiation, and the
trusted-documents lock that runs nothing but the manifest's operations."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import strawberry

from graftql import GatewaySchema
from graftql.config import parse_config
from graftql.demo.servers import ServerThread
from graftql.errors import ConfigError
from graftql.server import create_app
from integration import helpers
from integration.helpers import ws_connected

GQL = "application/graphql-response+json"
RAN: list[str] = []


@strawberry.type
class Query:
    @strawberry.field
    def hello(self, name: str = "world") -> str:
        RAN.append(name)
        return f"hello {name}"


@strawberry.type
class Mutation:
    @strawberry.mutation
    def reset(self) -> bool:
        RAN.append("reset")
        return True


HELLO = "query Hello($name: String!) { hello(name: $name) }"
RESET = "mutation Reset { reset }"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apq(digest: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


def serve(**persisted: Any) -> ServerThread:
    schema = GatewaySchema(query=Query, mutation=Mutation)
    return helpers.serve(schema, persisted_operations=persisted)


@pytest.fixture(autouse=True)
def _forget() -> None:
    RAN.clear()


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "manifest.json"
    operations = [
        {"id": sha(HELLO), "body": HELLO, "name": "Hello", "type": "query"},
        {"id": "reset-v1", "body": RESET, "name": "Reset", "type": "mutation"},
    ]
    path.write_text(
        json.dumps(
            {"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations}
        )
    )
    return path


@pytest.fixture
def open_gateway() -> Iterator[str]:
    with serve() as server:
        yield f"{server.url}/graphql"


def post(url: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(url, json=body, headers={"accept": GQL})


def test_apq_round_trip(open_gateway: str) -> None:
    url = open_gateway
    variables = {"name": "apq"}
    first = post(url, {"extensions": apq(sha(HELLO)), "variables": variables})
    assert first.status_code == 400
    assert first.json() == {
        "errors": [
            {
                "message": "PersistedQueryNotFound",
                "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
            }
        ]
    }
    registered = post(url, {"query": HELLO, "extensions": apq(sha(HELLO)), "variables": variables})
    assert registered.json() == {"data": {"hello": "hello apq"}}
    # From now on the hash alone is enough, by POST and by GET (cacheable URLs).
    by_hash = post(url, {"extensions": apq(sha(HELLO)), "variables": {"name": "again"}})
    assert by_hash.json() == {"data": {"hello": "hello again"}}
    by_get = httpx.get(
        url,
        params={
            "extensions": json.dumps(apq(sha(HELLO))),
            "variables": json.dumps({"name": "get"}),
        },
    )
    assert by_get.json() == {"data": {"hello": "hello get"}}
    assert RAN == ["apq", "again", "get"]


def test_a_hash_that_does_not_match_the_query_is_refused(open_gateway: str) -> None:
    response = post(open_gateway, {"query": HELLO, "extensions": apq("0" * 64)})
    assert response.status_code == 400
    assert response.json()["errors"][0] == {
        "message": "provided sha does not match query",
        "extensions": {"code": "PERSISTED_QUERY_HASH_MISMATCH"},
    }
    assert RAN == []


@pytest.mark.parametrize(
    ("persisted", "message"),
    [
        ({"version": 2, "sha256Hash": "ab"}, "Unsupported persisted query version"),
        ({"version": 1}, "persistedQuery.sha256Hash must be a string"),
        ("yes", "Unsupported persisted query version"),
    ],
)
def test_malformed_persisted_query_extensions(
    open_gateway: str, persisted: Any, message: str
) -> None:
    response = post(open_gateway, {"extensions": {"persistedQuery": persisted}})
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == message


def test_apq_off_says_so() -> None:
    with serve(apq=False) as server:
        response = post(f"{server.url}/graphql", {"extensions": apq(sha(HELLO))})
    assert response.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_SUPPORTED"


def test_the_apq_cache_is_bounded() -> None:
    with serve(apq_cache_size=2) as server:
        url = f"{server.url}/graphql"
        documents = [f"query Q{i} {{ hello }}" for i in range(3)]
        for document in documents:
            assert "data" in post(url, {"query": document, "extensions": apq(sha(document))}).json()
        oldest = post(url, {"extensions": apq(sha(documents[0]))}).json()
        newest = post(url, {"extensions": apq(sha(documents[2]))}).json()
    assert oldest["errors"][0]["message"] == "PersistedQueryNotFound"
    assert newest == {"data": {"hello": "hello world"}}


def test_manifest_operations_run_by_id_or_hash_and_nothing_else_when_locked(
    manifest: Path,
) -> None:
    with serve(manifest=str(manifest), only_trusted=True) as server:
        url = f"{server.url}/graphql"
        by_document_id = post(
            url, {"documentId": f"sha256:{sha(HELLO)}", "variables": {"name": "id"}}
        )
        assert by_document_id.json() == {"data": {"hello": "hello id"}}
        by_custom_id = post(url, {"documentId": "reset-v1"})
        assert by_custom_id.json() == {"data": {"reset": True}}
        by_apq_hash = post(url, {"extensions": apq(sha(HELLO)), "variables": {"name": "hash"}})
        assert by_apq_hash.json() == {"data": {"hello": "hello hash"}}
        # The text of a trusted document may be sent as is, too.
        as_text = post(url, {"query": HELLO, "variables": {"name": "text"}})
        assert as_text.json() == {"data": {"hello": "hello text"}}
        RAN.clear()
        for body in (
            {"query": "{ hello }"},
            {"query": "{ hello }", "extensions": apq(sha("{ hello }"))},
            {"extensions": apq(sha("{ hello }"))},
        ):
            refused = post(url, body)
            assert refused.status_code == 400
            assert refused.json()["errors"][0]["extensions"]["code"] == "OPERATION_NOT_TRUSTED"
        unknown = post(url, {"documentId": "sha256:" + "f" * 64})
        assert unknown.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
        assert RAN == []


async def test_the_lock_holds_over_websocket(manifest: Path) -> None:
    with serve(manifest=str(manifest), only_trusted=True) as server:
        async with ws_connected(server.url) as ws:
            await ws.send(
                json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "{ hello }"}})
            )
            refused = json.loads(await ws.recv())
            payload = {"query": HELLO, "variables": {"name": "ws"}}
            await ws.send(json.dumps({"id": "2", "type": "subscribe", "payload": payload}))
            allowed = json.loads(await ws.recv())
    assert refused["type"] == "error"
    assert refused["payload"][0]["extensions"] == {"code": "OPERATION_NOT_TRUSTED"}
    assert allowed == {"id": "2", "type": "next", "payload": {"data": {"hello": "hello ws"}}}
    assert RAN == ["ws"]


def test_documentid_and_query_together_are_refused(manifest: Path) -> None:
    with serve(manifest=str(manifest)) as server:
        response = post(f"{server.url}/graphql", {"documentId": "reset-v1", "query": RESET})
    assert (
        response.json()["errors"][0]["message"] == "send either 'documentId' or 'query', not both"
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "no such file"),
        ("{not json", "not valid JSON"),
        ("[]", "expected an apollo-persisted-query-manifest or an id -> document map"),
        ('{"a": ""}', "entry 0 needs a non-empty string id and document"),
        ("{}", "the manifest lists no operations"),
        (
            '{"format": "apollo-persisted-query-manifest", "operations": 1}',
            "'operations' must be a list",
        ),
    ],
)
def test_a_bad_manifest_is_a_config_error(tmp_path: Path, content: str | None, reason: str) -> None:
    path = tmp_path / "manifest.json"
    if content is not None:
        path.write_text(content)
    config = parse_config(
        {"schema": "tests:unused", "server": {"persisted_operations": {"manifest": str(path)}}}
    )
    with pytest.raises(ConfigError) as caught:
        create_app(config, GatewaySchema(query=Query))
    [(key, message)] = caught.value.errors
    assert key == "server.persisted_operations.manifest"
    assert message.startswith(str(path)) and reason in message


def test_only_trusted_needs_a_manifest() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"schema": "m:s", "server": {"persisted_operations": {"only_trusted": True}}})
    assert caught.value.errors == [
        ("server.persisted_operations", "'only_trusted' needs a 'manifest'")
    ]


def test_check_reads_the_manifest(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "schema: graftql.demo.schema:schema\n"
        "server: {persisted_operations: {manifest: missing.json, only_trusted: true}}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "graftql.cli", "check", str(config)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"graftql: {config}: server.persisted_operations.manifest: missing.json: no such file"
    )
