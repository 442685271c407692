"""Helpers for integration tests: talk to the gateway and read the upstreams' counters, run
the ``graftql`` command as a process."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
import redis
import redis.asyncio as aioredis
import websockets
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from graftql import GatewaySchema
from graftql.config import GatewayConfig, parse_config
from graftql.demo.servers import ServerThread
from graftql.server import create_app
from graftql.testing import ReceivedRequest, Respond

GRAFTQL = [sys.executable, "-m", "graftql.cli"]
REDIS = "redis://127.0.0.1:6379/0"
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def unavailable(reason: str) -> NoReturn:
    """Something a test needs (Redis, PostgreSQL, Node.js, ...) is not on this machine: skip
    with the reason, except under CI=true, where it is required and its absence fails."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required under CI=true)", pytrace=False)
    pytest.skip(reason)


def require_redis() -> None:
    """Skip (fail under CI=true) unless Redis answers on 127.0.0.1:6379. Blocking: from async
    code, ``await asyncio.to_thread(require_redis)``."""
    client = redis.Redis.from_url(REDIS, socket_connect_timeout=0.5)
    try:
        client.ping()
    except redis.RedisError:
        unavailable("no Redis on 127.0.0.1:6379")
    finally:
        client.close()


def require_postgres() -> str:
    """The DSN of the test database; skip (fail under CI=true) unless PostgreSQL accepts it.
    Blocking: from async code, ``await asyncio.to_thread(require_postgres)``."""
    import asyncpg

    async def probe() -> None:
        conn = await asyncpg.connect(POSTGRES, timeout=2)
        await conn.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        unavailable(f"no PostgreSQL on 127.0.0.1:5432 ({type(exc).__name__}: {exc})")
    return POSTGRES


class RedisProxy:
    """A TCP proxy in front of the real Redis that a test can cut and restore, to lose the
    connection the way a network partition or a Redis restart does."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 6379)
        self._writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()


def unique_prefix() -> str:
    """A Redis key prefix of one test's own, so parallel runs never share keys."""
    return f"graftql-test-{uuid.uuid4().hex}:"


async def delete_keys(prefix: str, url: str = REDIS) -> None:
    """Delete the keys a test wrote under its ``prefix`` (never FLUSHDB: others share Redis)."""
    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GRAFTQL, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        check=False,
    )


def free_port_block(size: int) -> int:
    """A base port with `size` consecutive free loopback ports."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + size > 65535:
            continue
        sockets = []
        try:
            for port in range(base, base + size):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no block of free ports")


def wait_until_up(url: str, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"process exited early: {process.communicate()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def ws_url(http_url: str) -> str:
    """The GraphQL WebSocket URL of a gateway served at ``http://127.0.0.1:PORT``."""
    return http_url.replace("http://", "ws://") + "/graphql"


@asynccontextmanager
async def ws_connected(
    http_url: str, payload: Mapping[str, Any] | None = None, **connect: Any
) -> AsyncIterator[ClientConnection]:
    """A graphql-transport-ws connection to the gateway at ``http_url``, initialised (with
    ``payload`` in connection_init when given) and acknowledged; ``connect`` goes to
    ``websockets.connect`` (e.g. ``additional_headers``, ``origin``)."""
    protocols = [Subprotocol("graphql-transport-ws")]
    async with websockets.connect(ws_url(http_url), subprotocols=protocols, **connect) as ws:
        init: dict[str, Any] = {"type": "connection_init"}
        if payload is not None:
            init["payload"] = payload
        await ws.send(json.dumps(init))
        assert json.loads(await ws.recv()) == {"type": "connection_ack"}
        yield ws


def start_gateway(config: GatewayConfig) -> ServerThread:
    return ServerThread(create_app(config)).start()


def serve(
    schema: GatewaySchema,
    *,
    upstreams: Mapping[str, Any] | None = None,
    blocks: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    **server: Any,
) -> ServerThread:
    """A gateway for ``schema`` on a loopback port (use it as a context manager, or call
    ``.start()``); ``server`` and ``upstreams`` are gateway.yaml's blocks as plain data,
    ``blocks`` any other top-level blocks (``redis``, ``cache``, ...), ``environ`` where
    ``${VAR}`` references come from (default: the process environment)."""
    document = {"schema": "tests:schema", "server": server, "upstreams": dict(upstreams or {})}
    config = parse_config({**document, **(blocks or {})}, environ=environ)
    return ServerThread(create_app(config, schema))


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def echo_authorization(request: ReceivedRequest) -> Respond:
    """A chaos upstream's answer that says which credential the call carried (None: none)."""
    return Respond(json={"for": request.headers.get("authorization")})


def reset(services: Mapping[str, str]) -> None:
    for url in services.values():
        httpx.post(f"{url}/__reset").raise_for_status()


def stats(services: Mapping[str, str]) -> dict[str, dict[str, int]]:
    return {name: httpx.get(f"{url}/__stats").json()["requests"] for name, url in services.items()}


def demo_token(role: str = "staff") -> str:
    """A token the demo gateway accepts (its ``server.auth`` secret, from the environment or
    the gateway.yaml default): ``staff`` may read every customer's data, ``customer`` is c1."""
    from graftql.demo.runner import demo_config, demo_tokens

    return demo_tokens(demo_config({}))[role]


def graphql(
    base_url: str, query: str, *, token: str | None = "staff", **variables: Any
) -> dict[str, Any]:
    """POST ``query``; as the demo's staff user unless ``token`` says otherwise (a role of
    ``demo_token``, a token, or None for anonymous). A gateway without ``server.auth``
    ignores the header; the storefront tests are about data, test_demo_authorization.py about
    who may see it."""
    headers = {}
    if token is not None:
        bearer = demo_token(token) if token in ("staff", "customer") else token
        headers["authorization"] = f"Bearer {bearer}"
    response = httpx.post(
        f"{base_url}/graphql",
        json={"query": query, "variables": variables or None},
        headers=headers,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_within_rate(
    arrivals: Sequence[float], rate: float, burst: int, *, jitter: float = 0.06
) -> None:
    """No stretch of calls arrived faster than a token bucket allows: n calls need at least
    (n - burst) / rate seconds. ``jitter`` absorbs the upstream thread's own scheduling delay,
    which can bunch arrivals that the gateway sent on time (on a loaded 2-core machine, tens of
    milliseconds): short stretches are checked loosely, long ones still strictly."""
    times = sorted(arrivals)
    for first in range(len(times)):
        for last in range(first + burst, len(times)):
            needed = (last - first + 1 - burst) / rate
            assert times[last] - times[first] >= needed - jitter, (first, last, needed)
