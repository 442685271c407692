"""The upstream layer learns who an operation runs for (``upstreams.caller``), over HTTP and
WebSocket alike, and only for the length of that operation."""

from __future__ import annotations

import httpx
import strawberry
from gql import Client, gql
from gql.transport.websockets import WebsocketsTransport

from graftql import GatewaySchema
from graftql.upstreams import caller
from integration.helpers import serve, ws_url

seen: list[caller.Caller | None] = []


@strawberry.type
class Query:
    @strawberry.field
    async def who(self) -> str:
        seen.append(caller.current())
        return "ok"


SCHEMA = GatewaySchema(query=Query)


def test_http_operation_sees_its_callers_headers() -> None:
    seen.clear()
    with serve(SCHEMA) as gateway:
        response = httpx.post(
            f"{gateway.url}/graphql", json={"query": "{ who }"}, headers={"X-Tenant": "t1"}
        )
    assert response.json() == {"data": {"who": "ok"}}
    (current,) = seen
    assert current is not None
    assert current.headers["x-tenant"] == "t1"
    assert current.principal is None
    assert caller.current() is None  # nothing leaks out of the operation


async def test_websocket_operations_see_the_handshake_headers() -> None:
    seen.clear()
    with serve(SCHEMA) as gateway:
        transport = WebsocketsTransport(
            url=ws_url(gateway.url),
            headers={"X-Tenant": "t2"},
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        )
        async with Client(transport=transport) as session:
            assert await session.execute(gql("{ who }")) == {"who": "ok"}
            assert await session.execute(gql("{ who }")) == {"who": "ok"}
    assert [c.headers["x-tenant"] if c else None for c in seen] == ["t2", "t2"]


async def test_a_websocket_credential_from_connection_init_counts_as_the_clients() -> None:
    seen.clear()
    with serve(SCHEMA) as gateway:
        transport = WebsocketsTransport(
            url=ws_url(gateway.url),
            init_payload={"Authorization": "Bearer from-init"},
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        )
        async with Client(transport=transport) as session:
            assert await session.execute(gql("{ who }")) == {"who": "ok"}
    (current,) = seen
    assert current is not None and current.headers["authorization"] == "Bearer from-init"
