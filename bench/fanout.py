"""Subscription fan-out: N WebSocket subscribers (graphql-transport-ws) on one gateway process,
one topic on the in-memory event bus, events published at a fixed rate.

Reports, per N: connect time, the gateway's memory per subscriber (RSS after the N subscribed
minus RSS before, over N), deliveries per second, and delivery latency p50/p99/max (publish
time stamped in the gateway, receive time in this client process, same host clock). The
client is one asyncio process too, so at large N its own lag is part of the latency: the
figures are an upper bound for the gateway.

    .venv/bin/python bench/fanout.py                    # N = 100, 1000, 5000; about 40 s
    .venv/bin/python bench/fanout.py --subscribers 5000 --events 20 --rate 5

Results: bench/results/fanout-<UTC timestamp>.json, and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import websockets

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import procs  # noqa: E402
import targets  # noqa: E402

PORT = 18790
COMPRESSION: str | None = "deflate"  # what browsers offer; --no-compression: none
CONFIG = """\
schema: fanout_schema:schema
server:
  env: production
  metrics: false
  websocket: {max_subscriptions: 10, keep_alive: null, connection_init_timeout: 60}
"""


class Subscriber:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.ws: Any = None

    async def connect(self, url: str, topic: str) -> None:
        self.ws = await websockets.connect(
            url,
            subprotocols=["graphql-transport-ws"],
            ping_interval=None,
            max_queue=None,  # type: ignore[list-item]
            compression=COMPRESSION,
        )
        await self.ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await self.ws.recv())["type"] == "connection_ack"
        query = "subscription ($t: String!) { ticks(topic: $t) }"
        message = {
            "id": "1",
            "type": "subscribe",
            "payload": {"query": query, "variables": {"t": topic}},
        }
        await self.ws.send(json.dumps(message))

    async def receive(self, events: int) -> None:
        for _ in range(events):
            message = json.loads(await self.ws.recv())
            received = time.time()
            self.latencies.append(received - message["payload"]["data"]["ticks"]["sent"])

    async def close(self) -> None:
        await self.ws.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_one(base: str, pid: int, n: int, events: int, rate: float) -> dict[str, Any]:
    url = base.replace("http://", "ws://") + "/graphql"
    topic = f"fanout-{n}"
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:

        async def gql(query: str, **variables: Any) -> Any:
            answer = await http.post("/graphql", json={"query": query, "variables": variables})
            return answer.json()["data"]

        rss_before = procs.memory_mb([pid])[1]
        subscribers = [Subscriber() for _ in range(n)]
        started = time.perf_counter()
        gate = asyncio.Semaphore(200)  # handshakes at once

        async def connect(s: Subscriber) -> None:
            async with gate:
                await s.connect(url, topic)

        await asyncio.gather(*(connect(s) for s in subscribers))

        async def subscribed() -> int:
            answer = await gql("query ($t: String!) { subscribers(topic: $t) }", t=topic)
            return int(answer["subscribers"])

        while await subscribed() < n:  # noqa: ASYNC110 - the count is in another process
            await asyncio.sleep(0.05)
        connect_s = time.perf_counter() - started
        await asyncio.sleep(0.5)
        rss_after = procs.memory_mb([pid])[1]
        cpu_before = procs.cpu_seconds([pid])
        receiving = [asyncio.create_task(s.receive(events)) for s in subscribers]
        started = time.perf_counter()
        await gql(
            "mutation ($t: String!, $c: Int!, $i: Float!) "
            "{ publish(topic: $t, count: $c, interval: $i) }",
            t=topic,
            c=events,
            i=1 / rate,
        )
        await asyncio.wait_for(asyncio.gather(*receiving), timeout=120)
        elapsed = time.perf_counter() - started
        cpu = procs.cpu_seconds([pid]) - cpu_before
        await asyncio.gather(*(s.close() for s in subscribers))
    latencies = [x for s in subscribers for x in s.latencies]
    return {
        "subscribers": n,
        "events": events,
        "publish_rate": rate,
        "connect_s": round(connect_s, 2),
        "rss_before_mb": round(rss_before, 1),
        "rss_after_mb": round(rss_after, 1),
        "kb_per_subscriber": round((rss_after - rss_before) * 1024 / n, 1),
        "deliveries": len(latencies),
        "deliveries_per_s": round(len(latencies) / elapsed),
        "gateway_cpu_s": round(cpu, 2),
        "gateway_cpu_us_per_delivery": round(cpu * 1e6 / max(1, len(latencies)), 1),
        "latency_ms": {
            "p50": round(percentile(latencies, 0.50) * 1000, 1),
            "p99": round(percentile(latencies, 0.99) * 1000, 1),
            "max": round(max(latencies) * 1000, 1),
            "mean": round(statistics.fmean(latencies) * 1000, 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", default="100,1000,5000", help="comma-separated N")
    parser.add_argument("--events", type=int, default=10, help="events published per N")
    parser.add_argument("--rate", type=float, default=5.0, help="events per second")
    parser.add_argument(
        "--no-compression",
        action="store_true",
        help="clients offer no permessage-deflate (browsers do offer it)",
    )
    args = parser.parse_args()
    global COMPRESSION
    COMPRESSION = None if args.no_compression else "deflate"
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tmp = BENCH / "results" / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "fanout.yaml"
    config.write_text(CONFIG)
    env = targets.clean_env({"PYTHONPATH": str(BENCH)})
    gateway = procs.start_managed(
        "graftql-fanout",
        targets.graftql_argv(str(config), PORT),
        port=PORT,
        cwd=BENCH,
        env=env,
        log_dir=tmp,
    )
    results = []
    try:
        for n in (int(x) for x in args.subscribers.split(",")):
            result = asyncio.run(
                run_one(f"http://127.0.0.1:{PORT}", gateway.pid, n, args.events, args.rate)
            )
            print(json.dumps(result), flush=True)
            results.append(result)
    finally:
        gateway.stop()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = BENCH / "results" / f"fanout-{stamp}.json"
    out.write_text(
        json.dumps({"when": stamp, "loadavg": procs.loadavg(), "results": results}, indent=2)
    )
    print(f"\nwrote {out}\n")
    print(
        "| subscribers | events x rate | connect | KB / subscriber | deliveries/s "
        "| CPU us / delivery | p50 | p99 | max |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        lat = r["latency_ms"]
        print(
            f"| {r['subscribers']} | {r['events']} x {r['publish_rate']:g}/s | {r['connect_s']} s "
            f"| {r['kb_per_subscriber']} | {r['deliveries_per_s']} "
            f"| {r['gateway_cpu_us_per_delivery']} "
            f"| {lat['p50']} ms | {lat['p99']} ms | {lat['max']} ms |"
        )


if __name__ == "__main__":
    main()
