"""`graftql serve --workers 2`: /metrics is the sum over both worker processes, whichever one
answers the scrape, and the gauges each worker reads from its own upstreams combine sensibly."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
from pathlib import Path

import httpx

from graftql.testing import Call, ChaosUpstream, ReceivedRequest, Respond
from integration.helpers import GRAFTQL, free_port_block, scrape, value, wait_until_up, ws_url

SCHEMA = """
import strawberry

from graftql import Context, GatewaySchema


@strawberry.type
class Query:
    @strawberry.field
    async def item(self, info: strawberry.Info[Context, None], i: int) -> str:
        return str(await info.context.upstreams.rest("svc").get("/item", params={"i": i}))


schema = GatewaySchema(query=Query)
"""

OK = ("graftql_operations_total", {"type": "query", "outcome": "ok"})


def per_worker(
    directory: Path, name: str, *, files: str = "counter_*.db", **labels: str
) -> dict[int, float]:
    """One series' value in each worker's own file (the library's file per process id);
    ``files`` picks the metric kind's files (``gauge_livesum_*.db`` for a livesum gauge)."""
    from prometheus_client.multiprocess import MultiProcessCollector

    found = {}
    for path in glob.glob(str(directory / files)):
        pid = int(Path(path).stem.rpartition("_")[2])
        for metric in MultiProcessCollector.merge([path]):
            for sample in metric.samples:
                if sample.name == name and sample.labels == labels:
                    found[pid] = sample.value
    return found


def test_two_workers_sum_their_counters_and_combine_their_gauges(
    tmp_path: Path, chaos: ChaosUpstream
) -> None:
    served = 0

    def answer(request: ReceivedRequest) -> Respond:
        # Each answer reports one call fewer left: the newest report is the truth.
        return Respond(json={"ok": 1}, headers={"x-ratelimit-remaining": str(1000 - served)})

    items = chaos.route("GET /item", Call(answer))
    (tmp_path / "workers_schema.py").write_text(SCHEMA)
    (tmp_path / "gateway.yaml").write_text(
        "schema: workers_schema:schema\n"
        "upstreams:\n"
        f"  svc: {{kind: rest, url: '{chaos.url}', retry: {{attempts: 1}},\n"
        # One failure among a few hundred calls opens it.
        "        breaker: {minimum_calls: 1, failure_rate: 0.001, open_for: 600}}\n"
    )
    directory = tmp_path / "prometheus"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"stale: from an earlier run")  # must be removed
    port = free_port_block(1)
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [*GRAFTQL, "serve", "--port", str(port), "--workers", "2", "--env", "production"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,  # the schema module is found there, by every worker
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)},
    )
    try:
        wait_until_up(f"{base}/healthz", process)
        # Each request on a new connection, so either worker may take it; until both have.
        while served < 400:
            for _ in range(10):
                served += 1
                body = {"query": f"{{ item(i: {served}) }}"}
                assert httpx.post(f"{base}/graphql", json=body).json() == {
                    "data": {"item": "{'ok': 1}"}
                }
            workers = per_worker(directory, OK[0], **OK[1])
            if len(workers) == 2 and all(workers.values()):
                break
        assert len(workers) == 2 and all(workers.values()), workers
        assert sum(workers.values()) == served and max(workers.values()) < served

        # Whichever worker answers a scrape (each on a new connection), it shows the sum.
        for _ in range(8):
            samples = scrape(base)
            assert value(samples, OK[0], **OK[1]) == served
            requests = "graftql_upstream_requests_total"
            assert value(samples, requests, upstream="svc", method="GET", outcome="ok") == served
            histogram = "graftql_operation_duration_seconds_count"
            assert value(samples, histogram, type="query") == served
            # The newest quota report, from whichever worker received it.
            quota = value(samples, "graftql_upstream_quota_remaining", upstream="svc")
            assert quota == 1000 - served
            assert value(samples, "graftql_upstream_breaker_state", upstream="svc") == 0

        # One failure opens the breaker of the one worker that got it: the worst state shows.
        items.queue(Respond(503, json={}))
        failed = httpx.post(f"{base}/graphql", json={"query": "{ item(i: 0) }"}).json()
        assert failed["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
        for _ in range(8):
            samples = scrape(base)
            assert value(samples, "graftql_upstream_breaker_state", upstream="svc") == 2
            transitions = "graftql_upstream_breaker_transitions_total"
            assert value(samples, transitions, upstream="svc", state="open") == 1
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    # Both workers stopped cleanly: their gauges left the directory, their counters stayed.
    left = sorted(path.name for path in directory.iterdir())
    assert not [name for name in left if name.startswith("gauge_")], left
    assert "counter_1.db" not in left and len([n for n in left if n.startswith("counter_")]) == 2


SUBSCRIPTION_SCHEMA = """
import asyncio
from collections.abc import AsyncIterator

import strawberry

from graftql import GatewaySchema


@strawberry.type
class Query:
    hello: str = "hello"


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ticks(self) -> AsyncIterator[int]:
        yield 1
        await asyncio.Event().wait()  # until the client leaves


schema = GatewaySchema(query=Query, subscription=Subscription)
"""


def test_two_workers_add_up_their_subscriptions_and_connections(tmp_path: Path) -> None:
    import asyncio
    import json
    import time
    from typing import Any

    import websockets

    (tmp_path / "subscription_schema.py").write_text(SUBSCRIPTION_SCHEMA)
    (tmp_path / "gateway.yaml").write_text("schema: subscription_schema:schema\n")
    directory = tmp_path / "prometheus"
    directory.mkdir()
    port = free_port_block(1)
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [*GRAFTQL, "serve", "--port", str(port), "--workers", "2", "--env", "production"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)},
    )
    active = ("graftql_subscriptions_active", {"transport": "websocket"})
    connections = ("graftql_websocket_connections", {"protocol": "graphql-transport-ws"})
    events = ("graftql_subscription_events_total", {"transport": "websocket"})

    async def scenario() -> None:
        sockets: list[Any] = []
        try:
            # Each subscription on a connection of its own, one at a time, until both workers
            # run some (the kernel hands each connection to whichever worker accepts first).
            while len(sockets) < 120:
                socket = await websockets.connect(
                    ws_url(base),
                    subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                    open_timeout=30,  # a loaded machine: the handshake is not what is tested
                )
                sockets.append(socket)
                await socket.send(json.dumps({"type": "connection_init"}))
                assert json.loads(await socket.recv()) == {"type": "connection_ack"}
                payload = {"query": "subscription { ticks }"}
                await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
                assert json.loads(await socket.recv())["type"] == "next"
                workers = per_worker(directory, active[0], files="gauge_livesum_*.db", **active[1])
                if len([count for count in workers.values() if count > 0]) == 2:
                    break
            workers = per_worker(directory, active[0], files="gauge_livesum_*.db", **active[1])
            assert len([count for count in workers.values() if count > 0]) == 2, workers
            opened = len(sockets)
            # Whichever worker answers a scrape, it shows every worker's subscriptions.
            for _ in range(8):
                samples = await asyncio.to_thread(scrape, base)
                assert value(samples, active[0], **active[1]) == opened
                assert value(samples, connections[0], **connections[1]) == opened
                assert value(samples, events[0], **events[1]) == opened
        finally:
            for socket in sockets:
                await socket.close()
        deadline = time.monotonic() + 15
        while True:
            samples = await asyncio.to_thread(scrape, base)
            if value(samples, active[0], **active[1]) == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert value(samples, active[0], **active[1]) == 0
        assert value(samples, connections[0], **connections[1]) == 0
        assert value(samples, events[0], **events[1]) == opened  # counted, they stay

    try:
        wait_until_up(f"{base}/healthz", process)
        asyncio.run(scenario())
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
