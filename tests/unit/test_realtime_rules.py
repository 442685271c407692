"""Pure rules of the real-time transports: which Accept headers get an event stream, and which
protocol messages are malformed (the WebSocket tests send each over a real socket too)."""

from __future__ import annotations

import pytest

from graftql.server.sse import wants_event_stream
from graftql.server.websocket import message_problem


@pytest.mark.parametrize(
    ("accept", "streams"),
    [
        ("text/event-stream", True),
        ("text/event-stream, application/json;q=0.9", True),
        ("application/json, text/event-stream", True),  # a tie: the client listed both
        ("application/json, text/event-stream;q=0.5", False),
        ("application/graphql-response+json, text/event-stream;q=0.1", False),
        ("text/event-stream;q=0", False),
        ("text/event-stream;q=bad", False),
        ("*/*", False),  # a wildcard means JSON, as for every legacy client
        ("", False),
        (None, False),
    ],
)
def test_which_accept_headers_get_an_event_stream(accept: str | None, streams: bool) -> None:
    assert wants_event_stream(accept) is streams


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ({"type": "ping"}, None),
        ({"type": "connection_init", "payload": {"token": "x"}}, None),
        ({"id": "1", "type": "subscribe", "payload": {"query": "{ a }"}}, None),
        (
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": "{ a }", "variables": None, "operationName": None},
            },
            None,
        ),
        ({"id": "1", "type": "complete"}, None),
        ([], "a message must be a JSON object"),
        ({"type": 1}, "a message must have a string 'type'"),
        ({"id": "", "type": "complete"}, "a 'complete' message must have a non-empty string 'id'"),
        ({"id": 1, "type": "subscribe", "payload": {}}, "non-empty string 'id'"),
        ({"id": "1", "type": "subscribe", "payload": "{ a }"}, "an object 'payload'"),
        ({"id": "1", "type": "subscribe", "payload": {"query": None}}, "a string 'query'"),
        (
            {"id": "1", "type": "subscribe", "payload": {"query": "{ a }", "operationName": 5}},
            "'operationName' must be a string",
        ),
        (
            {"id": "1", "type": "subscribe", "payload": {"query": "{ a }", "extensions": []}},
            "'extensions' must be an object",
        ),
    ],
)
def test_malformed_protocol_messages(message: object, problem: str | None) -> None:
    found = message_problem(message, "subscribe")
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
