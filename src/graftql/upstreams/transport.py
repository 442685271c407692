"""The connection pool under every upstream: aiohttp's, behind httpx's transport interface.

Why not httpx's own pool (httpcore): it costs more than twice the CPU per call, and an upstream
call is most of a gateway's work. Why not the ``httpx-aiohttp`` package: it hands aiohttp the
URL as text, and aiohttp then re-quotes it, decoding ``%2E%2E`` back to ``..`` (which it then
resolves) and ``%3D`` to ``=``: the one-segment encoding of ``graftql.upstreams.rest`` would
be undone and a signature over the path would no longer match. Here the URL goes over exactly
as httpx encoded it.

A compressed answer (gzip, deflate) is unpacked here, in steps, never past the same
``max_body`` limit: a small body that inflates to gigabytes (a "zip bomb") is refused after
``max_body`` bytes of output, not after it filled the memory.

TLS: certificates are always verified, against the system's CAs or the ``SSLContext`` given
(an upstream's ``tls:`` block, ``graftql.upstreams.tls``); a failed handshake is reported as
``TlsVerificationFailed`` or ``TlsHandshakeFailed``, both ``httpx.ConnectError``.

The pool keeps no cookies (one user's upstream session cookie must not ride along on another
user's call), reads no proxy settings from the environment (gateway.yaml alone decides where
traffic goes) and never follows redirects (a redirect could leave the configured origin).
"""

from __future__ import annotations

import ssl
import zlib

import aiohttp
import httpx
from yarl import URL

from graftql.upstreams.tls import TlsHandshakeFailed, TlsVerificationFailed

__all__ = ["BodyTooLarge", "PooledTransport"]


class BodyTooLarge(httpx.HTTPError):
    """The answer is larger than the request's ``max_body`` extension allows."""


class PooledTransport(httpx.AsyncBaseTransport):
    """Keep-alive connections to one upstream; each response is returned fully read.

    Timeouts come from the request's ``timeout`` extension (``connect`` and ``read``, in
    seconds), as with httpx's own transports.
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        keepalive_expiry: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use: an aiohttp session belongs to the event loop that made it.
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, keepalive_timeout=self._keepalive_expiry, ssl=self._ssl
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                auto_decompress=False,  # httpx decodes Content-Encoding when the body is read
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        try:
            async with self._client().request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=request.headers.multi_items(),
                data=request.content or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    sock_connect=timeout.get("connect"), sock_read=timeout.get("read")
                ),
            ) as response:
                limit = request.extensions.get("max_body")
                body = await _read(response, limit)
                headers = response.raw_headers
                if limit is not None and response.headers.get("Content-Encoding"):
                    body, headers = _inflate(body, headers, limit)
        except aiohttp.ConnectionTimeoutError as exc:  # no connection: nothing was sent
            raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
        except aiohttp.ClientConnectorCertificateError as exc:
            raise TlsVerificationFailed(str(exc), request=request) from exc
        except aiohttp.ClientConnectorSSLError as exc:
            raise TlsHandshakeFailed(str(exc), request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            if request.url.scheme == "https" and isinstance(exc.os_error, ConnectionResetError):
                # The TCP connection was made (a refusal is not a reset): the upstream hung up
                # during the handshake, as a server does when no TLS version is shared.
                raise TlsHandshakeFailed(str(exc), request=request) from exc
            raise httpx.ConnectError(str(exc), request=request) from exc
        except (aiohttp.ClientResponseError, aiohttp.ClientPayloadError) as exc:
            # The upstream answered, but not in HTTP: a bad status line, headers or body framing.
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except aiohttp.ClientError as exc:  # reset, or closed before or while answering
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
        return httpx.Response(response.status, headers=headers, content=body, request=request)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _read(response: aiohttp.ClientResponse, limit: int | None) -> bytes:
    """The whole body, but never more than ``limit`` bytes of it in memory."""
    if limit is None:
        return await response.read()
    if (response.content_length or 0) > limit:
        raise BodyTooLarge(f"{response.content_length} bytes announced")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


_ZLIB_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS}


def _inflate(
    body: bytes, headers: tuple[tuple[bytes, bytes], ...], limit: int
) -> tuple[bytes, tuple[tuple[bytes, bytes], ...]]:
    """Undo gzip/deflate content codings with at most ``limit`` bytes of output at each step.
    Other codings are left to httpx (they are not announced by the gateway, so rare)."""
    codings = [
        c.strip().lower()
        for name, value in headers
        if name.lower() == b"content-encoding"
        for c in value.decode("latin-1").split(",")
        if c.strip()
    ]
    if not codings or any(c not in ("gzip", "x-gzip", "deflate", "identity") for c in codings):
        return body, headers
    for coding in reversed(codings):  # the last coding applied is undone first
        if coding == "identity":
            continue
        body = _inflate_one(body, coding, limit)
    kept = tuple(
        (name, value)
        for name, value in headers
        if name.lower() not in (b"content-encoding", b"content-length")
    )
    return body, (*kept, (b"Content-Length", str(len(body)).encode()))


def _inflate_one(data: bytes, coding: str, limit: int) -> bytes:
    wbits = _ZLIB_WBITS.get(coding, zlib.MAX_WBITS)
    try:
        try:
            inflater = zlib.decompressobj(wbits)
            out = inflater.decompress(data, limit + 1)
        except zlib.error:
            if coding != "deflate":
                raise
            inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, as some servers send
            out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise httpx.DecodingError(f"invalid {coding} body: {exc}") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise BodyTooLarge(f"more than {limit} bytes once unpacked")
    return out
