"""One attempt at an upstream call: the request with its credentials over the transport, within
the attempt's timeout, and every way it can go wrong as the ``UpstreamError`` that names it.

The transport is driven directly, not through ``httpx.AsyncClient.send`` (see ``base.py``):
the body is read here, bounded by ``max_response_bytes``, and redirects are followed only as
``follow_redirects`` allows (``redirects.py``).
"""

from __future__ import annotations

import asyncio

import httpx

from graftql.config import UpstreamConfig
from graftql.errors import (
    UpstreamAuthError,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from graftql.upstreams import caller, deadline, redirects
from graftql.upstreams.events import emit
from graftql.upstreams.limits import RateLimiter
from graftql.upstreams.policy import CallPolicy
from graftql.upstreams.tls import why_unreachable
from graftql.upstreams.transport import BodyTooLarge

__all__ = ["Attempts"]


class Attempts:
    """The part of an ``Upstream`` that makes one attempt and maps its failures."""

    name: str
    config: UpstreamConfig
    transport: httpx.AsyncBaseTransport
    auth: httpx.Auth | None
    rate: RateLimiter  # learns the upstream's own limits from its answers

    def _refused(self, kind: type[UpstreamError], message: str) -> UpstreamError:
        """The gateway's own refusal: nothing was sent, so it is never retried."""
        error = kind(self.name, message)
        error.retryable = False
        return error

    def _deadline_passed(self) -> UpstreamError:
        return self._refused(
            UpstreamTimeout, f"the request's deadline passed before {self.name} answered"
        )

    async def _attempt(self, request: httpx.Request, call: CallPolicy) -> httpx.Response:
        limit = call.timeout
        left = deadline.remaining()
        if left is not None and left < limit:
            if left <= 0:  # nothing was sent: this says nothing about the upstream
                raise self._deadline_passed()
            limit = left
        try:
            # The limit bounds the whole attempt, including a body that trickles in slowly.
            async with asyncio.timeout(limit):
                response = await self._exchange(request)
        except UpstreamError:
            raise  # raised by an auth flow (e.g. the token endpoint refused the client)
        except httpx.ConnectTimeout as exc:
            error = UpstreamUnavailable(
                self.name,
                f"{self.name} could not be reached within {call.timeouts['connect'] or 0:g}s",
            )
            error.sent = False
            raise error from exc
        except httpx.ReadTimeout as exc:
            raise UpstreamTimeout(
                self.name,
                f"{self.name} sent nothing for {call.timeouts['read'] or 0:g}s",
            ) from exc
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise UpstreamTimeout(
                self.name,
                f"{self.name} did not answer within {call.timeout:g}s"
                if limit == call.timeout
                else f"the request's deadline passed before {self.name} answered",
            ) from exc
        except BodyTooLarge as exc:
            raise UpstreamBadResponse(
                self.name,
                f"{self.name} answered with more than {self.config.max_response_bytes} bytes",
            ) from exc
        except httpx.ConnectError as exc:
            error = UpstreamUnavailable(
                self.name, f"{self.name} could not be reached{why_unreachable(exc)}"
            )
            error.sent = False
            raise error from exc
        except httpx.RemoteProtocolError as exc:
            raise UpstreamBadResponse(
                self.name, f"{self.name} answered with malformed HTTP"
            ) from exc
        except httpx.DecodingError as exc:
            raise UpstreamBadResponse(
                self.name, f"{self.name} answered with a body its Content-Encoding does not match"
            ) from exc
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(self.name, f"the connection to {self.name} was lost") from exc
        self.rate.observe(response)
        if response.status_code != 304 or request.extensions.get("graftql.cache") != "revalidate":
            self.raise_for_status(response)  # a 304 to the cache's revalidation is its answer
        return response

    async def _exchange(self, request: httpx.Request) -> httpx.Response:
        """One request with its credentials, and the redirects ``follow_redirects`` allows
        (docs/auth.md)."""
        response = await self._authorized(request)
        if self.config.follow_redirects == "same_origin":
            hops = 0
            while response.status_code in redirects.REDIRECT_STATUSES:
                request = redirects.follow(self.name, request, response, hops)
                hops += 1
                response = await self._authorized(request)
        return response

    async def _authorized(self, request: httpx.Request) -> httpx.Response:
        """One request through the auth flow (which may add a token fetch or a retry). Every
        401/403 to the request itself (not to a token request) is reported as the
        ``auth_rejected`` event: the audit log."""
        if self.auth is None:
            response = await self._roundtrip(request)
            if response.status_code in (401, 403):
                _rejected(self.name, request, response)
            return response
        flow = self.auth.async_auth_flow(request)
        try:
            outgoing = await flow.__anext__()
            while True:
                response = await self._roundtrip(outgoing)
                if response.status_code in (401, 403) and outgoing is request:
                    _rejected(self.name, request, response)
                try:
                    outgoing = await flow.asend(response)
                except StopAsyncIteration:
                    return response
        finally:
            await flow.aclose()

    async def _roundtrip(self, request: httpx.Request) -> httpx.Response:
        response = await self.transport.handle_async_request(request)
        try:
            body = await response.aread()  # decoded (the transport unpacked gzip within the limit)
        finally:
            await response.aclose()
        limit = request.extensions.get("max_body")
        if limit is not None and len(body) > limit:
            raise BodyTooLarge(f"more than {limit} bytes")
        return response

    def raise_for_status(self, response: httpx.Response) -> None:
        """Raise the error that names a non-2xx status; ``detail`` keeps the start of the body
        for the operator's log."""
        status = response.status_code
        if 200 <= status < 300:
            return
        name = self.name
        error: UpstreamError
        if status in (401, 403):
            error = UpstreamAuthError(
                name, f"{name} rejected the gateway's credentials", status=status
            )
        elif status in redirects.REDIRECT_STATUSES:
            error = UpstreamBadResponse(
                name,
                f"{name} answered with a redirect (HTTP {status}), which is not followed",
                status=status,
            )
        elif status == 404:
            error = UpstreamNotFound(name, f"{name} has no such resource", status=status)
        elif status == 429:
            error = UpstreamRateLimited(name, f"{name} is rate limiting the gateway", status=status)
        elif status == 408 or status == 504:
            error = UpstreamTimeout(name, f"{name} timed out (HTTP {status})", status=status)
        elif status in (502, 503):
            error = UpstreamUnavailable(
                name, f"{name} is unavailable (HTTP {status})", status=status
            )
        else:
            error = UpstreamBadResponse(name, f"{name} answered HTTP {status}", status=status)
        error.detail = response.content[:300].decode("utf-8", "replace")
        error.response = response
        raise error


def _rejected(upstream: str, request: httpx.Request, response: httpx.Response) -> None:
    current = caller.current()
    emit(
        "auth_rejected",
        upstream,
        status=response.status_code,
        method=request.method,
        principal=current.principal if current is not None else None,
    )
