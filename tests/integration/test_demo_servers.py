"""Running ASGI apps on loopback: thread and in-loop APIs, port conflicts, startup failures."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from graftql.demo.servers import (
    LoopbackServer,
    PortInUseError,
    ServerStartupError,
    ServerThread,
    serve,
)


async def hello(_: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def make_app() -> Starlette:
    return Starlette(routes=[Route("/", hello)])


@pytest.fixture
def occupied_port() -> Iterator[int]:
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        yield holder.getsockname()[1]
    finally:
        holder.close()


def test_server_thread_serves_on_an_ephemeral_port_and_stops() -> None:
    with ServerThread(make_app()) as server:
        assert server.url == f"http://127.0.0.1:{server.port}" and server.port > 0
        with httpx.Client(trust_env=False) as client:
            assert client.get(server.url).text == "hello"
        port = server.port
    with pytest.raises(httpx.ConnectError), httpx.Client(trust_env=False) as client:
        client.get(f"http://127.0.0.1:{port}/")


def test_port_in_use_is_a_clear_error(occupied_port: int) -> None:
    with pytest.raises(
        PortInUseError, match=f"port {occupied_port} on 127.0.0.1 is already in use"
    ):
        ServerThread(make_app(), port=occupied_port).start()
    with pytest.raises(PortInUseError) as info:
        LoopbackServer(make_app(), port=occupied_port)
    assert info.value.port == occupied_port and isinstance(info.value, OSError)


def test_second_server_on_a_taken_port_fails_while_the_first_runs() -> None:
    with ServerThread(make_app()) as first:
        with pytest.raises(PortInUseError):
            ServerThread(make_app(), port=first.port).start()


def test_failed_app_startup_raises() -> None:
    @asynccontextmanager
    async def broken_lifespan(_: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("database unreachable")
        yield  # pragma: no cover

    with pytest.raises(ServerStartupError, match="failed to start"):
        ServerThread(Starlette(lifespan=broken_lifespan)).start()


async def test_serve_runs_several_servers_in_the_current_loop() -> None:
    async with serve(make_app()) as one, serve(make_app()) as two:
        assert one.port != two.port and one.started and two.started
        async with httpx.AsyncClient(trust_env=False) as client:
            assert (await client.get(one.url)).text == "hello"
            assert (await client.get(two.url)).text == "hello"
    async with httpx.AsyncClient(trust_env=False) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(one.url)


async def test_unstarted_server_releases_its_port() -> None:
    server = LoopbackServer(make_app())
    port = server.port
    await server.stop()
    async with serve(make_app(), port=port) as again:
        assert again.port == port


async def test_stop_after_a_failed_start_does_not_raise_again() -> None:
    @asynccontextmanager
    async def broken_lifespan(_: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("database unreachable")
        yield  # pragma: no cover

    server = LoopbackServer(Starlette(lifespan=broken_lifespan))
    with pytest.raises(ServerStartupError):
        await server.start()
    await server.stop()  # as a runner's ``finally`` would
    async with serve(make_app(), port=server.port) as again:  # the port was released
        assert again.port == server.port
