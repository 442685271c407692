"""Call policies: what one upstream call is allowed (its timeouts, its retries, whether it may
share an identical call in flight), and how a call finds its policy.

An upstream has its own policy, from its settings, and one per ``endpoints:`` entry; a call
takes the first entry whose ``match`` fits it (``"GET /reports/r1"``, ``"query Search"``),
else the upstream's (docs/resilience.md). The policy is chosen once, when the request is
built, and travels in the request's ``graftql.policy`` extension.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from graftql.config import EndpointConfig, UpstreamConfig
from graftql.upstreams.retry import RetryPolicy

__all__ = ["CallPolicies", "CallPolicy", "call_policy", "endpoint_pattern", "endpoint_policies"]


@dataclass(frozen=True, slots=True)
class CallPolicy:
    """What one call is allowed: the upstream's settings, or an ``endpoints:`` entry's."""

    timeout: float  # the attempt's total
    timeouts: dict[str, float | None]  # connect / read / write / pool, for the transport
    retry: RetryPolicy
    dedup: bool


def call_policy(
    total: float, connect: float, read: float | None, retry: RetryPolicy, dedup: bool
) -> CallPolicy:
    """A policy whose attempt lasts ``total`` at most; no part of it may last longer."""
    timeouts: dict[str, float | None] = {
        "connect": min(connect, total),
        # None: no limit between bytes of its own; the attempt's total still applies.
        "read": min(read, total) if read else None,
        "write": total,
        "pool": total,
    }
    return CallPolicy(total, timeouts, retry, dedup)


def endpoint_policies(
    config: UpstreamConfig, retry: RetryPolicy
) -> list[tuple[re.Pattern[str], CallPolicy]]:
    """Each ``endpoints:`` entry of ``config`` as its pattern and its policy, in their order;
    ``retry`` is the upstream's own retry policy."""
    return [
        (endpoint_pattern(e.match), _endpoint_policy(config, e, retry)) for e in config.endpoints
    ]


def _endpoint_policy(
    config: UpstreamConfig, endpoint: EndpointConfig, upstream_retry: RetryPolicy
) -> CallPolicy:
    retry = upstream_retry
    if endpoint.retry is not None:
        changes = endpoint.retry.model_dump(exclude_none=True)
        # The upstream's retry budget is shared: an endpoint cannot retry more in all.
        retry = RetryPolicy(config.retry.model_copy(update=changes), budget=upstream_retry.budget)
    return call_policy(
        endpoint.timeout or config.timeout,
        endpoint.connect_timeout or config.connect_timeout,
        endpoint.read_timeout or config.read_timeout,
        retry,
        config.dedup if endpoint.dedup is None else endpoint.dedup,
    )


def endpoint_pattern(match: str) -> re.Pattern[str]:
    """``"GET /reports/*"`` as a regular expression over ``"METHOD /path"`` (or
    ``"query Name"``): ``*`` is one path segment (any name part), ``**`` anything."""
    head, _, tail = match.partition(" ")
    head = r"[A-Z]+" if head == "*" else re.escape(head)
    parts = re.split(r"(\*\*|\*)", tail)
    body = "".join(
        ".*" if part == "**" else "[^/]*" if part == "*" else re.escape(part) for part in parts
    )
    return re.compile(f"{head} {body}\\Z")


class CallPolicies:
    """The part of an ``Upstream`` that finds a call's policy."""

    policy: CallPolicy  # the upstream's own
    _endpoints: list[tuple[re.Pattern[str], CallPolicy]]  # ``endpoint_policies``

    def policy_for(self, call: str) -> CallPolicy:
        """The policy of the first ``endpoints:`` entry matching ``call`` ("GET /path" or
        "query Name"), else the upstream's."""
        for pattern, policy in self._endpoints:
            if pattern.match(call):
                return policy
        return self.policy

    @property
    def has_endpoints(self) -> bool:
        return bool(self._endpoints)
