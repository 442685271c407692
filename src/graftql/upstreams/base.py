"""What every upstream has: one pooled ``httpx.AsyncClient``, a single way out (``send``) where
httpx failures and HTTP statuses become graftql errors, and a reachability probe.

``send`` is where the policy pipeline of DESIGN.md runs; it knows nothing of REST versus
GraphQL. Today it applies the per-attempt timeout and classifies the outcome; retries, the
circuit breaker, rate limits and caching wrap this same call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

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
from graftql.upstreams.auth import build_auth

__all__ = ["Probe", "Upstream"]

_PROBE_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class Probe:
    """The outcome of one reachability check, as /readyz reports it."""

    status: Literal["up", "down"]
    latency_ms: float
    detail: str  # e.g. "HTTP 200" or "connection refused"; never a URL or a credential


class Upstream:
    """Base of ``RestUpstream`` and ``GraphQLUpstream``: the configured, pooled connection."""

    kind: str = ""

    def __init__(
        self,
        name: str,
        config: UpstreamConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.config = config
        headers = {
            key: value if isinstance(value, str) else value.reveal()
            for key, value in config.headers.items()
        }
        self.client = httpx.AsyncClient(
            base_url=config.url,
            headers=headers,
            timeout=httpx.Timeout(config.timeout),
            auth=build_auth(name, config.auth),
            # Redirects could point at another origin; an upstream's location is configuration.
            follow_redirects=False,
            transport=transport,
            # Environment proxies and ~/.netrc must not silently reroute upstream traffic or
            # attach credentials that the configuration does not show.
            trust_env=False,
        )

    async def send(self, request: httpx.Request) -> httpx.Response:
        """Send one request and return a 2xx response, or raise an ``UpstreamError``.

        The response body has been read. A 404 raises ``UpstreamNotFound`` so that loaders can
        turn it into ``null``; every other non-2xx status raises the error that names it.
        """
        try:
            response = await self.client.send(request)
            await response.aread()
        except UpstreamError:
            raise  # raised by an auth flow (e.g. the token endpoint refused the client)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(
                self.name, f"{self.name} did not answer within {self.config.timeout:g}s"
            ) from exc
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(self.name, f"{self.name} could not be reached") from exc
        self.raise_for_status(response)
        return response

    def raise_for_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        name = self.name
        error: UpstreamError
        if status in (401, 403):
            error = UpstreamAuthError(
                name, f"{name} rejected the gateway's credentials", status=status
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
        raise error

    async def probe(self) -> Probe:
        """Is the upstream reachable? Any HTTP answer counts as up; no credentials are sent."""
        # Without a health path, the configured URL exactly (as a base URL it would gain a "/").
        url = self.config.health_path or self.config.url
        started = time.perf_counter()
        try:
            response = await self.client.get(url, auth=None, timeout=_PROBE_TIMEOUT)
        except httpx.TimeoutException:
            return Probe("down", _ms(started), f"no answer within {_PROBE_TIMEOUT:g}s")
        except httpx.HTTPError as exc:
            return Probe("down", _ms(started), _describe(exc))
        if response.status_code >= 500:
            return Probe("down", _ms(started), f"HTTP {response.status_code}")
        return Probe("up", _ms(started), f"HTTP {response.status_code}")

    async def aclose(self) -> None:
        await self.client.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        cause: BaseException | None = exc
        while cause is not None:  # anyio hides the OSError a few causes down
            if isinstance(cause, ConnectionRefusedError) or "refused" in str(cause).lower():
                return "connection refused"
            cause = cause.__cause__ or cause.__context__
        return "cannot connect"
    return type(exc).__name__
