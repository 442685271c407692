"""The wire level of the chaos upstream: parsing HTTP/1.1 requests and writing answers.

It is hand-written on asyncio streams (no h11, no uvicorn) because the behaviours need what a
well-behaved server never does: reset a connection, lie about Content-Length, send garbage.
It parses just enough of HTTP/1.1 for clients that behave: origin-form (or absolute-form)
targets, headers, Content-Length and chunked bodies, ``Expect: 100-continue``, keep-alive.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import urlsplit

MAX_HEAD_BYTES: Final = 64 * 1024
MAX_BODY_BYTES: Final = 64 * 1024 * 1024
_TOKEN: Final = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VERSION: Final = re.compile(r"^HTTP/1\.[01]$")
_NO_BODY_STATUSES: Final = frozenset({204, 304})


class BadRequest(Exception):
    """The client sent something that is not HTTP/1.1; answered with ``status``, then closed."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class ReceivedRequest:
    """One request exactly as it arrived on the wire, recorded before it is answered.

    ``path`` and ``query`` are raw (still percent-encoded; the query without its ``?``), so a
    test sees what the gateway really sent. ``headers`` has lowercased names, repeated headers
    folded with ``", "``; ``header_list`` keeps every header line in order. ``at`` is
    ``time.monotonic()`` once the whole request (head and body) had been read. ``route`` is the
    key of the route that matched, or ``"<unmatched>"``. ``delay`` is the injected latency in
    seconds applied to this request so far (final once it has been answered).
    """

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    peer: tuple[str, int]
    at: float
    route: str
    version: str = "HTTP/1.1"
    header_list: tuple[tuple[str, str], ...] = ()
    delay: float = field(default=0.0, compare=False)

    def json(self) -> Any:
        """The body decoded as JSON (raises ``ValueError`` if it is not JSON)."""
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    method: str
    path: str
    query: str
    version: str
    header_list: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]
    body: bytes
    keep_alive: bool
    at: float


def _connection_tokens(headers: Mapping[str, str]) -> set[str]:
    return {t.strip().lower() for t in headers.get("connection", "").split(",") if t.strip()}


async def read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> ParsedRequest | None:
    """Read one request; ``None`` when the client closed the connection between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise BadRequest(400, "the connection closed in the middle of a request head") from None
        return None
    except asyncio.LimitOverrunError:
        raise BadRequest(431, "the request head is too large") from None
    # RFC 9112 2.2: a server should ignore empty lines before the request line.
    lines = head.lstrip(b"\r\n").decode("latin-1").split("\r\n")
    method, path, query, version = _parse_request_line(lines[0])
    header_list = tuple(_parse_header(line) for line in lines[1:] if line)
    headers: dict[str, str] = {}
    for name, value in header_list:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
    body = await _read_body(reader, headers)
    tokens = _connection_tokens(headers)
    keep_alive = "close" not in tokens and (version == "HTTP/1.1" or "keep-alive" in tokens)
    return ParsedRequest(
        method, path, query, version, header_list, headers, body, keep_alive, time.monotonic()
    )


def _parse_request_line(line: str) -> tuple[str, str, str, str]:
    parts = line.split(" ")
    if len(parts) != 3 or not _TOKEN.match(parts[0]) or not _VERSION.match(parts[2]):
        raise BadRequest(400, f"malformed request line {line[:100]!r}")
    method, target, version = parts
    if target.startswith("/"):
        path, _, query = target.partition("?")
    elif target == "*":
        path, query = "*", ""
    elif target.lower().startswith(("http://", "https://")):
        split = urlsplit(target)
        path, query = split.path or "/", split.query
    else:
        raise BadRequest(400, f"malformed request target {target[:100]!r}")
    return method, path, query, version


def _parse_header(line: str) -> tuple[str, str]:
    name, colon, value = line.partition(":")
    if not colon or not _TOKEN.match(name):
        raise BadRequest(400, f"malformed header line {line[:100]!r}")
    return name.lower(), value.strip(" \t")


async def _read_body(reader: asyncio.StreamReader, headers: Mapping[str, str]) -> bytes:
    if "transfer-encoding" in headers:
        codings = [c.strip().lower() for c in headers["transfer-encoding"].split(",")]
        if codings[-1] != "chunked":
            raise BadRequest(400, "a request body must end with the chunked transfer coding")
        return await _read_chunked(reader)
    raw = headers.get("content-length")
    if raw is None:
        return b""
    values = {v.strip() for v in raw.split(",")}  # repeated identical values are allowed
    if len(values) != 1 or not all(v.isascii() and v.isdecimal() for v in values):
        raise BadRequest(400, f"invalid Content-Length {raw[:50]!r}")
    length = int(values.pop())
    if length > MAX_BODY_BYTES:
        raise BadRequest(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
    return await reader.readexactly(length)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size_line = (await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise BadRequest(400, f"invalid chunk size {size_line[:20]!r}") from None
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, ignored
                pass
            return b"".join(chunks)
        total += size
        if total > MAX_BODY_BYTES:
            raise BadRequest(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise BadRequest(400, "a chunk is not followed by CRLF")


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def encode_head(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason_phrase(status)}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def has_body(status: int) -> bool:
    return status >= 200 and status not in _NO_BODY_STATUSES


class Exchange:
    """One request being answered: what a behaviour may do to the connection.

    Internal to :mod:`graftql.testing`; behaviours are the public way to use it.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: ReceivedRequest,
        *,
        rng: random.Random,
        keep_alive: bool,
        report: Callable[[BaseException], None],
    ) -> None:
        self.request = request
        self.rng = rng
        self.keep_alive = keep_alive
        self._reader = reader
        self._writer = writer
        self._report = report

    @property
    def head_only(self) -> bool:
        return self.request.method == "HEAD"

    def report(self, error: BaseException) -> None:
        """Keep an error (e.g. a ``Call`` that raised) for ``ChaosUpstream.errors``."""
        self._report(error)

    async def delay(self, seconds: float) -> None:
        """Injected latency: slept, and added to the request's recorded ``delay``."""
        self.request.delay += seconds
        if seconds > 0:
            await asyncio.sleep(seconds)

    async def wait(self, seconds: float) -> None:
        """A pause that is part of the answer (e.g. between trickled chunks), not latency."""
        await asyncio.sleep(seconds)

    async def send(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def flush(self) -> None:
        """Wait until everything written has been handed to the kernel."""
        # With a high-water mark of 0 the transport pauses on any buffered byte, and drain()
        # returns only once the buffer is empty again.
        self._writer.transport.set_write_buffer_limits(high=0, low=0)
        await self._writer.drain()

    def reset(self) -> None:
        """Close with SO_LINGER 0: the kernel sends RST and the peer sees ECONNRESET."""
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._writer.transport.abort()

    async def close(self) -> None:
        """An orderly close (FIN) after everything written so far."""
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except OSError:  # the peer may already have reset it
            pass

    async def until_disconnect(self) -> None:
        """Wait until the client closes its side; anything it sends meanwhile is ignored."""
        try:
            while await self._reader.read(65536):
                pass
        except OSError:
            pass
