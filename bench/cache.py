"""The response cache and in-flight dedup on the storefront query: upstream calls and requests/s.

Not part of ``run.py``. The four demo services run in one process (``storefront.py``, 5 ms per
counted call, ports 8131-8134) and three ``graftql serve --env production`` processes run the
demo's gateway.yaml side by side (ports 8135-8138):

- ``off``: no ``cache:`` block, in-flight dedup on (the default; the baseline);
- ``nodedup``: no cache and ``dedup: false`` on every upstream: each concurrent query makes
  its own calls, so the concurrent rounds show what sharing identical calls in flight saves;
- ``cold``: every upstream has ``cache: {ttl: 0}``, so every lookup misses and nothing is stored
  (the demo services send no validators): the cache's cost on a query that always misses;
- ``warm``: every upstream has ``cache: {ttl: 300}``, memory backend, and the cache was filled
  by the first query.

For each: the upstream calls (services' ``/__stats``) of the first query and of 50 sequential
queries after it; the median latency of one query at a time (the gateways take turns). Then
``--rounds`` rounds in which each gateway in turn gets a closed loop of ``--concurrency``
clients for ``--duration`` seconds (every answer checked against the expected one), counting
the upstream calls per answered query under that concurrency;
interleaving makes a noisy shared machine hit all three alike; req/s is the median.
``python bench/cache.py`` takes about 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import procs
import storefront
import targets
import yaml

from graftql.demo.runner import EXAMPLE_QUERY

BENCH = Path(__file__).resolve().parent
TMP = BENCH / "results" / "tmp"
BASE_PORT = 8130  # services on 8131-8134
SEQUENTIAL = 50
# mode: (the cache block of every upstream, in-flight dedup on)
MODES: dict[str, tuple[dict[str, int] | None, bool]] = {
    "off": (None, True),
    "nodedup": (None, False),
    "cold": ({"ttl": 0}, True),
    "warm": ({"ttl": 300}, True),
}
AUTH = {"authorization": storefront.authorization()}
PORTS = {"off": 8135, "nodedup": 8138, "cold": 8136, "warm": 8137}


def write_config(mode: str) -> Path:
    config = yaml.safe_load(Path(storefront.gateway_yaml()).read_text())
    cache, dedup = MODES[mode]
    for upstream in config["upstreams"].values():
        if cache is not None:
            upstream["cache"] = cache
        if not dedup:
            upstream["dedup"] = False
    path = TMP / f"cache-{mode}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def calls(urls: dict[str, str]) -> int:
    counts = (httpx.get(f"{url}/__stats").json()["requests"] for url in urls.values())
    return sum(sum(c.values()) for c in counts)


def reset(urls: dict[str, str]) -> None:
    for url in urls.values():
        httpx.post(f"{url}/__reset").raise_for_status()
    storefront.apply_latency(urls, storefront.LATENCY_MS)


async def closed_loop(
    port: int, concurrency: int, duration: float, expected: Any
) -> tuple[int, int, float]:
    """(answers, wrong answers, seconds) of ``concurrency`` clients asking in a loop."""
    body = {"query": EXAMPLE_QUERY}
    done = wrong = 0
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        limits=limits,
        timeout=10,
        trust_env=False,
        headers=AUTH,
    ) as client:
        stop = time.monotonic() + duration

        async def worker() -> None:
            nonlocal done, wrong
            while time.monotonic() < stop:
                response = await client.post("/graphql", json=body)
                done += 1
                if response.status_code != 200 or response.json() != expected:
                    wrong += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done, wrong, time.monotonic() - started


def start_gateway(mode: str) -> subprocess.Popen[bytes]:
    env = targets.clean_env(storefront.gateway_env(BASE_PORT))
    argv = targets.graftql_argv(str(write_config(mode)), PORTS[mode], "--env", "production")
    log = (TMP / f"cache-{mode}.log").open("wb")
    return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603


def count(mode: str, urls: dict[str, str]) -> dict[str, Any]:
    """Upstream calls of the first query, then per query over the next ``SEQUENTIAL``."""
    expected = storefront.expected_answer()
    url = f"http://127.0.0.1:{PORTS[mode]}/graphql"
    query = {"query": EXAMPLE_QUERY}
    reset(urls)
    first = httpx.post(url, json=query, timeout=10, headers=AUTH)
    assert first.json() == expected, first.text
    first_calls = calls(urls)  # with the payments OAuth2 token fetch
    reset(urls)
    for _ in range(SEQUENTIAL):
        assert httpx.post(url, json=query, timeout=10, headers=AUTH).json() == expected
    return {
        "mode": mode,
        "first_query_calls": first_calls,
        "calls_per_query": round(calls(urls) / SEQUENTIAL, 2),
    }


def latency() -> dict[str, float]:
    """Median ms of one query at a time; the gateways take turns, so noise hits all alike."""
    expected = storefront.expected_answer()
    query = {"query": EXAMPLE_QUERY}
    seen: dict[str, list[float]] = {mode: [] for mode in MODES}
    with httpx.Client(timeout=10, trust_env=False, headers=AUTH) as client:
        for _ in range(SEQUENTIAL):
            for mode in MODES:
                started = time.perf_counter()
                answer = client.post(f"http://127.0.0.1:{PORTS[mode]}/graphql", json=query)
                seen[mode].append((time.perf_counter() - started) * 1000)
                assert answer.json() == expected
    return {mode: round(statistics.median(ms), 2) for mode, ms in seen.items()}


def throughput(
    args: argparse.Namespace, pids: dict[str, int], urls: dict[str, str]
) -> dict[str, dict[str, Any]]:
    expected = storefront.expected_answer()
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    cpu = dict.fromkeys(MODES, 0.0)
    wrong = dict.fromkeys(MODES, 0)
    done = dict.fromkeys(MODES, 0)
    upstream_calls = dict.fromkeys(MODES, 0)
    for _ in range(args.rounds):
        for mode in MODES:
            tree = procs.process_tree(pids[mode])
            before = procs.cpu_seconds(tree)
            calls_before = calls(urls)
            n, bad, seconds = asyncio.run(
                closed_loop(PORTS[mode], args.concurrency, args.duration, expected)
            )
            upstream_calls[mode] += calls(urls) - calls_before
            cpu[mode] += procs.cpu_seconds(tree) - before
            rates[mode].append(n / seconds)
            wrong[mode] += bad
            done[mode] += n
    return {
        mode: {
            "rps": round(statistics.median(rates[mode]), 1),
            "rps_rounds": [round(r, 1) for r in rates[mode]],
            # The gateway process' CPU per query: steadier than req/s on a shared machine.
            "cpu_ms_per_query": round(cpu[mode] * 1000 / max(done[mode], 1), 2),
            "requests": done[mode],
            "wrong": wrong[mode],
            "calls_per_query_concurrent": round(upstream_calls[mode] / max(done[mode], 1), 2),
        }
        for mode in MODES
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per closed loop")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    TMP.mkdir(parents=True, exist_ok=True)
    urls = storefront.service_urls(BASE_PORT)
    argv = [sys.executable, str(BENCH / "storefront.py"), "--base-port", str(BASE_PORT)]
    services = subprocess.Popen(  # noqa: S603
        [*argv, "--latency-ms", str(storefront.LATENCY_MS)],
        env=targets.clean_env(),
        stdout=subprocess.DEVNULL,
    )
    gateways = []
    try:
        for port in range(BASE_PORT + 1, BASE_PORT + 1 + len(urls)):
            procs.wait_port(port, 20, services)
        gateways = [start_gateway(mode) for mode in MODES]
        for mode, gateway in zip(MODES, gateways, strict=True):
            procs.wait_port(PORTS[mode], 20, gateway)
        results = [count(mode, urls) for mode in MODES]
        medians = latency()
        for result in results:
            result["sequential_p50_ms"] = medians[result["mode"]]
        reset(urls)
        pids = {m: g.pid for m, g in zip(MODES, gateways, strict=True)}
        rates = throughput(args, pids, urls)
        for result in results:
            result.update(rates[result["mode"]])
    finally:
        for process in [*gateways, services]:
            process.terminate()
            process.wait(10)
    print(f"\nstorefront query, services {storefront.LATENCY_MS} ms per call, c={args.concurrency}")
    print(
        "| mode | upstream calls, first query | calls/query after it | p50 ms, c=1 "
        f"| calls/query at c={args.concurrency} | req/s (median) | gateway CPU ms/query | wrong |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['mode']} | {r['first_query_calls']} | {r['calls_per_query']} "
            f"| {r['sequential_p50_ms']} | {r['calls_per_query_concurrent']} | {r['rps']} "
            f"| {r['cpu_ms_per_query']} | {r['wrong']} of {r['requests']} |"
        )
    out = BENCH / "results" / f"cache-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    print(f"\nwritten to {out.relative_to(BENCH.parent)}")


if __name__ == "__main__":
    main()
