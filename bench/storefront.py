"""The storefront workload: the README's example query over the four demo services.

The services run in their own process (``python bench/storefront.py --base-port N``: catalog,
crm, payments, shipping on N+1..N+4, every counted call delayed by ``--latency-ms``), and one
``graftql serve`` process runs the demo's gateway.yaml in front of them on port N. The example
query's critical path is three dependent levels of upstream calls (crm customer -> crm orders ->
catalog / payments / shipping in parallel), i.e. 3 x latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import sys
import time
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from targets import Fleet

BASE_PORT = 8100
LATENCY_MS = 5
LEVELS = 3  # dependent upstream levels on the example query's critical path


def expected_answer() -> dict[str, Any]:
    """The example query's answer, derived from the seeded demo data (graftql.demo.data)."""
    from graftql.demo import data

    def money(amount: int) -> dict[str, Any]:
        return {"amount": amount, "currency": data.CURRENCY}

    edges = []
    for order in data.ORDERS_BY_CUSTOMER_ID["c1"][:5]:
        payment = data.PAYMENTS_BY_ORDER_ID.get(order.id)
        ship = data.SHIPMENTS_BY_ORDER_ID.get(order.id)
        lines = []
        for line in order.lines:
            product = data.PRODUCTS_BY_ID[line.product_id]
            reviews = data.REVIEWS_BY_PRODUCT_ID[product.id]
            lines.append(
                {
                    "quantity": line.quantity,
                    "product": {
                        "name": product.name,
                        "price": money(product.price_amount),
                        "reviews": [{"rating": r.rating} for r in reviews],
                    },
                }
            )
        node = {
            "id": order.id,
            "status": order.status.upper(),
            "total": money(order.total_amount),
            "lines": lines,
            "payment": {"status": payment.status.upper()} if payment else None,
            "shipment": (
                {"status": ship.status, "trackingNumber": ship.tracking_number, "eta": ship.eta}
                if ship
                else None
            ),
        }
        edges.append({"node": node})
    customer = data.CUSTOMERS_BY_ID["c1"]
    return {
        "data": {
            "customer": {"name": customer.name, "email": customer.email, "orders": {"edges": edges}}
        }
    }


def service_urls(base_port: int) -> dict[str, str]:
    from graftql.demo.services import SERVICE_NAMES

    return {name: f"http://127.0.0.1:{base_port + i}" for i, name in enumerate(SERVICE_NAMES, 1)}


def gateway_env(base_port: int) -> dict[str, str]:
    """The DEMO_* variables of the demo's gateway.yaml (default credentials, our ports)."""
    from graftql.demo.runner import demo_environment
    from graftql.demo.services import DemoCredentials

    env: dict[str, str] = demo_environment(DemoCredentials.defaults(), service_urls(base_port))
    return env


def authorization() -> str:
    """``Bearer <token>`` of the demo's customer (Ada, c1, whose storefront the example query
    reads): the demo gateway validates inbound JWTs, as a production gateway would, so every
    benchmark request carries one and its validation is part of what is measured."""
    from graftql.demo.runner import demo_config, demo_tokens

    return f"Bearer {demo_tokens(demo_config({}))['customer']}"


def gateway_yaml() -> str:
    return str(files("graftql.demo") / "gateway.yaml")


def apply_latency(urls: dict[str, str], latency_ms: int) -> None:
    """Set (after every /__reset) and check the fixed latency of every service."""
    import httpx

    with httpx.Client(timeout=10, trust_env=False) as client:
        for name, url in urls.items():
            client.post(url + "/__chaos", json={"latency_ms": latency_ms}).raise_for_status()
            got = client.get(url + "/__chaos").json()
            if got.get("latency_ms") != latency_ms or got.get("failure_rate"):
                raise RuntimeError(f"{name}: chaos is {got}, wanted latency {latency_ms} ms only")


def summarize(runs: list[dict[str, Any]], latency_ms: int) -> dict[str, Any]:
    """Medians of the valid runs of one concurrency, plus p50 / critical path."""
    valid = [r for r in runs if r["valid"]]
    out: dict[str, Any] = {"valid_runs": len(valid), "runs": len(runs)}
    if not valid:
        return out
    for key in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_query", "rss_mb"):
        out[key] = statistics.median(r[key] for r in valid)
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in valid)
    names = valid[0]["calls_per_query"]
    out["calls_per_query"] = {
        k: statistics.median(r["calls_per_query"][k] for r in valid) for k in names
    }
    out["critical_path_ms"] = LEVELS * latency_ms
    out["p50_over_critical_path"] = round(out["p50_ms"] / (LEVELS * latency_ms), 3)
    return out


