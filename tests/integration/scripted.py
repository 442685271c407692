"""A scripted upstream: answers what the test tells it to and records what it received."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Receive, Scope, Send

from graftql.demo.servers import ServerThread


@dataclass
class Received:
    method: str
    raw_path: str
    query: str
    headers: dict[str, str]
    body: bytes
    client: tuple[str, int] | None  # the TCP peer: one per connection
    at: float  # time.monotonic() when it arrived


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    delay: float = 0.0


class ScriptedUpstream:
    """Queue answers with ``answer(...)``; when the queue is empty, ``default`` is sent."""

    def __init__(self) -> None:
        self.answers: deque[Answer] = deque()
        self.default = Answer()
        self.received: list[Received] = []
        self._server: ServerThread | None = None

    def answer(
        self,
        status: int = 200,
        *,
        json_body: Any = None,
        body: bytes | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        times: int = 1,
    ) -> None:
        payload = body if body is not None else json.dumps(json_body or {}).encode()
        all_headers = {"content-type": content_type, **(headers or {})}
        for _ in range(times):
            self.answers.append(Answer(status, payload, all_headers, delay))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.received.append(
            Received(
                method=scope["method"],
                raw_path=scope["raw_path"].decode("latin-1"),
                query=scope["query_string"].decode("latin-1"),
                headers={k.decode().lower(): v.decode() for k, v in scope["headers"]},
                body=body,
                client=tuple(scope["client"]) if scope.get("client") else None,
                at=time.monotonic(),
            )
        )
        answer = self.answers.popleft() if self.answers else self.default
        if answer.delay:
            await asyncio.sleep(answer.delay)
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [(k.encode(), v.encode()) for k, v in answer.headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": answer.body})

    def start(self) -> str:
        self._server = ServerThread(self).start()
        return self._server.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def __iter__(self) -> Iterator[Received]:
        return iter(self.received)
