"""Shared machinery for the demo upstream services: accounting, chaos, admin routes.

Every demo service is a Starlette app built by :func:`create_service_app`, which wraps the
service's own routes in an ASGI middleware driven by a :class:`ServiceControl`. The control
object is what lets tests and the demo observe what the gateway actually sent upstream:

* it counts requests per ``"METHOD /route/template"`` and keeps a bounded log of each request
  exactly as it arrived on the wire (raw, still percent-encoded path; raw query; headers);
* it injects chaos: fixed latency, and seeded, reproducible failures and slow requests;
* it runs the service's credential check ("guard") after counting, so rejected requests are
  still visible in the statistics.

Admin endpoints (``/__stats``, ``/__requests``, ``/__reset``, ``/__chaos``) and ``/healthz``
bypass all of that: they are not counted, not logged, not delayed and need no credentials.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_LOG_SIZE: Final = 500
MAX_LATENCY_MS: Final = 60_000
ADMIN_PREFIX: Final = "/__"
HEALTH_PATH: Final = "/healthz"
UNMATCHED: Final = "<unmatched>"

JSONObject = dict[str, Any]
# Builds a service-specific error body (JSON or XML) from (status, code, message).
ErrorResponder = Callable[[int, str, str], Response]
# Checks credentials; returns a rejection response, or None to let the request through.
Guard = Callable[[Request], Awaitable[Response | None]]


class ChaosError(ValueError):
    """Raised for invalid chaos settings; the message is safe to show to the caller."""


@dataclass(frozen=True, slots=True)
class ChaosSettings:
    """What a service does to every counted request.

    ``latency_ms`` delays every request; a seeded share ``slow_rate`` of them waits ``slow_ms``
    more; a seeded share ``failure_rate`` is answered with ``failure_status``. Both shares are
    drawn from one random generator seeded with ``seed``, once per request in arrival order:
    first the slow draw (only while ``slow_rate > 0``), then the failure draw (only while
    ``failure_rate > 0``); see :func:`draw_chaos`.
    """

    latency_ms: int = 0
    failure_rate: float = 0.0
    failure_status: int = 503
    seed: int = 0
    slow_rate: float = 0.0
    slow_ms: int = 0

    def __post_init__(self) -> None:
        _check_int("latency_ms", self.latency_ms, 0, MAX_LATENCY_MS)
        _check_int("failure_status", self.failure_status, 400, 599)
        _check_int("seed", self.seed, -(2**63), 2**63 - 1)
        _check_int("slow_ms", self.slow_ms, 0, MAX_LATENCY_MS)
        # JSON "1" arrives as an int; store a float so GET /__chaos always shows one type.
        object.__setattr__(self, "failure_rate", _check_rate("failure_rate", self.failure_rate))
        object.__setattr__(self, "slow_rate", _check_rate("slow_rate", self.slow_rate))

    def updated(self, changes: Mapping[str, object]) -> ChaosSettings:
        """Return a copy with ``changes`` applied; unknown keys and bad values raise."""
        unknown = set(changes) - set(self.__dataclass_fields__)
        if unknown:
            raise ChaosError(f"unknown chaos setting(s): {', '.join(sorted(unknown))}")
        return replace(self, **changes)  # type: ignore[arg-type]  # values checked above

    def to_json(self) -> JSONObject:
        return asdict(self)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ChaosError(f"{name} must be an integer between {low} and {high}")


def _check_rate(name: str, value: object) -> float:
    # bool is an int subclass; "failure_rate": true is a client bug, not 1.0.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ChaosError(f"{name} must be a number between 0 and 1")
    return float(value)


@dataclass(frozen=True, slots=True)
class ChaosDraw:
    """What chaos does to one request: how long it waits (``latency_ms``, plus ``slow_ms`` when
    it is one of the slow share), and the status to fail with (None: handle it normally)."""

    latency_ms: int = 0
    slow: bool = False
    failure_status: int | None = None


def draw_chaos(settings: ChaosSettings, rng: random.Random) -> ChaosDraw:
    """One request's draws from ``rng``: slow first, then failure, each only when enabled.

    Drawing only for enabled shares keeps each one's sequence predictable from the seed: with
    only failures on, request *n* fails exactly when the seed's *n*-th number is below the rate.
    Replaying this over a fresh ``random.Random(seed)`` reproduces what a service did to its
    first requests after a reset or a chaos change.
    """
    slow = settings.slow_rate > 0 and rng.random() < settings.slow_rate
    failure: int | None = None
    if settings.failure_rate > 0 and rng.random() < settings.failure_rate:
        failure = settings.failure_status
    latency_ms = settings.latency_ms + (settings.slow_ms if slow else 0)
    return ChaosDraw(latency_ms, slow, failure)


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    method: str
    path: str
    query: str
    headers: Mapping[str, str]

    def to_json(self) -> JSONObject:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": dict(self.headers),
        }


def raw_path(scope: Scope) -> str:
    """The request path exactly as received (still percent-encoded), without the query."""
    raw: bytes | None = scope.get("raw_path")
    if raw is None:  # servers may omit raw_path; the decoded path is the best we have
        return str(scope["path"])
    return raw.decode("latin-1").partition("?")[0]


def raw_query(scope: Scope) -> str:
    return bytes(scope.get("query_string", b"")).decode("latin-1")


class ServiceControl:
    """Request accounting and chaos settings for one service; safe to share across threads."""

    def __init__(
        self,
        name: str,
        *,
        latency_ms: int = 0,
        failure_rate: float = 0.0,
        failure_status: int = 503,
        seed: int = 0,
        slow_rate: float = 0.0,
        slow_ms: int = 0,
    ) -> None:
        self.name = name
        self._defaults = ChaosSettings(
            latency_ms, failure_rate, failure_status, seed, slow_rate, slow_ms
        )
        # The HTTP server runs in its own thread for sync tests, while tests may inspect the
        # control directly, so every mutation happens under this lock.
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._log: deque[LoggedRequest] = deque(maxlen=REQUEST_LOG_SIZE)
        self._chaos = self._defaults
        self._rng = random.Random(seed)

    @property
    def chaos(self) -> ChaosSettings:
        return self._chaos

    def set_chaos(self, settings: ChaosSettings) -> None:
        """Replace the chaos settings and reseed, so a run after each call is reproducible."""
        with self._lock:
            self._chaos = settings
            self._rng = random.Random(settings.seed)

    def update_chaos(self, changes: Mapping[str, object]) -> ChaosSettings:
        settings = self._chaos.updated(changes)
        self.set_chaos(settings)
        return settings

    def record(self, route_key: str, scope: Scope) -> None:
        headers: dict[str, str] = {}
        for name_bytes, value_bytes in scope.get("headers", []):
            name = name_bytes.decode("latin-1").lower()
            value = value_bytes.decode("latin-1")
            # Repeated headers are folded the way RFC 9110 allows for list-valued fields.
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        entry = LoggedRequest(scope["method"], raw_path(scope), raw_query(scope), headers)
        with self._lock:
            self._counts[route_key] += 1
            self._log.append(entry)

    def roll(self) -> ChaosDraw:
        """Decide what chaos does to this request: how long it waits and whether it fails."""
        with self._lock:
            # Both draws under one lock: concurrent requests never interleave their draws, so
            # the sequence of outcomes depends only on the seed and the order of arrival.
            return draw_chaos(self._chaos, self._rng)

    def roll_failure(self) -> int | None:
        """Decide whether this request fails; returns the status to fail with, or None.

        The same draws as :meth:`roll` (a slow draw too, while slow requests are on)."""
        return self.roll().failure_status

    def count(self, route_key: str) -> int:
        with self._lock:
            return self._counts[route_key]

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def stats(self) -> JSONObject:
        with self._lock:
            counts = dict(self._counts)
        return {"service": self.name, "total": sum(counts.values()), "requests": counts}

    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    def reset(self) -> None:
        """Forget counters and the log, and put chaos back to the construction defaults."""
        with self._lock:
            self._counts.clear()
            self._log.clear()
        self.set_chaos(self._defaults)


def is_unaccounted(path: str) -> bool:
    """Admin and health endpoints are neither counted, logged, delayed nor guarded."""
    return path.startswith(ADMIN_PREFIX) or path == HEALTH_PATH


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The matched route's path template, e.g. "/customers/{id}", or "<unmatched>".

    A partial match (right path, wrong method) still names the template: the method part of the
    key already tells the two apart, and the template is more useful than "<unmatched>".
    """
    partial: str | None = None
    for route in routes:
        match, _ = route.matches(scope)
        path = getattr(route, "path", None)
        if match is Match.FULL and isinstance(path, str):
            return path
        if match is Match.PARTIAL and partial is None and isinstance(path, str):
            partial = path
    return partial if partial is not None else UNMATCHED


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay_receive(body: bytes, receive: Receive) -> Receive:
    """A receive callable that hands ``body`` out once, then defers to the real one."""
    sent = False

    async def _receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return _receive


