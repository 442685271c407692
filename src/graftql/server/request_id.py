"""``RequestId``: every HTTP request and WebSocket connection gets an id for the logs.

The client's (or its proxy's) ``X-Request-Id`` is kept when it is a sane token: 1 to 128
characters out of letters, digits and ``-._~:;=/+@``, which covers UUIDs, hex ids and trace
ids, and cannot inject anything into a log line. Anything else is replaced by a new random id
(32 hex digits). The id is sent back in the response's ``X-Request-Id`` header (for a
WebSocket, in the handshake's answer) and is ``request_id.get()`` while the request runs, so
every log record made for it carries it (``server/logs.py``). Operations over one WebSocket
share the connection's id.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestId", "request_id"]

request_id: ContextVar[str | None] = ContextVar("graftql_request_id", default=None)

_SANE = re.compile(r"[A-Za-z0-9._~:;=/+@-]{1,128}")
_HEADER = b"x-request-id"


class RequestId:
    """Pure ASGI middleware (no per-request objects of its own): put it outermost."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = None
        for key, value in scope["headers"]:
            if key == _HEADER:
                given = value.decode("latin-1")
                break
        rid = given if given is not None and _SANE.fullmatch(given) else os.urandom(16).hex()
        header = (_HEADER, rid.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                headers = list(message.get("headers") or ())
                if not any(key.lower() == _HEADER for key, _ in headers):
                    headers.append(header)
                message = {**message, "headers": headers}
            await send(message)

        token = request_id.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
