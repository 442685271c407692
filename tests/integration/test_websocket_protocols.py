"""GraphQL over WebSocket against a real gateway: graphql-transport-ws and the legacy graphql-ws,
message by message — every close code, ping/pong and keep-alive, complete semantics, the
per-connection cap, the connection hook, and the operation limits applied to subscriptions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from graftql.config import parse_config
from graftql.demo.servers import ServerThread
from graftql.errors import ConnectionRejected
from graftql.resolvers import Context
from graftql.server import create_app
from graftql.server.graphql import ConnectionAuthenticator
from integration.helpers import ws_url
from integration.realtime_schema import PROBE, deep, many_aliases, realtime_schema

TRANSPORT = Subprotocol("graphql-transport-ws")
LEGACY = Subprotocol("graphql-ws")
WAIT = 10.0  # seconds to wait for something that should happen at once (a loaded machine)
LIMITS = {"max_depth": 5, "max_aliases": 3, "max_tokens": 300}


@contextmanager
def gateway(authenticate: ConnectionAuthenticator | None = None, **server: Any) -> Iterator[str]:
    server.setdefault("limits", LIMITS)
    config = parse_config({"schema": "tests:unused", "server": server})
    app = create_app(config, realtime_schema(), authenticate=authenticate)
    with ServerThread(app) as thread:
        yield ws_url(thread.url)


@pytest.fixture(autouse=True)
def _probe() -> None:
    PROBE.reset()


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with gateway(websocket={"max_subscriptions": 3, "keep_alive": None}) as url:
        yield url


@asynccontextmanager
async def connect(
    url: str, protocol: Subprotocol = TRANSPORT, *, init: bool = True
) -> AsyncIterator[ClientConnection]:
    async with websockets.connect(url, subprotocols=[protocol], ping_interval=None) as ws:
        assert ws.subprotocol == protocol
        if init:
            await send(ws, {"type": "connection_init"})
            assert await receive(ws) == {"type": "connection_ack"}
        yield ws


async def send(ws: ClientConnection, message: object) -> None:
    await ws.send(message if isinstance(message, str) else json.dumps(message))


async def receive(ws: ClientConnection, *, skip: tuple[str, ...] = ("ka",)) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        if message.get("type") not in skip:
            return message


async def closed_with(ws: ClientConnection) -> tuple[int | None, str | None]:
    """The close code and reason the server closed with (messages before it are skipped)."""
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), WAIT)
    assert ws.close_code is not None
    return ws.close_code, ws.close_reason


def subscribe(op: str, query: str, **payload: Any) -> dict[str, Any]:
    return {"id": op, "type": "subscribe", "payload": {"query": query, **payload}}


def start(op: str, query: str) -> dict[str, Any]:
    return {"id": op, "type": "start", "payload": {"query": query}}


def released(semaphore: Any) -> bool:
    return bool(semaphore.acquire(timeout=WAIT))


# -- graphql-transport-ws: the happy path and complete semantics --------------------------------


async def test_a_subscription_streams_next_messages_then_complete(url: str) -> None:
    async with connect(url) as ws:
        await send(ws, subscribe("s1", "subscription { count(to: 3) }"))
        assert [await receive(ws) for _ in range(4)] == [
            {"id": "s1", "type": "next", "payload": {"data": {"count": 1}}},
            {"id": "s1", "type": "next", "payload": {"data": {"count": 2}}},
            {"id": "s1", "type": "next", "payload": {"data": {"count": 3}}},
            {"id": "s1", "type": "complete"},
        ]
        # Queries and mutations run over the same socket: one next, then complete.
        await send(ws, subscribe("q1", "mutation { touch }"))
        assert await receive(ws) == {
            "id": "q1",
            "type": "next",
            "payload": {"data": {"touch": True}},
        }
        assert await receive(ws) == {"id": "q1", "type": "complete"}


async def test_complete_from_the_client_stops_the_subscription_and_frees_its_id(url: str) -> None:
    async with connect(url) as ws:
        await send(ws, subscribe("w", "subscription { wait }"))
        assert await receive(ws) == {"id": "w", "type": "next", "payload": {"data": {"wait": 0}}}
        await send(ws, {"id": "w", "type": "complete"})
        assert released(PROBE.ended), "the subscription's finally did not run"
        # The id is free again at once (no 4409), and the server sends nothing more for the
        # completed one: the next message is the new operation's.
        await send(ws, subscribe("w", "subscription { count(to: 1) }"))
        assert await receive(ws) == {"id": "w", "type": "next", "payload": {"data": {"count": 1}}}
        assert await receive(ws) == {"id": "w", "type": "complete"}
        # Completing an unknown or finished id is allowed and answered with nothing.
        await send(ws, {"id": "nope", "type": "complete"})
        await send(ws, {"type": "ping"})
        assert await receive(ws) == {"type": "pong"}


async def test_closing_the_socket_stops_its_subscriptions(url: str) -> None:
    async with connect(url) as ws:
        await send(ws, subscribe("w", "subscription { wait }"))
        assert (await receive(ws))["type"] == "next"
    assert released(PROBE.ended)


async def test_ping_is_answered_with_pong_and_pong_is_accepted(url: str) -> None:
    async with connect(url, init=False) as ws:
        # Ping and pong are allowed before connection_init too.
        await send(ws, {"type": "ping", "payload": {"at": 1}})
        assert await receive(ws) == {"type": "pong"}
        await send(ws, {"type": "pong"})
        await send(ws, {"type": "connection_init"})
        assert await receive(ws) == {"type": "connection_ack"}


async def test_the_server_pings_every_keep_alive_interval() -> None:
    with gateway(websocket={"keep_alive": 0.2}) as url:
        async with connect(url) as ws:
            for _ in range(2):
                assert await receive(ws) == {"type": "ping"}
                await send(ws, {"type": "pong"})


# -- graphql-transport-ws: every close code -------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("not json", "WebSocket message must be valid JSON"),
        ("[1, 2]", "a message must be a JSON object"),
        ({"payload": {}}, "a message must have a string 'type'"),
        ({"type": "shout"}, "Unknown message type: shout"),
        ({"type": "subscribe", "payload": {"query": "{ hello }"}}, "non-empty string 'id'"),
        ({"type": "subscribe", "id": "1"}, "must have an object 'payload'"),
        ({"type": "subscribe", "id": "1", "payload": {}}, "must have a string 'query'"),
        (subscribe("1", "{ hello }", variables=[1]), "'variables' must be an object"),
    ],
)
async def test_a_malformed_message_closes_with_4400(url: str, message: object, reason: str) -> None:
    async with connect(url) as ws:
        await send(ws, message)
        code, said = await closed_with(ws)
    assert code == 4400
    assert said is not None and reason in said


async def test_a_binary_message_closes_with_4400(url: str) -> None:
    async with connect(url) as ws:
        await ws.send(b'{"type": "ping"}')
        assert await closed_with(ws) == (4400, "WebSocket message type must be text")


async def test_subscribe_before_connection_ack_closes_with_4401(url: str) -> None:
    async with connect(url, init=False) as ws:
        await send(ws, subscribe("1", "{ hello }"))
        assert await closed_with(ws) == (4401, "Unauthorized")


async def test_no_connection_init_in_time_closes_with_4408() -> None:
    with gateway(websocket={"connection_init_timeout": 0.3}) as url:
        async with connect(url, init=False) as ws:
            assert await closed_with(ws) == (4408, "Connection initialisation timeout")
        async with connect(url, LEGACY, init=False) as ws:
            assert await closed_with(ws) == (4408, "Connection initialisation timeout")


async def test_a_duplicate_operation_id_closes_with_4409(url: str) -> None:
    async with connect(url) as ws:
        await send(ws, subscribe("dup", "subscription { wait }"))
        assert (await receive(ws))["type"] == "next"
        await send(ws, subscribe("dup", "subscription { count }"))
        assert await closed_with(ws) == (4409, "Subscriber for dup already exists")
    assert released(PROBE.ended)


async def test_a_second_connection_init_closes_with_4429(url: str) -> None:
    async with connect(url) as ws:
        await send(ws, {"type": "connection_init"})
        assert await closed_with(ws) == (4429, "Too many initialisation requests")
    async with connect(url, LEGACY) as ws:
        await send(ws, {"type": "connection_init"})
        assert await closed_with(ws) == (4429, "Too many initialisation requests")


async def test_an_unknown_subprotocol_closes_with_4406(url: str) -> None:
    async with websockets.connect(url, subprotocols=[Subprotocol("mqtt")]) as ws:
        assert await closed_with(ws) == (4406, "Subprotocol not acceptable")


# -- the connection hook (auth from the connection_init payload) ----------------------------------


async def _token_check(context: Context) -> Mapping[str, object] | None:
    params = context.connection_params or {}
    if params.get("token") == "boom":
        raise RuntimeError("a bug in the hook, with a secret: s3cr3t")
    if params.get("token") != "letmein":
        raise ConnectionRejected("wrong token")
    context.principal = {"sub": "alice"}
    return {"welcome": "alice"}


async def test_the_connection_hook_accepts_rejects_and_fails_safely() -> None:
    with gateway(authenticate=_token_check) as url:
        async with connect(url, init=False) as ws:
            await send(ws, {"type": "connection_init", "payload": {"token": "letmein"}})
            assert await receive(ws) == {"type": "connection_ack", "payload": {"welcome": "alice"}}
            await send(ws, subscribe("1", "{ hello }"))
            assert (await receive(ws))["payload"] == {"data": {"hello": "hello world"}}
        # Wrong credentials: 4403, and no hint of why.
        async with connect(url, init=False) as ws:
            await send(ws, {"type": "connection_init", "payload": {"token": "guess"}})
            assert await closed_with(ws) == (4403, "Forbidden")
        # A connection_init payload that is not an object: 4400.
        async with connect(url, init=False) as ws:
            await send(ws, {"type": "connection_init", "payload": "token"})
            assert await closed_with(ws) == (4400, "Invalid connection init payload")
        # The hook itself fails: 4500 with a generic reason, nothing of the exception.
        async with connect(url, init=False) as ws:
            await send(ws, {"type": "connection_init", "payload": {"token": "boom"}})
            assert await closed_with(ws) == (4500, "Internal server error")
        # graphql-ws: connection_error, then the socket is closed.
        async with connect(url, LEGACY, init=False) as ws:
            await send(ws, {"type": "connection_init", "payload": {"token": "guess"}})
            assert await receive(ws) == {"type": "connection_error", "payload": {}}
            code, _ = await closed_with(ws)
            assert code == 1011


# -- per-connection cap ------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
async def test_the_per_connection_cap_refuses_one_more_and_keeps_the_socket(
    url: str, protocol: Subprotocol
) -> None:
    begin = subscribe if protocol == TRANSPORT else start
    data = "next" if protocol == TRANSPORT else "data"
    stop = "complete" if protocol == TRANSPORT else "stop"
    async with connect(url, protocol) as ws:
        for op in ("a", "b", "c"):  # max_subscriptions: 3
            await send(ws, begin(op, "subscription { wait }"))
            assert await receive(ws) == {"id": op, "type": data, "payload": {"data": {"wait": 0}}}
        await send(ws, begin("d", "subscription { count }"))
        refused = await receive(ws)
        assert refused["id"] == "d" and refused["type"] == "error", refused
        errors = refused["payload"] if protocol == TRANSPORT else [refused["payload"]]
        assert errors[0]["extensions"] == {"code": "SUBSCRIPTION_LIMIT"}
        assert "at most 3 operations" in errors[0]["message"]
        # Stopping one makes room; the connection was never closed.
        await send(ws, {"id": "a", "type": stop})
        assert released(PROBE.ended)
        if protocol == LEGACY:
            assert await receive(ws) == {"id": "a", "type": "complete"}
        await send(ws, begin("d", "subscription { count(to: 1) }"))
        assert await receive(ws) == {"id": "d", "type": data, "payload": {"data": {"count": 1}}}
        assert await receive(ws) == {"id": "d", "type": "complete"}


# -- invalid documents and limits: an error for that id, the socket stays open --------------------


INVALID = [
    ("subscription {", "Syntax Error"),
    ("subscription { nope }", "Cannot query field 'nope'"),
    ("subscription ($n: Int!) { count(to: $n) }", "to be provided"),
    (deep(6), "depth"),
    (many_aliases(4), "aliases"),
    ("subscription { count " + " " * 10 + "# x\n" * 300 + "}", "tokens"),
]


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
@pytest.mark.parametrize(("document", "expected"), INVALID)
async def test_an_invalid_subscription_gets_an_error_message_and_the_socket_stays_open(
    url: str, protocol: Subprotocol, document: str, expected: str
) -> None:
    begin = subscribe if protocol == TRANSPORT else start
    async with connect(url, protocol) as ws:
        await send(ws, begin("bad", document))
        error = await receive(ws)
        assert error["id"] == "bad" and error["type"] == "error", error
        errors = error["payload"] if protocol == TRANSPORT else [error["payload"]]
        assert expected in json.dumps(errors), errors
        # Still open, and still working.
        await send(ws, begin("ok", "subscription { count(to: 1) }"))
        assert (await receive(ws))["payload"] == {"data": {"count": 1}}


async def test_limits_name_the_limit_for_subscriptions(url: str) -> None:
    async with connect(url) as ws:
        await send(ws, subscribe("1", deep(6)))
        [error] = (await receive(ws))["payload"]
        assert error["extensions"]["code"] == "OPERATION_LIMIT_EXCEEDED"
        assert error["extensions"]["limit"] == "max_depth"
        await send(ws, subscribe("2", deep(5)))  # at the limit: allowed
        assert (await receive(ws))["type"] == "next"


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
async def test_production_refuses_introspection_and_masks_stream_errors(
    protocol: Subprotocol,
) -> None:
    begin = subscribe if protocol == TRANSPORT else start
    data = "next" if protocol == TRANSPORT else "data"
    with gateway(env="production") as url:
        async with connect(url, protocol) as ws:
            await send(ws, begin("i", "{ __schema { queryType { name } } }"))
            error = await receive(ws)
            assert error["type"] == "error" and "introspection" in json.dumps(error)
            await send(ws, begin("b", "subscription { boom }"))
            assert await receive(ws) == {"id": "b", "type": data, "payload": {"data": {"boom": 1}}}
            failed = await receive(ws)
            assert failed["type"] == data
            assert "secret" not in json.dumps(failed)
            [masked] = failed["payload"]["errors"]
            assert masked["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
            assert await receive(ws) == {"id": "b", "type": "complete"}


# -- the legacy graphql-ws protocol -------------------------------------------------------------


async def test_legacy_protocol_runs_subscriptions_queries_and_stop() -> None:
    with gateway(websocket={"keep_alive": 0.2}) as url:
        async with connect(url, LEGACY, init=False) as ws:
            await send(ws, {"type": "connection_init", "payload": {}})
            assert await receive(ws) == {"type": "connection_ack"}
            # Keep-alive: a ka right after the ack, then every interval.
            assert await receive(ws, skip=()) == {"type": "ka"}
            assert await receive(ws, skip=()) == {"type": "ka"}
            # A query over start: one data, then complete (not "queries are not allowed").
            await send(ws, start("q", '{ hello(name: "legacy") }'))
            assert await receive(ws) == {
                "id": "q",
                "type": "data",
                "payload": {"data": {"hello": "hello legacy"}},
            }
            assert await receive(ws) == {"id": "q", "type": "complete"}
            await send(ws, start("w", "subscription { wait }"))
            assert await receive(ws) == {
                "id": "w",
                "type": "data",
                "payload": {"data": {"wait": 0}},
            }
            await send(ws, {"id": "w", "type": "stop"})
            assert await receive(ws) == {"id": "w", "type": "complete"}
            assert released(PROBE.ended)
            # A malformed message: an error message, and the socket stays open.
            await send(ws, {"id": "x", "type": "start", "payload": {"query": 1}})
            assert await receive(ws) == {
                "type": "error",
                "id": "x",
                "payload": {"message": "a 'start' payload must have a string 'query'"},
            }
            await send(ws, [1])
            assert await receive(ws) == {
                "type": "error",
                "payload": {"message": "a message must be a JSON object"},
            }
            await send(ws, {"type": "connection_terminate"})
            code, _ = await closed_with(ws)
            assert code == 1000


async def test_legacy_start_before_connection_init_closes_with_4401(url: str) -> None:
    async with connect(url, LEGACY, init=False) as ws:
        await send(ws, start("1", "{ hello }"))
        assert await closed_with(ws) == (4401, "Unauthorized")
