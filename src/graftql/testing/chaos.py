"""``ChaosUpstream``: a scripted, misbehaving HTTP/1.1 upstream on 127.0.0.1.

It runs on a raw ``asyncio`` server (see :mod:`graftql.testing._http`), so it can fail below
HTTP as well as in it. Requests are matched to routes; each route answers with queued
behaviours first (one per request), then with its default. Every request is recorded before it
is answered. Both the scripting and the reading API are safe to use from the test's thread while
the server runs in its background thread.
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
import ssl as _ssl
import threading
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Final

from graftql.testing._http import (
    MAX_HEAD_BYTES,
    BadRequest,
    Exchange,
    ParsedRequest,
    ReceivedRequest,
    encode_head,
    read_request,
)
from graftql.testing.behaviours import Behaviour, Call, Respond

__all__ = ["UNMATCHED", "ChaosUpstream", "Route"]

LOOPBACK: Final = "127.0.0.1"
UNMATCHED: Final = "<unmatched>"
DEFAULT_LOG_SIZE: Final = 10_000
_METHOD: Final = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_STOP_TIMEOUT: Final = 5.0


def _not_found(request: ReceivedRequest) -> Behaviour:
    body = {"error": "no chaos route matches", "method": request.method, "path": request.path}
    return Respond(404, json=body)


def parse_route_spec(spec: str) -> tuple[str | None, str]:
    """``"GET /users/*"`` -> ``("GET", "/users/*")``; ``"/x"`` or ``"* /x"`` -> ``(None, "/x")``."""
    if not isinstance(spec, str):
        raise TypeError(f"a route is a string like 'GET /users/*', got {spec!r}")
    words = spec.split()
    if len(words) == 1:
        method, path = None, words[0]
    elif len(words) == 2:
        method, path = words
    else:
        raise ValueError(f"a route is '[METHOD] /path', got {spec!r}")
    if method == "*":
        method = None
    if method is not None and not _METHOD.match(method):
        raise ValueError(f"invalid method {method!r} in route {spec!r}")
    if not path.startswith("/") or "?" in path or "#" in path:
        raise ValueError(f"a route path starts with '/' and has no query, got {path!r}")
    return (method.upper() if method else None), path


def _unmatched_rng(seed: int) -> random.Random:
    return random.Random(f"{seed}:{UNMATCHED}")  # noqa: S311 - chaos, not crypto


def _route_key(method: str | None, path: str) -> str:
    return path if method is None else f"{method} {path}"


def _glob(path: str) -> re.Pattern[str]:
    """``*`` matches within one path segment, ``**`` across segments."""
    out: list[str] = []
    for part in re.split(r"(\*\*|\*)", path):
        if part == "**":
            out.append(".*")
        elif part == "*":
            out.append("[^/]*")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


class Route:
    """One scripted route, from :meth:`ChaosUpstream.route`; its methods chain.

    ``queue(...)`` appends behaviours used once each, in order; ``always(...)`` sets the one used
    once the queue is empty. A route with neither left answers 500 and records an error.
    """

    def __init__(
        self, owner: ChaosUpstream, method: str | None, path: str, order: int, seed: int
    ) -> None:
        self.method = method
        self.path = path
        self.key = _route_key(method, path)
        self._owner = owner
        self._is_glob = "*" in path
        self._pattern = _glob(path) if self._is_glob else None
        # Exact paths first, then method-specific ones, then the order they were added in.
        self.precedence = (self._is_glob, method is None, order)
        self._queue: deque[Behaviour] = deque()
        self._default: Behaviour | None = None
        # One generator per route, so one route's traffic never shifts another's draws.
        self.rng = random.Random(f"{seed}:{self.key}")  # noqa: S311 - chaos, not crypto

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        if self._pattern is None:
            return path == self.path
        return self._pattern.fullmatch(path) is not None

    def queue(self, *behaviours: Behaviour, times: int = 1) -> Route:
        """Append ``behaviours`` (repeated ``times`` times) to be used one per request."""
        for behaviour in behaviours:
            _check_behaviour(behaviour)
        if isinstance(times, bool) or not isinstance(times, int) or times < 0:
            raise ValueError(f"times must be an integer >= 0, got {times!r}")
        with self._owner._lock:
            self._queue.extend(list(behaviours) * times)
        return self

    def always(self, behaviour: Behaviour) -> Route:
        """Use ``behaviour`` whenever the queue is empty."""
        _check_behaviour(behaviour)
        with self._owner._lock:
            self._default = behaviour
        return self

    def clear(self) -> Route:
        """Forget the queue and the default."""
        with self._owner._lock:
            self._queue.clear()
            self._default = None
        return self

    @property
    def pending(self) -> int:
        """How many queued behaviours are left."""
        with self._owner._lock:
            return len(self._queue)

    @property
    def count(self) -> int:
        """Requests this route has received."""
        return self._owner.count(self.key)

    def _next(self) -> Behaviour | None:  # called with the owner's lock held
        if self._queue:
            return self._queue.popleft()
        return self._default

    def __repr__(self) -> str:
        return f"<Route {self.key!r} queued={len(self._queue)} default={self._default!r}>"


def _check_behaviour(behaviour: object) -> None:
    if not isinstance(behaviour, Behaviour):
        hint = " (a Modifier such as Latency needs '+ Respond(...)')" if behaviour else ""
        raise TypeError(f"expected a Behaviour, got {behaviour!r}{hint}")


class ChaosUpstream:
    """A scripted, misbehaving HTTP/1.1 server on 127.0.0.1 that records what it received.

    ``seed`` makes every random draw reproducible; ``port=0`` picks a free port;
    ``unmatched`` answers requests no route matches (404 JSON by default); the request log keeps
    the last ``log_size`` requests (``None``: all), while counts are never capped.

    Run it with ``async with ChaosUpstream() as chaos:`` inside an event loop, or from
    synchronous code with ``with ChaosUpstream().running() as chaos:`` (or plain ``with``, or
    ``start()`` and ``stop()``), which serves from a background thread with its own loop.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        port: int = 0,
        unmatched: Behaviour | None = None,
        log_size: int | None = DEFAULT_LOG_SIZE,
        ssl: _ssl.SSLContext | None = None,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer between 0 and 65535, got {port!r}")
        if log_size is not None and (
            isinstance(log_size, bool) or not isinstance(log_size, int) or log_size < 1
        ):
            raise ValueError(f"log_size must be an integer >= 1 or None, got {log_size!r}")
        if unmatched is not None:
            _check_behaviour(unmatched)
        self.seed = seed
        self._ssl = ssl  # a server context: serve HTTPS (url is then https://)
        self._requested_port = port
        self._default_unmatched: Behaviour = unmatched or Call(_not_found)
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._log: deque[ReceivedRequest] = deque(maxlen=log_size)
        self._counts: Counter[str] = Counter()
        self._errors: list[BaseException] = []
        self._routes: dict[str, Route] = {}
        self._ordered: list[Route] = []
        self._unmatched = self._default_unmatched
        self._unmatched_rng = _unmatched_rng(seed)
        self._port: int | None = None
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    # -- address ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port it listens on (or last listened on)."""
        if self._port is None:
            raise RuntimeError("ChaosUpstream has not been started")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` when serving TLS), without a trailing
        slash."""
        return f"{'https' if self._ssl else 'http'}://{LOOPBACK}:{self.port}"

    @property
    def is_running(self) -> bool:
        return self._server is not None

    # -- scripting -------------------------------------------------------------------------------

    def route(self, spec: str, default: Behaviour | None = None) -> Route:
        """The route for ``spec`` (``"GET /users/*"``, ``"/health"`` for any method).

        Asking again for the same spec returns the same route. Paths are matched against the
        raw (percent-encoded) request path without its query; ``*`` matches within a segment,
        ``**`` across segments. Exact paths win over globs, routes with a method over those
        without, and otherwise the earlier route wins. ``default`` is a shortcut for
        ``.always(default)``.
        """
        method, path = parse_route_spec(spec)
        key = _route_key(method, path)
        with self._lock:
            route = self._routes.get(key)
            if route is None:
                route = Route(self, method, path, len(self._ordered), self.seed)
                self._routes[key] = route
                self._ordered.append(route)
                self._ordered.sort(key=lambda r: r.precedence)
        if default is not None:
            route.always(default)
        return route

    @property
    def unmatched(self) -> Behaviour:
        """What requests that match no route get."""
        with self._lock:
            return self._unmatched

    @unmatched.setter
    def unmatched(self, behaviour: Behaviour) -> None:
        _check_behaviour(behaviour)
        with self._lock:
            self._unmatched = behaviour

    def reset(self) -> None:
        """Forget routes, counts, the log and errors; reseed; restore the unmatched default."""
        with self._lock:
            self._routes.clear()
            self._ordered.clear()
            self._log.clear()
            self._counts.clear()
            self._errors.clear()
            self._unmatched = self._default_unmatched
            self._unmatched_rng = _unmatched_rng(self.seed)

    # -- recording -------------------------------------------------------------------------------

    @property
    def requests(self) -> list[ReceivedRequest]:
        """The request log (a copy), oldest first."""
        with self._lock:
            return list(self._log)

    def count(self, spec: str | None = None) -> int:
        """Requests received by the route ``spec`` (``"<unmatched>"`` too), or in total."""
        if spec is None:
            return self.total
        key = UNMATCHED if spec == UNMATCHED else _route_key(*parse_route_spec(spec))
        with self._lock:
            return self._counts[key]

    @property
    def counts(self) -> dict[str, int]:
        """Requests per route key (``"GET /users/*"``, ``"<unmatched>"``), a copy."""
        with self._lock:
            return dict(self._counts)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    @property
    def errors(self) -> list[BaseException]:
        """Failures on the server side: a ``Call`` that raised, a route that ran out."""
        with self._lock:
            return list(self._errors)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> None:
        """Block until ``count`` requests arrived in total; TimeoutError after ``timeout``.

        For the thread form: blocking the server's own event loop would deadlock.
        """
        with self._arrived:
            if not self._arrived.wait_for(lambda: self._total_locked() >= count, timeout):
                got = self._total_locked()
                raise TimeoutError(f"{count} requests did not arrive in {timeout} s ({got} did)")

    async def wait_for_requests_async(self, count: int) -> None:
        """Wait until ``count`` requests arrived in total; bound it with ``asyncio.timeout``."""
        loop = asyncio.get_running_loop()
        while True:
            event = asyncio.Event()
            with self._lock:
                if self._total_locked() >= count:
                    return
                self._async_waiters.append((loop, event))
            await event.wait()

    def _total_locked(self) -> int:
        return sum(self._counts.values())

    def _report(self, error: BaseException) -> None:
        with self._lock:
            self._errors.append(error)

    def _dispatch(
        self, parsed: ParsedRequest, peer: tuple[str, int]
    ) -> tuple[Behaviour, ReceivedRequest, random.Random]:
        """Record the request and pick its behaviour, in one step under the lock."""
        with self._lock:
            route = next((r for r in self._ordered if r.matches(parsed.method, parsed.path)), None)
            behaviour: Behaviour | None
            if route is None:
                key, behaviour, rng = UNMATCHED, self._unmatched, self._unmatched_rng
            else:
                key, behaviour, rng = route.key, route._next(), route.rng
                if behaviour is None:
                    self._errors.append(LookupError(f"chaos route {key!r} has no behaviour left"))
                    body = {"error": f"chaos route {key!r} has no behaviour left"}
                    behaviour = Respond(500, json=body)
            request = ReceivedRequest(
                method=parsed.method,
                path=parsed.path,
                query=parsed.query,
                headers=parsed.headers,
                body=parsed.body,
                peer=peer,
                at=parsed.at,
                route=key,
                version=parsed.version,
                header_list=parsed.header_list,
            )
            self._log.append(request)
            self._counts[key] += 1
            self._arrived.notify_all()
            waiters, self._async_waiters = self._async_waiters, []
        for loop, event in waiters:
            if not loop.is_closed():  # a waiter whose loop is gone waits for nothing
                loop.call_soon_threadsafe(event.set)
        return behaviour, request, rng

    # -- serving ---------------------------------------------------------------------------------

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        sock = writer.get_extra_info("socket")
        if sock is not None:  # trickled bytes must leave at once, not wait for Nagle
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        host, port = writer.get_extra_info("peername")[:2]
        try:
            while True:
                try:
                    parsed = await read_request(reader, writer)
                except BadRequest as exc:
                    head = encode_head(
                        exc.status, [("content-length", "0"), ("connection", "close")]
                    )
                    writer.write(head)
                    return
                if parsed is None:
                    return
                behaviour, request, rng = self._dispatch(parsed, (host, port))
                exchange = Exchange(
                    reader,
                    writer,
                    request,
                    rng=rng,
                    keep_alive=parsed.keep_alive,
                    report=self._report,
                )
                if not await behaviour._perform(exchange):
                    return
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return  # the client went away or broke the framing: nothing left to answer
        except asyncio.CancelledError:
            # astop() cancels hung handlers; ending normally then keeps asyncio's stream
            # callback from logging the cancellation as an error. Other cancels propagate.
            if not self._stopping:
                raise
        except Exception as exc:  # a bug in a behaviour: keep it for the test to see
            self._report(exc)
        finally:
            self._connections.pop(task, None)
            writer.close()

    async def astart(self) -> None:
        """Start serving in the running event loop; returns once it accepts connections."""
        if self._server is not None or self._thread is not None:
            raise RuntimeError("ChaosUpstream is already running")
        self._stopping = False
        self._server = await asyncio.start_server(
            self._on_connection, LOOPBACK, self._requested_port, limit=MAX_HEAD_BYTES, ssl=self._ssl
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def astop(self) -> None:
        """Stop accepting, cut every open connection (hung handlers too), and wait for them."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping = True
        server.close()
        tasks = list(self._connections)
        for task, writer in list(self._connections.items()):
            writer.transport.abort()
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> ChaosUpstream:
        await self.astart()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()

    def start(self) -> ChaosUpstream:
        """Serve from a background thread with its own event loop; returns once it listens."""
        if self._server is not None or self._thread is not None:
            raise RuntimeError("ChaosUpstream is already running")
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.astart())
            except BaseException as exc:
                failure.append(exc)
                loop.close()
                ready.set()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=main, name="chaos-upstream", daemon=True)
        thread.start()
        ready.wait()
        if failure:
            thread.join()
            raise failure[0]
        self._thread, self._thread_loop = thread, loop
        return self

    def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        """Stop the background-thread server: connections are cut, the thread joined."""
        thread, loop = self._thread, self._thread_loop
        if thread is None or loop is None:
            if self._server is not None:
                raise RuntimeError("started with astart(); stop it with 'await astop()'")
            return
        try:
            asyncio.run_coroutine_threadsafe(self.astop(), loop).result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            self._thread = self._thread_loop = None

    def __enter__(self) -> ChaosUpstream:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @contextmanager
    def running(self) -> Iterator[ChaosUpstream]:
        """``with ChaosUpstream().running() as chaos:``: the thread form as a context manager."""
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not started"
        return f"<ChaosUpstream {where} seed={self.seed} routes={len(self._routes)}>"
