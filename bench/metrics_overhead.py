"""What metrics and the operation log line cost per query: CPU time of the gateway process.

One query that makes one upstream call (``{ item }`` -> ``GET /item`` on a ChaosUpstream that
answers at once), executed in-process through the whole ASGI app (middleware, HTTP handler,
schema, upstream call over loopback), one at a time. The chaos upstream runs in a child process,
so ``time.process_time`` counts the gateway's CPU only.

    .venv/bin/python bench/metrics_overhead.py                    # every variant, 3 rounds
    git worktree add /tmp/before <commit before /metrics>
    .venv/bin/python bench/metrics_overhead.py --before-src /tmp/before/src   # and "before"
    .venv/bin/python bench/metrics_overhead.py --components   # each added piece alone

Variants (each in a fresh process, interleaved round by round; the median is reported):

- ``before``: the checkout given with ``--before-src`` (put first on PYTHONPATH), with no
  metrics key: the code from before /metrics;
- ``metrics-off``: ``server.metrics: false``, operation log lines off (WARNING);
- ``metrics``: ``/metrics`` on (the default), operation log lines off;
- ``metrics+log``: ``/metrics`` on and one JSON log line per operation (to /dev/null).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from asgi import post_graphql

VARIANTS = ("metrics-off", "metrics", "metrics+log")
QUERY = b'{"query": "{ item }"}'


def _chaos(port_out: Any, stop: Any) -> None:  # pragma: no cover - a child process
    from graftql.testing import ChaosUpstream, Respond

    with ChaosUpstream().running() as chaos:
        chaos.route("GET /item", Respond(json={"id": 1, "name": "Ada"}))
        port_out.send(chaos.url)
        stop.wait()


async def _run(variant: str, url: str, warmup: int, count: int) -> dict[str, float]:
    import logging

    import strawberry

    from graftql import Context, GatewaySchema
    from graftql.config import parse_config
    from graftql.server import create_app

    @strawberry.type
    class Query:
        @strawberry.field
        async def item(self, info: strawberry.Info[Context, None]) -> str:
            return str(await info.context.upstreams.rest("svc").get("/item"))

    server: dict[str, Any] = {"env": "production"}
    if variant != "before":
        server["metrics"] = variant != "metrics-off"
    config = parse_config(
        {"schema": "x:y", "server": server, "upstreams": {"svc": {"kind": "rest", "url": url}}}
    )
    if variant == "metrics+log":
        from graftql.server.logs import configure_logging

        devnull = open(os.devnull, "w")  # noqa: ASYNC230 - once, before measuring
        configure_logging(config, "info", stream=devnull)
    else:
        logging.basicConfig(level=logging.WARNING)
    app = create_app(config, GatewaySchema(query=Query))
    from graftql.server.process import tune_gc

    tune_gc()  # as graftql serve does; also keeps full collections out of the measurement

    async def one() -> None:
        status, _ = await post_graphql(app, QUERY)
        assert status == 200

    async with app.router.lifespan_context(app):
        for _ in range(warmup):
            await one()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(count):
            await one()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_us_per_query": cpu / count * 1e6, "queries_per_s": count / wall}


async def _components(repeat: int = 5, count: int = 10_000) -> None:
    """Each added piece alone, best of ``repeat`` runs of ``count`` (microseconds each)."""
    import io
    import logging

    import strawberry

    from graftql import GatewaySchema
    from graftql.config import parse_config
    from graftql.schema.observe import OperationReport, count_upstream_calls
    from graftql.server.logs import configure_logging, log_operation
    from graftql.server.metrics import GatewayMetrics
    from graftql.server.request_id import RequestId
    from graftql.upstreams import Upstreams, events

    @strawberry.type
    class Query:
        @strawberry.field
        def hello(self) -> str:
            return "hi"

    async def best(step: Any) -> float:
        for _ in range(count // 10):  # warm up: caches, allocator
            await step()
        times = []
        for _ in range(repeat):
            started = time.process_time()
            for _ in range(count):
                await step()
            times.append((time.process_time() - started) / count * 1e6)
        return min(times)

    config = parse_config(
        {
            "schema": "x:y",
            "server": {"log_format": "json"},
            "upstreams": {"svc": {"kind": "rest", "url": "http://127.0.0.1:9"}},
        }
    )

    async def bare(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def nothing(message: Any = None) -> Any:
        return message

    scope = {"type": "http", "headers": [(b"content-type", b"application/json")]}
    middleware = RequestId(bare)
    results = {
        "ASGI app alone": await best(lambda: bare(scope, nothing, nothing)),
        "with RequestId": await best(lambda: middleware(scope, nothing, nothing)),
    }
    plain = GatewaySchema(query=Query).build(config.server)
    observed = GatewaySchema(query=Query).build(config.server, report=lambda report: None)
    plain_runs, observed_runs = [], []
    for _ in range(4):  # alternated, the best of each: the machine's noise only ever adds
        plain_runs.append(await best(lambda: plain.execute("{ hello }")))
        observed_runs.append(await best(lambda: observed.execute("{ hello }")))
    results["execute { hello }"] = min(plain_runs)
    results["... with ObserveOperations"] = min(observed_runs)

    async def attempt() -> None:
        if events.listening():
            seconds = time.monotonic() - time.monotonic()
            events.emit(
                "attempt", "svc", attempt=1, method="GET", outcome="ok", status=200, seconds=seconds
            )

    events._listeners.clear()
    results["attempt event, no listener"] = await best(attempt)
    count_upstream_calls()
    metrics = GatewayMetrics(Upstreams.from_config(config))
    metrics.start()
    results["attempt event, summary + metrics"] = await best(attempt)
    report = OperationReport("query", "Order", "ok", 0.004, {"svc": {"calls": 1, "errors": 0}})

    async def observe() -> None:
        metrics.observe_operation(report)

    async def log() -> None:
        log_operation(report)

    results["metrics per operation"] = await best(observe)
    configure_logging(config, "warning", stream=io.StringIO())
    results["log line, level warning (off)"] = await best(log)
    devnull = open(os.devnull, "w")  # noqa: ASYNC230 - once, before measuring
    configure_logging(config, "info", stream=devnull)
    results["log line, JSON, redacted"] = await best(log)
    await metrics.stop()
    logging.getLogger().handlers.clear()
    for name, micros in results.items():
        print(f"{name:36} {micros:7.2f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", choices=("before", *VARIANTS))
    parser.add_argument("--url", help="(internal) the chaos upstream")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--before-src", help="a src/ directory from before /metrics")
    parser.add_argument("--components", action="store_true", help="each added piece alone")
    args = parser.parse_args()
    if args.components:
        asyncio.run(_components())
        return
    if args.variant and args.url:  # one measurement, in this process
        result = asyncio.run(_run(args.variant, args.url, args.warmup, args.count))
        print(json.dumps(result))
        return

    receiver, sender = multiprocessing.Pipe(duplex=False)
    stop = multiprocessing.Event()
    chaos = multiprocessing.Process(target=_chaos, args=(sender, stop), daemon=True)
    chaos.start()
    url = receiver.recv()
    variants = [args.variant] if args.variant else list(VARIANTS)
    if args.before_src and "before" not in variants:
        variants.insert(0, "before")
    results: dict[str, list[dict[str, float]]] = {variant: [] for variant in variants}
    try:
        for _ in range(args.rounds):
            for variant in variants:
                command = [sys.executable, __file__, "--variant", variant, "--url", url]
                command += ["--count", str(args.count), "--warmup", str(args.warmup)]
                env = dict(os.environ)
                if variant == "before" and args.before_src:
                    env["PYTHONPATH"] = os.pathsep.join(
                        filter(None, [args.before_src, env.get("PYTHONPATH")])
                    )
                out = subprocess.run(  # noqa: S603 - our own interpreter and script
                    command, capture_output=True, text=True, check=True, env=env
                )
                results[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        stop.set()
        chaos.join(5)
    print(f"{args.count} queries per run, median (min-max) of {args.rounds} runs")
    for variant, runs in results.items():
        cpus = [run["cpu_us_per_query"] for run in runs]
        rate = statistics.median(run["queries_per_s"] for run in runs)
        print(
            f"{variant:12}  {statistics.median(cpus):7.1f} us CPU per query "
            f"({min(cpus):.0f}-{max(cpus):.0f})  {rate:7.0f} queries/s"
        )


if __name__ == "__main__":
    main()
