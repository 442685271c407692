"""Real ``graftql serve`` processes: SIGKILL while webhooks arrive, and two replicas over Redis."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import websockets

from graftql.events import RedisBus
from integration.events_helpers import SECRET, payment_body, standard_headers
from integration.helpers import REDIS, RedisProxy, free_port_block, ws_url

TESTS = str(Path(__file__).resolve().parents[1])


def write_config(path: Path, *, port: int, redis_port: int, prefix: str, inbox: Path) -> Path:
    path.write_text(
        f"""
schema: integration.events_helpers:SCHEMA
server: {{host: 127.0.0.1, port: {port}}}
redis: {{url: "redis://127.0.0.1:{redis_port}/0", key_prefix: "{prefix}"}}
events:
  bus: {{backend: redis}}
  inbox: {{path: "{inbox}", retry_delay: 0.05}}
webhooks:
  pay:
    scheme: standard
    secrets: ["${{WH_SECRET}}"]
    topic: "payment.{{data.customerId}}"
"""
    )
    return path


class Gateway:
    """One ``graftql serve`` subprocess."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "graftql.cli", "serve", "--config", str(config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "WH_SECRET": SECRET,
                "PYTHONPATH": os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]),
            },
        )

    async def wait_up(self) -> None:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, "the gateway exited"
                try:
                    if (await client.get(f"{self.url}/healthz", timeout=1)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError("the gateway did not come up")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


@pytest.fixture
async def gateways() -> AsyncIterator[Callable[..., Gateway]]:
    started: list[Gateway] = []

    def start(config: Path, port: int, log: Path) -> Gateway:
        started.append(Gateway(config, port, log))
        return started[-1]

    yield start
    for gateway in started:
        gateway.stop()


async def deliver(client: httpx.AsyncClient, url: str, n: int) -> bool:
    """One webhook (payment n); True when the gateway acknowledged it with 2xx."""
    body = payment_body(f"p{n}", "succeeded")
    try:
        answer = await client.post(
            f"{url}/webhooks/pay", content=body, headers=standard_headers(body, f"msg-{n}")
        )
    except httpx.TransportError:
        return False
    return 200 <= answer.status_code < 300


async def collect(bus: RedisBus, topic: str, into: list[str], ready: asyncio.Event) -> None:
    async with bus.subscribe(topic) as subscription:
        ready.set()
        async for event in subscription:
            into.append(event["id"])


async def test_sigkill_while_webhooks_arrive_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, redis_prefix: str, gateways: Callable[..., Gateway]
) -> None:
    """Every acknowledged event reaches the subscriber exactly once across a SIGKILL. The
    gateway's bus goes through a proxy that the test cuts first, so that acknowledged events
    are certainly stored but not yet published when the process dies."""
    proxy = RedisProxy()
    await proxy.start()
    port = free_port_block(1)
    inbox = tmp_path / "inbox.sqlite3"
    config = write_config(
        tmp_path / "gateway.yaml",
        port=port,
        redis_port=proxy.port,
        prefix=redis_prefix,
        inbox=inbox,
    )
    subscriber = RedisBus(REDIS, key_prefix=redis_prefix)
    received: list[str] = []
    ready = asyncio.Event()
    listener = asyncio.create_task(collect(subscriber, "payment.c1", received, ready))
    await ready.wait()
    acked: set[int] = set()
    total = 200
    try:
        first = gateways(config, port, tmp_path / "gateway.log")
        await first.wait_up()
        async with httpx.AsyncClient(timeout=10) as client:
            for n in range(30):  # normal operation
                assert await deliver(client, first.url, n)
                acked.add(n)
            await proxy.cut()  # the bus is down: events are stored and retried
            for n in range(30, 60):
                assert await deliver(client, first.url, n)
                acked.add(n)

            pending = list(range(60, total))
            killed = asyncio.Event()

            async def sender() -> None:
                while pending and not killed.is_set():
                    n = pending.pop(0)
                    if await deliver(client, first.url, n):
                        acked.add(n)

            senders = [asyncio.create_task(sender()) for _ in range(4)]
            while len(acked) < 80:  # noqa: ASYNC110 - the senders are other tasks
                await asyncio.sleep(0.005)
            first.kill()  # while the senders are still sending
            killed.set()
            await asyncio.gather(*senders)
            with sqlite3.connect(inbox) as db:
                stored_pending = db.execute(
                    "SELECT count(*) FROM graftql_inbox WHERE status = 'pending'"
                ).fetchone()[0]
            assert stored_pending >= 30  # acknowledged, stored, not yet published

            await proxy.start()  # Redis reachable again (same port)
            second = gateways(config, port, tmp_path / "gateway.log")
            await second.wait_up()
            # The senders retry what was not acknowledged, and some resend what was.
            for n in range(total):
                if n not in acked or n % 10 == 0:
                    assert await deliver(client, second.url, n)
                    acked.add(n)
        async with asyncio.timeout(30):
            while len(set(received)) < total:  # noqa: ASYNC110 - filled by the listener
                await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # a duplicate would arrive by now
    finally:
        listener.cancel()
        await subscriber.aclose()
        await proxy.cut()
    counts = Counter(received)
    assert set(counts) == {f"msg-{n}" for n in range(total)}
    assert [event for event, count in counts.items() if count != 1] == []


async def ws_subscribe(url: str, topic: str) -> Any:
    ws = await websockets.connect(ws_url(url), subprotocols=["graphql-transport-ws"])
    await ws.send(json.dumps({"type": "connection_init"}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    await ws.send(
        json.dumps(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {
                    "query": "subscription($t: String!) { events(topic: $t) }",
                    "variables": {"t": topic},
                },
            }
        )
    )
    return ws


async def wait_subscribed(prefix: str, topic: str, count: int = 1) -> None:
    client = aioredis.Redis.from_url(REDIS)
    channel = f"{prefix}bus:{topic}"
    try:
        async with asyncio.timeout(10):
            while True:
                [(_, subscribers)] = await client.pubsub_numsub(channel)
                if subscribers >= count:
                    return
                await asyncio.sleep(0.02)
    finally:
        await client.aclose()


async def test_a_webhook_received_by_one_replica_reaches_a_subscriber_on_the_other_once(
    tmp_path: Path, redis_prefix: str, gateways: Callable[..., Gateway]
) -> None:
    ports = free_port_block(1), free_port_block(1)
    replicas = []
    for i, port in enumerate(ports):
        config = write_config(
            tmp_path / f"gateway{i}.yaml",
            port=port,
            redis_port=6379,
            prefix=redis_prefix,
            inbox=tmp_path / f"inbox{i}.sqlite3",
        )
        replicas.append(gateways(config, port, tmp_path / f"gateway{i}.log"))
    a, b = replicas
    await asyncio.gather(a.wait_up(), b.wait_up())
    ws = await ws_subscribe(b.url, "payment.c1")
    try:
        await wait_subscribed(redis_prefix, "payment.c1")
        async with httpx.AsyncClient(timeout=10) as client:
            assert await deliver(client, a.url, 1)
            message = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert message["type"] == "next"
            assert message["payload"]["data"]["events"]["id"] == "msg-1"
            # The same delivery to the other replica too (a sender's retry landing elsewhere;
            # here each replica has its own SQLite inbox): the bus publishes it once.
            assert await deliver(client, b.url, 1)
            assert await deliver(client, a.url, 1)
            assert await deliver(client, b.url, 2)
            message = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert message["payload"]["data"]["events"]["id"] == "msg-2"
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 1.0)
    finally:
        await ws.close()
