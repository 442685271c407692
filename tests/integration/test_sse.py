"""GraphQL over Server-Sent Events (graphql-sse, distinct connections mode) against a real
gateway: event streams, pre-execution errors as ``next`` events, bad requests as 4xx, limits,
the rate limit, keep-alive comments, and a client going away stopping the subscription."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from integration.helpers import serve
from integration.realtime_schema import PROBE, deep, many_aliases, realtime_schema

STREAM = "text/event-stream"
WAIT = 10.0
LIMITS = {"max_depth": 5, "max_aliases": 3, "max_tokens": 300}


@contextmanager
def gateway(**server: Any) -> Iterator[str]:
    server.setdefault("limits", LIMITS)
    with serve(realtime_schema(), **server) as thread:
        yield thread.url


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with gateway() as url:
        yield url


@pytest.fixture(autouse=True)
def _probe() -> None:
    PROBE.reset()


def parse(text: str) -> list[tuple[str, Any]]:
    """The events of a stream as (event, data); a comment line is ("", None)."""
    events: list[tuple[str, Any]] = []
    for block in text.split("\n\n"):
        if not block:
            continue
        if block.startswith(":"):
            events.append(("", None))
            continue
        fields = dict(line.split(":", 1) for line in block.split("\n"))
        data = fields.get("data", "").strip()
        events.append((fields["event"].strip(), json.loads(data) if data else None))
    return events


def post(url: str, query: str, path: str = "/graphql", **body: Any) -> httpx.Response:
    return httpx.post(
        f"{url}{path}", json={"query": query, **body}, headers={"accept": STREAM}, timeout=WAIT
    )


def stream(url: str, query: str, path: str = "/graphql", **body: Any) -> list[tuple[str, Any]]:
    response = post(url, query, path, **body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == f"{STREAM}; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    return parse(response.text)


@pytest.mark.parametrize("path", ["/graphql", "/graphql/stream"])
def test_a_subscription_is_next_events_then_complete(url: str, path: str) -> None:
    assert stream(url, "subscription { count(to: 3) }", path) == [
        ("next", {"data": {"count": 1}}),
        ("next", {"data": {"count": 2}}),
        ("next", {"data": {"count": 3}}),
        ("complete", None),
    ]


def test_get_with_the_query_string_and_queries_and_mutations(url: str) -> None:
    response = httpx.get(
        f"{url}/graphql/stream",
        params={"query": "subscription ($n: Int!) { count(to: $n) }", "variables": '{"n": 1}'},
        headers={"accept": STREAM},
    )
    assert parse(response.text) == [("next", {"data": {"count": 1}}), ("complete", None)]
    assert stream(url, "{ hello }") == [
        ("next", {"data": {"hello": "hello world"}}),
        ("complete", None),
    ]
    assert stream(url, "mutation { touch }") == [
        ("next", {"data": {"touch": True}}),
        ("complete", None),
    ]
    # GET runs no mutation: the refusal is a next event, and nothing ran.
    response = httpx.get(
        f"{url}/graphql", params={"query": "mutation { touch }"}, headers={"accept": STREAM}
    )
    [(event, data), end] = parse(response.text)
    assert (event, end) == ("next", ("complete", None))
    assert data["errors"][0]["message"] == "mutations are not allowed"
    assert "data" not in data
    assert PROBE.executed == ["hello", "touch"]


def test_plain_json_clients_on_the_same_path_are_unaffected(url: str) -> None:
    response = httpx.post(f"{url}/graphql", json={"query": "{ hello }"})
    assert response.json() == {"data": {"hello": "hello world"}}
    response = httpx.post(
        f"{url}/graphql",
        json={"query": "{ hello }"},
        headers={"accept": f"application/json, {STREAM};q=0.5"},
    )
    assert response.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("subscription {", "Syntax Error"),
        ("subscription { nope }", "Cannot query field 'nope'"),
        (deep(6), "max_depth"),
        (many_aliases(4), "max_aliases"),
        ("subscription { count " + "# x\n" * 300 + "}", "max_tokens"),
    ],
)
def test_errors_before_execution_are_a_next_event_then_complete(
    url: str, query: str, expected: str
) -> None:
    [(event, data), end] = stream(url, query)
    assert (event, end) == ("next", ("complete", None))
    assert "data" not in data
    assert expected in json.dumps(data["errors"]), data


def test_persisted_query_errors_are_next_events_too(url: str) -> None:
    [(event, data), _] = stream(
        url, None, extensions={"persistedQuery": {"version": 1, "sha256Hash": "ab" * 32}}
    )
    assert event == "next"
    assert data["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize(
    ("request_args", "status", "reason"),
    [
        (
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "not valid JSON",
        ),
        ({"json": {"variables": {}}}, 400, "'query' parameter is required"),
        ({"json": {"query": "{ hello }", "variables": [1]}}, 400, "'variables' parameter must be"),
        ({"json": [{"query": "{ hello }"}]}, 400, "a batch cannot be streamed"),
        (
            {"content": b"query={hello}", "headers": {"content-type": "text/plain"}},
            415,
            "text/plain",
        ),
        (
            {
                "content": b"{}" + b" " * (1024 * 1024),
                "headers": {"content-type": "application/json"},
            },
            413,
            "larger than",
        ),
    ],
)
def test_bad_requests_are_4xx_with_a_reason(
    url: str, request_args: dict[str, Any], status: int, reason: str
) -> None:
    headers = {"accept": STREAM, **request_args.pop("headers", {})}
    response = httpx.post(f"{url}/graphql/stream", headers=headers, **request_args)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert reason in response.json()["errors"][0]["message"]


def test_wrong_method_and_accept_on_the_stream_path(url: str) -> None:
    response = httpx.put(f"{url}/graphql", json={"query": "{ hello }"}, headers={"accept": STREAM})
    assert response.status_code == 405
    response = httpx.post(
        f"{url}/graphql/stream", json={"query": "{ hello }"}, headers={"accept": "application/xml"}
    )
    assert response.status_code == 406
    assert "text/event-stream" in response.json()["errors"][0]["message"]


def test_production_refuses_introspection_and_masks_errors() -> None:
    with gateway(env="production") as url:
        [(_, refused), _] = stream(url, "{ __schema { queryType { name } } }")
        assert "introspection" in refused["errors"][0]["message"]
        events = stream(url, "subscription { boom }")
        assert events[0] == ("next", {"data": {"boom": 1}})
        assert "secret" not in json.dumps(events)
        assert events[1][1]["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
        assert events[2] == ("complete", None)


def test_the_rate_limit_applies_to_streams() -> None:
    with gateway(rate_limit={"rate": 0.01, "burst": 1}) as url:
        assert stream(url, "subscription { count(to: 1) }")[0] == ("next", {"data": {"count": 1}})
        [(event, data), end] = stream(url, "subscription { count(to: 1) }")
        assert (event, end) == ("next", ("complete", None))
        assert data["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert data["errors"][0]["extensions"]["retryAfter"] >= 1


def test_keep_alive_comments_while_quiet_and_disconnect_stops_the_subscription() -> None:
    with gateway(sse={"keep_alive": 0.1}) as url:
        with httpx.stream(
            "POST",
            f"{url}/graphql/stream",
            json={"query": "subscription { wait }"},
            headers={"accept": STREAM},
            timeout=WAIT,
        ) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            assert next(lines) == "event: next"
            assert next(lines) == 'data: {"data":{"wait":0}}'
            assert next(lines) == ""
            assert next(lines) == ":"  # keep-alive comments from now on
            assert next(lines) == ""
            assert next(lines) == ":"
            assert PROBE.started.acquire(timeout=WAIT)
        # The client closed the connection: the subscription's finally runs.
        assert PROBE.ended.acquire(timeout=WAIT), "the subscription was not stopped"


def test_streams_over_max_streams_are_503() -> None:
    with gateway(sse={"max_streams": 1}) as url:
        with httpx.stream(
            "POST",
            f"{url}/graphql/stream",
            json={"query": "subscription { wait }"},
            headers={"accept": STREAM},
            timeout=WAIT,
        ) as response:
            lines = response.iter_lines()  # kept: a dropped iterator closes the connection
            assert next(lines) == "event: next"
            refused = post(url, "subscription { count }")
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "5"
            assert refused.json()["errors"][0]["extensions"]["code"] == "TOO_MANY_STREAMS"
        assert PROBE.ended.acquire(timeout=WAIT)
        # The slot is free again once the first stream ended (the response is over a moment
        # after the subscription's finally ran).
        deadline = time.monotonic() + WAIT
        while (again := post(url, "subscription { count(to: 1) }")).status_code == 503:
            assert time.monotonic() < deadline, "the slot was never given back"
            time.sleep(0.02)
        assert parse(again.text)[0] == ("next", {"data": {"count": 1}})


def test_sse_can_be_turned_off() -> None:
    with gateway(sse={"enabled": False}) as url:
        response = post(url, "{ hello }")
        assert response.status_code == 406  # plain GraphQL over HTTP: JSON only
        assert httpx.post(f"{url}/graphql/stream", json={"query": "{ hello }"}).status_code == 404
