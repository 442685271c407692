"""Run ASGI apps with uvicorn on the loopback interface, for the demo CLI and for tests.

Two ways in:

* ``async with serve(app) as server:`` runs the server as a task in the current event loop, so
  the demo runner can host the gateway and all upstreams in one loop;
* ``ServerThread(app)`` runs it in a thread with its own event loop, for synchronous pytest
  fixtures and code that has no loop of its own.

Servers only ever bind 127.0.0.1. We bind the socket ourselves (port 0 picks a free port) and
hand it to uvicorn, which makes the real port known before serving starts and lets us report
"port in use" as a clear :class:`PortInUseError` instead of uvicorn's log line and exit.
Signal handling is left to the caller: several servers in one loop must not each grab Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Final

import uvicorn
from starlette.types import ASGIApp

LOOPBACK_HOST: Final = "127.0.0.1"
DEFAULT_STARTUP_TIMEOUT: Final = 10.0
_ADDR_IN_USE: Final = {errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", errno.EADDRINUSE)}


class PortInUseError(OSError):
    """The requested loopback port is already taken by another listener."""

    def __init__(self, port: int) -> None:
        super().__init__(errno.EADDRINUSE, f"port {port} on {LOOPBACK_HOST} is already in use")
        self.port = port


class ServerStartupError(RuntimeError):
    """The server did not come up (app startup failed, or it timed out)."""


def bind_loopback(port: int = 0, *, backlog: int = 128) -> socket.socket:
    """A listening TCP socket on 127.0.0.1:``port`` (0 = any free port)."""
    # An explicit IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto says TCP, and without it Nagle plus delayed ACKs add ~40 ms to every response.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if os.name != "nt":
            # Lets a restarted demo reuse a port still in TIME_WAIT; on POSIX this never
            # allows two live listeners on one port, so "in use" is still detected.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK_HOST, port))
        # Listen now, not when the loop starts serving: claims the port immediately, and
        # early connections wait in the backlog instead of being refused.
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno in _ADDR_IN_USE:
            raise PortInUseError(port) from exc
        raise
    return sock


class _UvicornServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn would install SIGINT/SIGTERM handlers per server; the owner of the event
        # loop decides what Ctrl-C means instead.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


class LoopbackServer:
    """One ASGI app served by uvicorn on 127.0.0.1; the port is bound at construction."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        port: int = 0,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
    ) -> None:
        self._sock = bind_loopback(port)
        self.port: int = self._sock.getsockname()[1]
        self.startup_timeout = startup_timeout
        config = uvicorn.Config(
            app,
            log_level="warning",
            log_config=None,  # leave the process's logging setup alone
            access_log=False,
            lifespan="auto",
            proxy_headers=False,  # nothing sits in front of a loopback demo service
            timeout_graceful_shutdown=5,
        )
        self._server = _UvicornServer(config)
        self._task: asyncio.Task[None] | None = None
        self._start_failed = False

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK_HOST}:{self.port}"

    @property
    def started(self) -> bool:
        return self._server.started

    async def _run(self) -> None:
        try:
            await self._server.serve(sockets=[self._sock])
        except SystemExit as exc:
            # uvicorn reports a failed app startup with sys.exit(); turn it into an error
            # that the awaiting caller can handle.
            raise ServerStartupError(f"server for {self.url} failed to start") from exc
        finally:
            self._sock.close()

    async def start(self) -> None:
        """Start serving; returns once the server accepts requests."""
        if self._task is not None:
            raise RuntimeError("server already started")
        self._task = asyncio.create_task(self._run(), name=f"loopback-server-{self.port}")
        ready = asyncio.create_task(self._server.ready.wait())
        done, _ = await asyncio.wait(
            {self._task, ready}, timeout=self.startup_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if ready in done:
            return
        ready.cancel()
        if self._task in done:
            self._start_failed = True
            await self._task  # raises ServerStartupError (or whatever went wrong)
            raise ServerStartupError(f"server for {self.url} stopped during startup")
        await self.stop()
        raise ServerStartupError(
            f"server for {self.url} did not start within {self.startup_timeout} s"
        )

    def request_exit(self) -> None:
        """Ask the server to shut down; :meth:`wait_closed` waits until it has."""
        self._server.should_exit = True

    async def wait_closed(self) -> None:
        if self._task is not None:
            await self._task

    async def stop(self) -> None:
        """Shut down and wait; safe to call after a failed start (e.g. in a ``finally``)."""
        if self._task is None:
            self._sock.close()  # never started: just release the port
            return
        if self._start_failed:
            return  # start() already raised the error; cleanup must not raise it again
        self.request_exit()
        await self._task

    async def __aenter__(self) -> LoopbackServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


@contextlib.asynccontextmanager
async def serve(
    app: ASGIApp, *, port: int = 0, startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
) -> AsyncIterator[LoopbackServer]:
    """Serve ``app`` on 127.0.0.1 in the running event loop for the duration of the block."""
    async with LoopbackServer(app, port=port, startup_timeout=startup_timeout) as server:
        yield server


class ServerThread:
    """Serve an ASGI app from a background thread with its own event loop.

    ``start()`` returns once the server accepts requests and raises if it could not start;
    ``stop()`` shuts it down and joins the thread. Also usable as a context manager.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        port: int = 0,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
    ) -> None:
        self._app = app
        self._requested_port = port
        self._startup_timeout = startup_timeout
        self._server: LoopbackServer | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server not started")
        return self._server.port

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("server not started")
        return self._server.url

    def start(self) -> ServerThread:
        if self._thread is not None:
            raise RuntimeError("server thread already started")
        # Bind in the caller's thread so PortInUseError surfaces right here.
        server = LoopbackServer(self._app, port=self._requested_port)
        self._server = server
        self._thread = threading.Thread(
            target=asyncio.run,
            args=(self._main(server),),
            name=f"loopback-server-{server.port}",
            daemon=True,  # never keep a test process alive because of a stuck server
        )
        self._thread.start()
        # The loop enforces the startup timeout itself; the margin covers thread scheduling.
        if not self._ready.wait(self._startup_timeout + 5):
            self.stop()
            raise ServerStartupError(f"server for {server.url} did not report startup")
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    async def _main(self, server: LoopbackServer) -> None:
        self._loop = asyncio.get_running_loop()
        server.startup_timeout = self._startup_timeout
        try:
            await server.start()
        except BaseException as exc:
            self._error = exc
            return
        finally:
            self._ready.set()
        await server.wait_closed()

    def stop(self, timeout: float = 15.0) -> None:
        thread, loop, server = self._thread, self._loop, self._server
        if thread is None or server is None:
            return
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop may close between check and call
                loop.call_soon_threadsafe(server.request_exit)
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"server for {server.url} did not stop within {timeout} s")

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
