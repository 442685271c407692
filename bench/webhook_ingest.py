"""Webhook ingest rate with the durable inbox: one ``graftql serve`` process, a SQLite inbox
(WAL, synchronous=FULL), the in-memory bus; a client posting signed Standard Webhooks, each a
new event, ``--concurrency`` at a time for ``--duration`` seconds.

    .venv/bin/python bench/webhook_ingest.py                 # 10 s at concurrency 16
    .venv/bin/python bench/webhook_ingest.py --duration 5 --concurrency 48
    .venv/bin/python bench/webhook_ingest.py --store-only   # the inbox's store, no HTTP

Reports: acknowledged webhooks per second (2xx = durably stored), client latency p50/p99 (send
to acknowledgement), the gateway's CPU per webhook, and how long after the last
acknowledgement the inbox had processed (published) every event, read from /metrics. The
client (which signs every delivery) runs on the same machine and takes CPU from the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

SECRET = "whsec_" + base64.b64encode(b"graftql bench webhook secret").decode()

CONFIG = """
schema: graftql.demo.schema:schema
server: {{host: 127.0.0.1, port: {port}, env: production, log_format: json}}
events:
  inbox: {{path: "{inbox}"}}
webhooks:
  bench:
    scheme: standard
    secrets: ["${{BENCH_WEBHOOK_SECRET}}"]
    topic: "payment.{{data.customerId}}"
"""


def signed(n: int) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps({"type": "payment.updated", "data": {"id": f"p{n}", "customerId": "c1"}})
    msg_id, ts = f"msg_{n}", str(int(time.time()))
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return body, {
        "webhook-id": msg_id,
        "webhook-timestamp": ts,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
        "content-type": "application/json",
    }


_COUNTER = iter(range(10**9))  # event numbers: every delivery of the run is a new event


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def run(url: str, duration: float, concurrency: int) -> tuple[int, list[float], float]:
    latencies: list[float] = []
    stop_at = time.monotonic() + duration
    failures = 0

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal failures
        while time.monotonic() < stop_at:
            body, headers = signed(next(_COUNTER))
            started = time.perf_counter()
            answer = await client.post(f"{url}/webhooks/bench", content=body, headers=headers)
            if answer.status_code == 200:
                latencies.append(time.perf_counter() - started)
            else:
                failures += 1
                if failures == 1:
                    print(f"first non-2xx: {answer.status_code} {answer.text[:200]}")

    started = time.monotonic()
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
    return failures, latencies, time.monotonic() - started


async def drained(url: str, expected: int) -> float:
    """Seconds until /metrics shows every acknowledged event processed."""
    started = time.monotonic()
    async with httpx.AsyncClient() as client:
        while time.monotonic() - started < 120:
            text = (await client.get(f"{url}/metrics")).text
            if metric(text, "graftql_webhooks_processed_total") >= expected:
                return time.monotonic() - started
            await asyncio.sleep(0.05)
    raise RuntimeError("the inbox did not drain within 120 s")


async def store_only(concurrency: int, count: int) -> float:
    """The SQLite store alone (no HTTP): durable puts per second at ``concurrency``."""
    from graftql.events.stores import InboxEvent, SqliteStore

    with tempfile.TemporaryDirectory(prefix="graftql-bench-") as tmp:
        store = SqliteStore(Path(tmp, "inbox.sqlite3"))
        await store.open()
        per_writer = count // concurrency

        async def writer(k: int) -> None:
            for i in range(per_writer):
                event = InboxEvent("bench", f"{k}-{i}", "t", {"n": i})
                await store.put(event, time.time())

        started = time.perf_counter()
        await asyncio.gather(*(writer(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - started
        await store.close()
    return per_writer * concurrency / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument(
        "--store-only", action="store_true", help="measure the SQLite store alone, no HTTP"
    )
    args = parser.parse_args()
    if args.store_only:
        rate = asyncio.run(store_only(args.concurrency, 4000))
        print(f"SQLite store alone: {rate:.0f} durable puts/s at concurrency {args.concurrency}")
        return 0
    if not args.port:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            args.port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="graftql-bench-") as tmp:
        config = Path(tmp, "gateway.yaml")
        config.write_text(CONFIG.format(port=args.port, inbox=Path(tmp, "inbox.sqlite3")))
        log = Path(tmp, "gateway.log").open("wb")
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "graftql.cli", "serve", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "BENCH_WEBHOOK_SECRET": SECRET},
        )
        url = f"http://127.0.0.1:{args.port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                raise RuntimeError("the gateway did not start")
            asyncio.run(run(url, 1.0, 2))  # warm-up
            warm = metric(httpx.get(f"{url}/metrics").text, "graftql_webhooks_received_total")
            cpu_before = cpu_seconds(process.pid)
            failures, latencies, elapsed = asyncio.run(run(url, args.duration, args.concurrency))
            drain = asyncio.run(drained(url, int(warm) + len(latencies)))
            cpu = cpu_seconds(process.pid) - cpu_before
        finally:
            process.terminate()
            process.wait(15)
            log.close()
    quantiles = statistics.quantiles(latencies, n=100)
    print(
        f"acknowledged {len(latencies)} webhooks in {elapsed:.1f} s at concurrency "
        f"{args.concurrency}: {len(latencies) / elapsed:.0f}/s; p50 {quantiles[49] * 1000:.1f} ms, "
        f"p99 {quantiles[98] * 1000:.1f} ms; non-2xx {failures}; gateway CPU "
        f"{cpu / max(1, len(latencies)) * 1000:.2f} ms/webhook (ingest + processing); "
        f"all processed {drain:.2f} s after the last acknowledgement"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
