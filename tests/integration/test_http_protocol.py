"""GraphQL over HTTP: media types, status codes, CSRF, body limits and batches, over a real
socket. Each refusal is checked for its exact status and code, and for not executing anything."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import strawberry

from graftql import Context, GatewaySchema
from graftql.config import parse_config
from graftql.demo.servers import ServerThread
from integration.helpers import serve

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
    def count(self, n: int) -> int:
        return n

    @strawberry.field
    def broken(self) -> str:
        raise ValueError("nope")

    @strawberry.field
    def cookie(self, info: strawberry.Info[Context, None]) -> str:
        assert info.context.response is not None
        info.context.response.headers["x-served-by"] = "graftql"
        return "set"


@strawberry.type
class Mutation:
    @strawberry.mutation
    def launch(self) -> str:
        EXECUTED.append("launch")
        return "launched"


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ticks(self) -> AsyncIterator[int]:
        yield 1


def start(**server: Any) -> ServerThread:
    schema = GatewaySchema(query=Query, mutation=Mutation, subscription=Subscription)
    return serve(schema, **server)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with start(max_request_bytes=2048) as server:
        yield f"{server.url}/graphql"


@pytest.fixture(autouse=True)
def _forget() -> None:
    EXECUTED.clear()


def post(url: str, body: Any, *, accept: str | None = GQL, **headers: str) -> httpx.Response:
    all_headers = {"content-type": JSON, **headers}
    if accept is not None:
        all_headers["accept"] = accept
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(url, content=content, headers=all_headers)


def code(response: httpx.Response) -> str:
    errors = response.json()["errors"]
    assert len(errors) == 1
    return str(errors[0]["extensions"]["code"])


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        (GQL, GQL),
        (JSON, JSON),
        (None, JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        (f"{JSON}, {GQL}", GQL),  # the same quality: the current media type
        (f"{GQL};q=0.5, {JSON}", JSON),
        (f"text/html, {GQL};q=0.9", GQL),
    ],
)
def test_the_response_media_type_follows_accept(url: str, accept: str | None, media: str) -> None:
    response = post(url, {"query": "{ hello }"}, accept=accept)
    assert response.status_code == 200
    assert response.headers["content-type"] == f"{media}; charset=utf-8"
    assert response.json() == {"data": {"hello": "hello world"}}


@pytest.mark.parametrize("accept", ["application/xml", "text/html", f"{GQL};q=0, {JSON};q=0"])
def test_an_accept_that_allows_neither_type_is_406(url: str, accept: str) -> None:
    response = post(url, {"query": "{ hello }"}, accept=accept)
    assert response.status_code == 406 and code(response) == "NOT_ACCEPTABLE"
    assert EXECUTED == []


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/graphql",
        "application/json; charset=latin-1",
    ],
)
def test_bodies_a_browser_sends_without_preflight_are_415(
    url: str, content_type: str | None
) -> None:
    headers = {"accept": GQL}
    if content_type is not None:
        headers["content-type"] = content_type
    response = httpx.post(url, content=json.dumps({"query": "{ hello }"}), headers=headers)
    assert response.status_code == 415 and code(response) == "UNSUPPORTED_MEDIA_TYPE"
    assert EXECUTED == []


def test_utf8_json_is_accepted_with_or_without_charset(url: str) -> None:
    body = {"query": 'query { hello(name: "Zoë ✓") }'}
    for content_type in (JSON, f"{JSON}; charset=utf-8", f"{JSON};charset=UTF-8"):
        response = post(url, body, **{"content-type": content_type})
        assert response.json() == {"data": {"hello": "hello Zoë ✓"}}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "the request body is empty"),
        (b"{not json", "the request body is not valid JSON"),
        (b'"{ hello }"', "the request must be a JSON object"),
        ({"qeury": "{ hello }"}, "the 'query' parameter is required"),
        ({"query": 1}, "the 'query' parameter must be a string"),
        ({"query": ["{ hello }"]}, "the 'query' parameter must be a string"),
        ({"query": "{ hello }", "variables": "x"}, "the 'variables' parameter must be an object"),
        ({"query": "{ hello }", "variables": []}, "the 'variables' parameter must be an object"),
        (
            {"query": "{ hello }", "operationName": 0},
            "the 'operationName' parameter must be a string",
        ),
        (
            {"query": "{ hello }", "extensions": False},
            "the 'extensions' parameter must be an object",
        ),
    ],
)
def test_malformed_requests_are_400_naming_the_problem(url: str, body: Any, message: str) -> None:
    for accept in (GQL, JSON, None):
        response = post(url, body, accept=accept)
        assert response.status_code == 400
        assert response.json() == {
            "errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]
        }
    assert EXECUTED == []


def test_null_optional_parameters_are_allowed(url: str) -> None:
    body = {"query": "{ hello }", "variables": None, "operationName": None, "extensions": None}
    assert post(url, body).json() == {"data": {"hello": "hello world"}}


@pytest.mark.parametrize(
    ("query", "variables", "message"),
    [
        ("{ hello", None, "Syntax Error: Expected Name, found <EOF>."),
        ("{ nope }", None, "Cannot query field 'nope' on type 'Query'."),
        (
            "query ($n: Int!) { count(n: $n) }",
            {"n": "many"},
            "Variable '$n' has invalid value: Int cannot represent non-integer value: 'many'",
        ),
    ],
)
def test_request_errors_are_400_without_data_under_graphql_response_json(
    url: str, query: str, variables: Any, message: str
) -> None:
    response = post(url, {"query": query, "variables": variables})
    assert response.status_code == 400
    body = response.json()
    assert "data" not in body
    assert body["errors"][0]["message"] == message
    # Legacy clients (application/json) get 200 for the same request, as the spec says.
    legacy = post(url, {"query": query, "variables": variables}, accept=JSON)
    assert legacy.status_code == 200 and legacy.json() == body


def test_field_errors_are_200_with_data(url: str) -> None:
    response = post(url, {"query": "{ hello broken }"})
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None  # broken is non-null: the error nulls the whole data
    assert body["errors"][0]["path"] == ["broken"]


def test_an_unknown_operation_name_is_a_request_error(url: str) -> None:
    response = post(url, {"query": "query A { hello }", "operationName": "B"})
    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": 'Unknown operation named "B".'}]}


def test_get_runs_queries(url: str) -> None:
    response = httpx.get(
        url, params={"query": "query ($n: Int!) { count(n: $n) }", "variables": '{"n": 3}'}
    )
    assert response.status_code == 200 and response.json() == {"data": {"count": 3}}


def test_a_mutation_over_get_is_405_and_never_runs(url: str) -> None:
    response = httpx.get(url, params={"query": "mutation { launch }"}, headers={"accept": GQL})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert code(response) == "METHOD_NOT_ALLOWED"
    assert EXECUTED == []
    assert post(url, {"query": "mutation { launch }"}).json() == {"data": {"launch": "launched"}}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"query": "{ hello }", "variables": "{nope"},
            "the 'variables' parameter is not valid JSON",
        ),
        (
            [("query", "{ hello }"), ("query", "{ hello }")],
            "the 'query' parameter is given more than once",
        ),
        (
            {"query": "{ hello }", "extensions": "[1]"},
            "the 'extensions' parameter must be an object",
        ),
    ],
)
def test_bad_get_parameters_are_400(url: str, params: Any, message: str) -> None:
    response = httpx.get(url, params=params)
    assert response.status_code == 400 and response.json()["errors"][0]["message"] == message


def test_other_methods_are_405(url: str) -> None:
    response = httpx.put(url, json={"query": "{ hello }"})
    assert response.status_code == 405 and response.headers["allow"] == "GET, POST"


def test_headers_a_resolver_sets_reach_the_client(url: str) -> None:
    response = post(url, {"query": "{ cookie }"})
    assert response.headers["x-served-by"] == "graftql"


def test_a_body_over_the_limit_is_413_declared_or_streamed(url: str) -> None:
    big = {"query": "{ hello }", "variables": {"pad": "x" * 4096}}
    assert post(url, big).status_code == 413
    # Without a Content-Length (chunked), the limit holds while reading.
    chunks = iter([json.dumps(big).encode()[i : i + 500] for i in range(0, 4200, 500)])
    response = httpx.post(url, content=chunks, headers={"content-type": JSON, "accept": GQL})
    assert response.status_code == 413 and code(response) == "REQUEST_TOO_LARGE"


def test_compressed_bodies_are_decoded_and_a_bomb_stops_at_the_limit(url: str) -> None:
    body = json.dumps({"query": "{ hello }"}).encode()
    for encoding, packed in (("gzip", gzip.compress(body)), ("deflate", zlib.compress(body))):
        response = post(url, packed, **{"content-encoding": encoding})
        assert response.json() == {"data": {"hello": "hello world"}}, encoding
    bomb = gzip.compress(b'{"query": "{ hello }", "pad": "' + b" " * 50_000_000 + b'"}')
    assert len(bomb) < 100_000
    response = post(url, bomb, **{"content-encoding": "gzip"})
    assert response.status_code == 413 and code(response) == "REQUEST_TOO_LARGE"
    broken = post(url, b"\x1f\x8b not gzip", **{"content-encoding": "gzip"})
    assert (
        broken.status_code == 400
        and broken.json()["errors"][0]["message"] == "the body is not valid gzip"
    )
    assert post(url, body, **{"content-encoding": "br"}).status_code == 415


def test_batches_are_refused_unless_enabled(url: str) -> None:
    response = post(url, [{"query": "{ hello }"}])
    assert response.status_code == 400 and code(response) == "BATCH_NOT_ALLOWED"
    assert EXECUTED == []


def test_enabled_batches_answer_in_order_up_to_the_maximum() -> None:
    with start(max_batch_operations=3) as server:
        url = f"{server.url}/graphql"
        two = [
            {"query": "{ hello }"},
            {"query": "query ($n: Int!) { count(n: $n) }", "variables": {"n": 2}},
        ]
        response = post(url, two)
        assert response.status_code == 200
        assert response.json() == [{"data": {"hello": "hello world"}}, {"data": {"count": 2}}]
        too_many = post(url, [{"query": "{ hello }"}] * 4)
        assert too_many.status_code == 413 and code(too_many) == "BATCH_TOO_LARGE"
        assert post(url, []).status_code == 400
        assert post(url, [{"query": "{ hello }"}, "x"]).status_code == 400
        EXECUTED.clear()
        many = post(url, [{"query": "{ hello }"}] * 500)
        assert many.status_code == 413 and EXECUTED == []


def test_settings_are_validated() -> None:
    from graftql.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        parse_config(
            {"schema": "m:s", "server": {"max_request_bytes": 10, "max_batch_operations": -1}}
        )
    assert caught.value.errors == [
        ("server.max_request_bytes", "input should be greater than or equal to 1024"),
        ("server.max_batch_operations", "input should be greater than or equal to 0"),
    ]


def test_a_subscription_over_http_is_a_request_error_pointing_to_websocket() -> None:
    with start() as server:
        url = f"{server.url}/graphql"
        response = post(url, {"query": "subscription { ticks }"})
    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {
                "message": (
                    "subscriptions are served over WebSocket (graphql-transport-ws) or "
                    "Server-Sent Events (Accept: text/event-stream)"
                ),
                "extensions": {"code": "BAD_REQUEST"},
            }
        ]
    }
