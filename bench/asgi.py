"""One GraphQL POST straight into an ASGI app, no server and no socket: for measuring what the
gateway's own code costs per query (``cpu_per_query.py``, ``metrics_overhead.py``)."""

from __future__ import annotations

import asyncio
from typing import Any

_SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": "/graphql",
    "raw_path": b"/graphql",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"content-type", b"application/json"), (b"host", b"gateway")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}


async def post_graphql(
    app: Any, body: bytes, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> tuple[int, bytes]:
    """(status, response body) of ``POST /graphql`` with ``body`` and more ``headers``."""
    sent = False
    status = 0
    out = bytearray()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # the client never disconnects
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            out.extend(message.get("body", b""))

    scope = {**_SCOPE, "state": {}}
    if headers:
        scope["headers"] = [*_SCOPE["headers"], *headers]  # type: ignore[misc]
    await app(scope, receive, send)
    return status, bytes(out)
