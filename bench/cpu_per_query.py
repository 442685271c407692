"""The gateway's CPU per query, in-process: for tuning the hot path.

Peers workload (default): the peers' two upstreams (users :4001, posts :4002, from ``--peers``)
run in child processes. ``--workload storefront``: the README's example query, as the demo's
customer, over the four demo services (``storefront.py``, no added latency) with the demo's
gateway.yaml in production mode. In both,
the gateway runs in this process and is called through ASGI directly, one query at a time, so
``time.process_time`` counts the gateway's own CPU: the GraphQL execution, the upstream
clients, JSON. The HTTP server (uvicorn) is not included, which is the point: this isolates what
graftql's code costs, and CPU time is far less disturbed by a busy machine than requests/s.

    .venv/bin/python bench/cpu_per_query.py                  # 5 rounds of 500 queries
    .venv/bin/python bench/cpu_per_query.py --profile 2000   # cProfile: top functions by tottime
    .venv/bin/python bench/cpu_per_query.py --schema naive_schema:schema
    .venv/bin/python bench/cpu_per_query.py --workload storefront --count 200

It does not replace ``run.py``: requests/s and latency against the peers come from there.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import os
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from asgi import post_graphql

HERE = Path(__file__).resolve().parent
QUERY = b'{"query": "{ posts(limit: 50) { id title author { id name } } }"}'


def start_upstreams(peers: Path) -> list[subprocess.Popen[bytes]]:
    python = peers / "venv" / "bin" / "python"
    procs = []
    for module, port in (("users_rest", 4001), ("posts_graphql", 4002)):
        argv = [str(python if python.exists() else sys.executable), "-m", "uvicorn"]
        argv += ["--app-dir", str(peers / "upstreams"), f"{module}:app"]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
        procs.append(subprocess.Popen(argv, cwd=peers, stderr=subprocess.DEVNULL))  # noqa: S603
    import httpx

    for url in ("http://127.0.0.1:4001/__stats", "http://127.0.0.1:4002/__stats"):
        for _ in range(100):
            try:
                httpx.get(url).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise SystemExit(f"upstream at {url} did not start")
    return procs


def start_storefront_services() -> tuple[list[subprocess.Popen[bytes]], dict[str, str]]:
    """The four demo services without added latency, and the gateway's environment for them."""
    import procs
    import storefront

    base = storefront.BASE_PORT + 50  # away from a run.py storefront that may be running
    argv = [sys.executable, str(HERE / "storefront.py"), "--base-port", str(base)]
    proc = subprocess.Popen([*argv, "--latency-ms", "0"], cwd=HERE)  # noqa: S603
    for port in range(base + 1, base + 5):
        procs.wait_port(port, 10)
    return [proc], storefront.gateway_env(base)


def build_app(workload: str, schema_ref: str) -> tuple[Any, bytes, tuple[tuple[bytes, bytes], ...]]:
    """The gateway app, the request body and its extra headers of ``workload``."""
    from graftql.config import load_config
    from graftql.server import create_app

    if workload == "posts":
        module, _, attribute = schema_ref.partition(":")
        schema = getattr(importlib.import_module(module), attribute)
        return create_app(load_config(HERE / "posts.yaml"), schema), QUERY, ()
    import json

    import storefront

    from graftql.demo.runner import EXAMPLE_QUERY

    config = load_config(storefront.gateway_yaml())
    config = config.model_copy(
        update={"server": config.server.model_copy(update={"env": "production"})}
    )
    body = json.dumps({"query": EXAMPLE_QUERY}).encode()
    return create_app(config), body, ((b"authorization", storefront.authorization().encode()),)


async def measure(
    workload: str,
    schema_ref: str,
    rounds: int,
    count: int,
    profile: int,
    sort: str = "tottime",
    dump: Path | None = None,
) -> None:
    from graftql.server.process import tune_gc

    app, query, headers = build_app(workload, schema_ref)
    tune_gc()

    async def one() -> None:
        _, body = await post_graphql(app, query, headers)
        assert b'"errors"' not in body and b'"name"' in body, bytes(body[:300])

    async with app.router.lifespan_context(app):
        for _ in range(200):
            await one()
        if profile < 0:  # for an external sampler: py-spy record --pid ...
            while True:
                await one()
        if profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(profile):
                await one()
            profiler.disable()
            if dump is not None:
                profiler.dump_stats(dump)
            stats = pstats.Stats(profiler)
            stats.sort_stats(sort).print_stats(35)
            return
        per_query = []
        for _ in range(rounds):
            started = time.process_time()
            for _ in range(count):
                await one()
            per_query.append((time.process_time() - started) / count * 1e3)
    name = schema_ref if workload == "posts" else workload
    print(
        f"{name}: CPU per query median {statistics.median(per_query):.3f} ms, "
        f"best {min(per_query):.3f} ms over {rounds} rounds of {count}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=Path, default=Path("/work/peers"))
    parser.add_argument("--workload", choices=("posts", "storefront"), default="posts")
    parser.add_argument("--schema", default="posts_schema:schema", help="posts workload only")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    parser.add_argument("--sort", default="tottime", help="cProfile order: tottime, cumulative")
    parser.add_argument("--dump", type=Path, help="with --profile: also write the pstats file here")
    parser.add_argument(
        "--stock-executor",
        action="store_true",
        help="strawberry's executor and resolver wrappers, no graftql shortcut: the 'before'",
    )
    args = parser.parse_args()
    os.environ.setdefault("BENCH_SCHEMA", args.schema)
    if args.stock_executor:
        from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

        import graftql.schema.builder
        from graftql.schema.executor import LeanExecutionContext

        stock = StrawberryGraphQLCoreExecutionContext
        for name, value in list(vars(LeanExecutionContext).items()):  # every override
            if callable(value) and not name.startswith("__") and hasattr(stock, name):
                setattr(LeanExecutionContext, name, getattr(stock, name))
        graftql.schema.builder.install_direct_resolvers = lambda schema: None  # type: ignore[assignment]
    sys.path.insert(0, str(HERE))
    if args.workload == "posts":
        procs = start_upstreams(args.peers)
    else:
        procs, env = start_storefront_services()
        os.environ.update(env)
    try:
        asyncio.run(
            measure(
                args.workload,
                args.schema,
                args.rounds,
                args.count,
                args.profile,
                args.sort,
                args.dump,
            )
        )
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
