"""``/healthz`` (the process answers) and ``/readyz`` (the upstreams it needs answer too).

``/readyz`` also says, per upstream, when a call last succeeded and last failed (with the
failure's error code) and, for OAuth2 client credentials, the token's state; and the health of
the backends beside the upstreams: ``redis`` (shared policies), ``cache``, the event ``bus``
and the webhook ``inbox``. Only a required upstream that is down makes the gateway unready:
queries do not need the bus or the inbox (``realtime`` in the body says what their being down
means). Nothing in it is a URL, a path, a DSN or a credential.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse

from graftql.events import EventBus
from graftql.upstreams import Upstream, Upstreams

__all__ = ["healthz", "readyz"]


async def healthz(request: Request) -> JSONResponse:
    # Liveness must stay fast and independent of upstreams: a slow upstream is no reason to
    # restart the gateway.
    return JSONResponse({"status": "ok"})


def _when(at: float | None, now: float, wall: float) -> dict[str, object] | None:
    """A ``time.monotonic`` instant as an ISO 8601 UTC time and the seconds since."""
    if at is None:
        return None
    ago = max(0.0, now - at)
    stamp = datetime.fromtimestamp(wall - ago, UTC).isoformat(timespec="milliseconds")
    return {"at": stamp.replace("+00:00", "Z"), "seconds_ago": round(ago, 1)}


def _history(upstream: Upstream, now: float, wall: float) -> dict[str, object]:
    success = _when(upstream.last_success, now, wall)
    failure = _when(upstream.last_failure, now, wall)
    if failure is not None:
        failure["code"] = upstream.last_failure_code
    return {"last_success": success, "last_failure": failure}


async def readyz(request: Request) -> JSONResponse:
    """Probe every upstream at once; 503 while a required one is unreachable."""
    state = request.app.state
    upstreams: Upstreams = state.upstreams
    names = list(upstreams)
    probes = await asyncio.gather(*(upstreams[name].probe() for name in names))
    now, wall = time.monotonic(), time.time()
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
            **_history(upstream, now, wall),
        }
        quota = upstream.rate.quota()
        if quota is not None:  # what the upstream's own rate-limit headers last said
            report[name]["quota"] = quota
        token = upstream.token_state()
        if token is not None:  # OAuth2 client credentials
            report[name]["token"] = token
    body: dict[str, object] = {"status": "ready" if ready else "unready", "upstreams": report}
    if upstreams.shared is not None:
        # Not a reason to be unready: without Redis each replica keeps its own policies.
        body["redis"] = "up" if await upstreams.shared.ping() else "down"
    cache = await upstreams.cache_status()
    if cache is not None:  # degraded: calls bypass the cache; they still succeed
        body["cache"] = cache
    body.update(await _realtime(request))
    return JSONResponse(
        body,
        status_code=200 if ready else 503,
    )


async def _realtime(request: Request) -> dict[str, object]:
    """The event bus and the webhook inbox (when webhooks are configured). Neither makes the
    gateway unready: queries and mutations never need them."""
    state = request.app.state
    bus: EventBus | None = getattr(state, "bus", None)
    realtime = getattr(state, "realtime", None)
    inbox = getattr(realtime, "inbox", None)
    found: dict[str, object] = {}
    if bus is not None:
        found["bus"] = await bus.health()
    if inbox is not None:
        found["inbox"] = await inbox.health()
    effects = {
        "bus": "subscriptions receive no events",
        "inbox": "webhooks are answered 503 (their senders retry)",
    }
    down = [name for name, entry in found.items() if _down(entry)]
    if down:
        found["realtime"] = (
            "degraded, the gateway stays ready (queries and mutations do not need it): "
            + "; ".join(f"{name} down, {effects[name]}" for name in down)
        )
    return found


def _down(entry: object) -> bool:
    return isinstance(entry, dict) and entry.get("status") != "up"
