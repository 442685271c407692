"""What /readyz asks an upstream: is it reachable (a probe without credentials), and what state
its OAuth2 token is in. The outcome of real calls (``last_success``, ``last_failure``) is kept
by the retry loop (``retry_loop.py``), where each attempt ends.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Literal

import httpx

from graftql.upstreams.attempt import Attempts
from graftql.upstreams.auth import OAuth2ClientCredentialsAuth
from graftql.upstreams.policy import CallPolicy
from graftql.upstreams.rotation import RotatingAuth

__all__ = ["Probe", "Readiness"]

_PROBE_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class Probe:
    """The outcome of one reachability check, as /readyz reports it."""

    status: Literal["up", "down"]
    latency_ms: float
    detail: str  # e.g. "HTTP 200" or "connection refused"; never a URL or a credential


class Readiness(Attempts):
    """The part of an ``Upstream`` that /readyz asks."""

    url: httpx.URL
    policy: CallPolicy  # its timeouts bound the probe's connection
    _probe_headers: httpx.Headers  # the static headers that are not secrets

    def token_state(self) -> dict[str, object] | None:
        """The OAuth2 client-credentials token's state (``OAuth2ClientCredentialsAuth.state``),
        or None for an upstream with other credentials or none."""
        auth = self.auth
        if isinstance(auth, RotatingAuth):
            auth = auth.inner
        return auth.state() if isinstance(auth, OAuth2ClientCredentialsAuth) else None

    async def probe(self) -> Probe:
        """Is the upstream reachable? Any HTTP answer counts as up.

        No credentials are sent: neither the auth flow nor static headers given as secrets.
        """
        path = self.config.health_path
        url = self.url.copy_with(raw_path=path.encode("ascii")) if path else self.url
        request = httpx.Request(
            "GET", url, headers=self._probe_headers, extensions={"timeout": self.policy.timeouts}
        )
        started = time.perf_counter()
        try:
            async with asyncio.timeout(_PROBE_TIMEOUT):
                response = await self._roundtrip(request)
        except (TimeoutError, httpx.TimeoutException):
            return Probe("down", _ms(started), f"no answer within {_PROBE_TIMEOUT:g}s")
        except httpx.HTTPError as exc:
            return Probe("down", _ms(started), _describe(exc))
        if response.status_code >= 500:
            return Probe("down", _ms(started), f"HTTP {response.status_code}")
        return Probe("up", _ms(started), f"HTTP {response.status_code}")


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        cause: BaseException | None = exc
        while cause is not None:  # the OSError sits a few causes down
            if isinstance(cause, ConnectionRefusedError) or "refused" in str(cause).lower():
                return "connection refused"
            cause = cause.__cause__ or cause.__context__
        return "cannot connect"
    return type(exc).__name__