def run_workload(
    fleet: Fleet, rounds: int, duration: float, warmup: float, concs: list[int]
) -> dict[str, Any]:
    """Start services + gateway, verify, count calls, wrk rounds, verify again."""
    import measure
    import procs
    import targets

    from graftql.demo.runner import EXAMPLE_QUERY

    base = BASE_PORT
    urls = service_urls(base)
    argv = [sys.executable, str(Path(__file__).resolve()), "--base-port", str(base)]
    argv += ["--latency-ms", str(LATENCY_MS)]
    fleet.start_process("storefront-services", argv, base + len(urls), targets.clean_env())
    for port in range(base + 1, base + len(urls)):
        procs.wait_port(port, 10)
    env = targets.clean_env(gateway_env(base))
    argv = targets.graftql_argv(gateway_yaml(), base, "--env", "production")
    fleet.start_process("graftql-storefront", argv, base, env)
    apply_latency(urls, LATENCY_MS)
    counters = measure.StatsCounters(urls, after_reset=lambda: apply_latency(urls, LATENCY_MS))
    answer = expected_answer()
    probe = measure.Probe(
        base,
        "POST",
        "/graphql",
        json.dumps({"query": EXAMPLE_QUERY}).encode(),
        targets.expect(answer),
        authorization(),
    )
    result: dict[str, Any] = {
        "latency_ms": LATENCY_MS,
        "critical_path_ms": LEVELS * LATENCY_MS,
        "levels": LEVELS,
        "services_port": base + 1,
    }
    before = measure.verify(probe)  # also fetches the payments OAuth2 token once
    result["verify_before"] = before.__dict__
    print(f"storefront verify: {'OK' if before.ok else 'FAILED ' + before.reason}", flush=True)
    if not before.ok:
        result["failed"] = f"wrong answer before the runs: {before.reason}"
        return result
    result["exact_calls"] = measure.count_calls(probe, counters)
    for name, sc in result["exact_calls"].items():
        print(f"  storefront {name}: calls/query {sc['calls_per_query']}", flush=True)
    pid = fleet.pid("graftql-storefront")
    if pid is None:
        raise procs.HarnessError("the storefront gateway is not running")
    measure.run_wrk(probe, 8, warmup, before.body_bytes)
    measure.settle(counters)
    runs: list[dict[str, Any]] = []
    for rnd in range(rounds):
        for conc in concs:
            rec = measure.measure_run(probe, pid, conc, duration, counters, before)
            rec["round"] = rnd + 1
            rec.pop("calls_detail", None)
            runs.append(rec)
            flag = "" if rec["valid"] else "  INVALID: " + "; ".join(rec["problems"])
            print(
                f"round {rnd + 1} storefront c={conc:<3d} {rec['rps']:8.1f} req/s "
                f"p50={rec['p50_ms']:7.2f}ms p99={rec['p99_ms']:7.2f}ms "
                f"cpu={rec['cpu_ms_per_query']}ms/q calls/q={rec['calls_per_query']}{flag}",
                flush=True,
            )
    after = measure.verify(probe)
    result["verify_after"] = after.__dict__
    if not after.ok:
        result["failed"] = f"wrong answer after the runs: {after.reason}"
    result["runs"] = runs
    result["summary"] = {
        str(c): summarize([r for r in runs if r["conc"] == c], LATENCY_MS) for c in concs
    }
    return result


# --- the services process ----------------------------------------------------------------


async def _serve(base_port: int, latency_ms: int) -> None:
    from graftql.demo.servers import LoopbackServer
    from graftql.demo.services import DemoCredentials, ServiceControl, build_apps

    urls = service_urls(base_port)
    controls = {name: ServiceControl(name, latency_ms=latency_ms) for name in urls}
    apps = build_apps(DemoCredentials.defaults(), controls=controls)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    servers: list[LoopbackServer] = []
    try:
        for i, name in enumerate(urls, 1):
            server = LoopbackServer(apps[name], port=base_port + i)
            servers.append(server)
            await server.start()
        print(f"services up: {urls}, latency {latency_ms} ms", flush=True)
        await stop.wait()
    finally:
        for server in reversed(servers):
            await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="the four storefront demo services, one process")
    parser.add_argument("--base-port", type=int, default=BASE_PORT)
    parser.add_argument("--latency-ms", type=int, default=LATENCY_MS)
    args = parser.parse_args()
    started = time.monotonic()
    asyncio.run(_serve(args.base_port, args.latency_ms))
    print(f"services stopped after {time.monotonic() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