class ControlMiddleware:
    """ASGI middleware: count and log, apply latency, inject failures, then run the guard."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        control: ServiceControl,
        routes: Sequence[BaseRoute],
        error_response: ErrorResponder,
        guard: Guard | None = None,
    ) -> None:
        self.app = app
        self.control = control
        self.routes = routes
        self.error_response = error_response
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_unaccounted(scope["path"]):
            await self.app(scope, receive, send)
            return
        self.control.record(f"{scope['method']} {route_template(self.routes, scope)}", scope)
        # Drawn on arrival, before any waiting, so the outcomes follow the arrival order.
        draw = self.control.roll()
        if draw.latency_ms:
            await asyncio.sleep(draw.latency_ms / 1000)
        failure_status = draw.failure_status
        if failure_status is not None:
            response = self.error_response(failure_status, "injected_failure", "injected by chaos")
            await response(scope, receive, send)
            return
        if self.guard is not None:
            # The guard may need the body (HMAC signatures cover it), so buffer it once and
            # replay it both to the guard and to the route.
            body = await read_body(receive)
            denial = await self.guard(Request(scope, replay_receive(body, receive)))
            if denial is not None:
                await denial(scope, receive, send)
                return
            receive = replay_receive(body, receive)
        await self.app(scope, receive, send)


def admin_routes(control: ServiceControl) -> list[Route]:
    async def stats(_: Request) -> Response:
        return JSONResponse(control.stats())

    async def requests(_: Request) -> Response:
        return JSONResponse({"requests": [entry.to_json() for entry in control.requests()]})

    async def reset(_: Request) -> Response:
        control.reset()
        return JSONResponse({"ok": True})

    async def get_chaos(_: Request) -> Response:
        return JSONResponse(control.chaos.to_json())

    async def post_chaos(request: Request) -> Response:
        try:
            changes = json.loads(await request.body() or b"{}")
        except ValueError:
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
        if not isinstance(changes, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
        try:
            settings = control.update_chaos(changes)
        except ChaosError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(settings.to_json())

    return [
        Route("/__stats", stats, methods=["GET"]),
        Route("/__requests", requests, methods=["GET"]),
        Route("/__reset", reset, methods=["POST"]),
        Route("/__chaos", get_chaos, methods=["GET"]),
        Route("/__chaos", post_chaos, methods=["POST"]),
    ]


async def _healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_service_app(
    control: ServiceControl,
    routes: Sequence[BaseRoute],
    *,
    error_response: ErrorResponder,
    guard: Guard | None = None,
) -> Starlette:
    """Assemble a demo service: admin + health routes, the service routes, the middleware.

    ``error_response`` renders routing errors (404/405) and injected failures in the service's
    own error format, so a gateway sees the same shape it would get from the real upstream.
    """

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        response = error_response(exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    app = Starlette(
        routes=[*admin_routes(control), Route(HEALTH_PATH, _healthz, methods=["GET"]), *routes],
        middleware=[
            Middleware(
                ControlMiddleware,
                control=control,
                routes=routes,
                error_response=error_response,
                guard=guard,
            )
        ],
        exception_handlers={HTTPException: http_error},
    )
    app.state.control = control
    return app


def query_list(request: Request, name: str) -> list[str] | None:
    """Ids from ``?name=a,b`` and/or repeated ``?name=a&name=b``; None if the param is absent.

    Empty items (``a,,b`` or a trailing comma) are dropped.
    """
    values = request.query_params.getlist(name)
    if not values:
        return None
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def parse_bounded_int(raw: str | None, *, name: str, default: int, low: int, high: int) -> int:
    """Parse a strictly decimal query parameter within [low, high]; ValueError on bad input."""
    if raw is None:
        return default
    # isdecimal() alone accepts non-ASCII digits; the length cap keeps int() cheap.
    if not (raw.isascii() and raw.isdecimal() and len(raw) <= 9):
        raise ValueError(f"{name} must be an integer between {low} and {high}")
    value = int(raw)
    if not low <= value <= high:
        raise ValueError(f"{name} must be an integer between {low} and {high}")
    return value
