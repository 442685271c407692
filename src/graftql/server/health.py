"""``/healthz`` (the process answers) and ``/readyz`` (the upstreams it needs answer too)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse

from graftql.upstreams import Upstreams

__all__ = ["healthz", "readyz"]


async def healthz(request: Request) -> JSONResponse:
    # Liveness must stay fast and independent of upstreams: a slow upstream is no reason to
    # restart the gateway.
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Probe every upstream at once; 503 while a required one is unreachable."""
    upstreams: Upstreams = request.app.state.upstreams
    names = list(upstreams)
    probes = await asyncio.gather(*(upstreams[name].probe() for name in names))
    report = {}
    ready = True
    for name, probe in zip(names, probes, strict=True):
        upstream = upstreams[name]
        required = upstream.config.required
        if probe.status == "down" and required:
            ready = False
        report[name] = {
            "status": probe.status,
            "kind": upstream.kind,
            "required": required,
            "latency_ms": probe.latency_ms,
            "detail": probe.detail,
            "breaker": upstream.breaker.state if upstream.breaker else "disabled",
        }
        quota = upstream.rate.quota()
        if quota is not None:  # what the upstream's own rate-limit headers last said
            report[name]["quota"] = quota
    body: dict[str, object] = {"status": "ready" if ready else "unready", "upstreams": report}
    if upstreams.shared is not None:
        # Not a reason to be unready: without Redis each replica keeps its own policies.
        body["redis"] = "up" if await upstreams.shared.ping() else "down"
    cache = await upstreams.cache_status()
    if cache is not None:  # degraded: calls bypass the cache; they still succeed
        body["cache"] = cache
    return JSONResponse(
        body,
        status_code=200 if ready else 503,
    )
