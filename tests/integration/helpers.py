"""Helpers for integration tests: talk to the gateway and read the upstreams' counters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from graftql.config import GatewayConfig
from graftql.demo.servers import ServerThread
from graftql.server import create_app


def start_gateway(config: GatewayConfig) -> ServerThread:
    return ServerThread(create_app(config)).start()


def reset(services: Mapping[str, str]) -> None:
    for url in services.values():
        httpx.post(f"{url}/__reset").raise_for_status()


def stats(services: Mapping[str, str]) -> dict[str, dict[str, int]]:
    return {name: httpx.get(f"{url}/__stats").json()["requests"] for name, url in services.items()}


def graphql(base_url: str, query: str, **variables: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{base_url}/graphql", json={"query": query, "variables": variables or None}, timeout=30
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_within_rate(
    arrivals: Sequence[float], rate: float, burst: int, *, jitter: float = 0.03
) -> None:
    """No stretch of calls arrived faster than a token bucket allows: n calls need at least
    (n - burst) / rate seconds. ``jitter`` absorbs the upstream thread's own scheduling delay,
    which can bunch arrivals that the gateway sent on time."""
    times = sorted(arrivals)
    for first in range(len(times)):
        for last in range(first + burst, len(times)):
            needed = (last - first + 1 - burst) / rate
            assert times[last] - times[first] >= needed - jitter, (first, last, needed)
