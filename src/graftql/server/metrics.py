"""Prometheus metrics at ``/metrics``: operations, and per upstream what the policies did.

Counted from two sources: the report of every GraphQL operation (``schema/observe.py``) and the
upstream events (``upstreams/events.py``). What has no event is read from the upstreams
themselves: breaker state and transitions, in-flight dedup joins, the quota (and its limit) an
upstream last reported. Those are read when ``/metrics`` is scraped and after each upstream
attempt, so they are right even for changes no event reports (an open breaker turning
half-open with time).

Label values are bounded: upstream names come from the configuration (events of any other
name are ignored), methods and error codes from graftql's code, operation types from GraphQL.
Operation names are left out: clients choose them, and even a persisted-operations manifest can
hold thousands (each a histogram's worth of series); the per-operation log line has the name.

With several worker processes, Prometheus' multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``,
which ``graftql serve --workers N`` sets up) sums counters and histograms over every worker, the
ones that have exited too. The values each worker reads from its own upstreams are gauges that
one worker cannot know for the others, so each worker writes its own and a mode per gauge
combines them: the breaker state is the worst any live worker sees (``livemax``), the quota the
most recently reported one (``livemostrecent``), active subscriptions and WebSocket connections
the sum over the live workers (``livesum``: each client is on one of them). In that mode every
worker also writes the upstream gauges every few seconds, so an idle worker's breaker that
turned half-open shows up too.

Subscriptions: ``schema/subscriptions.py`` tells when one starts and ends; the transports count
each event they sent (``server/websocket.py``, ``server/sse.py``) with the counter handed to
them, and report WebSocket connections opened and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from graftql.schema.observe import OperationReport
from graftql.upstreams import Upstream, events

__all__ = ["GatewayMetrics", "multiprocess"]

# Seconds. An operation's deadline is 30 s by default; most upstream calls take milliseconds.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_TYPES = ("query", "mutation", "subscription")
_OUTCOMES = ("ok", "error", "request_error")
_BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
_CACHE_OUTCOMES = ("hit", "miss", "stale", "revalidated", "bypass")
_TRANSPORTS = ("websocket", "sse")
_WEBSOCKET_PROTOCOLS = ("graphql-transport-ws", "graphql-ws")
# How often each worker writes its gauges in multiprocess mode.
_REFRESH_SECONDS = 5.0


def multiprocess() -> bool:
    """Is prometheus-client in multiprocess mode? It decides once, when it is imported, from
    ``PROMETHEUS_MULTIPROC_DIR``."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


class _Seen:
    """What was last counted or written for one upstream's read-at-scrape values."""

    __slots__ = ("breaker", "breaker_change", "joined", "quota", "quota_limit")

    def __init__(self) -> None:
        self.breaker: object = None  # the breaker last read (a reload may replace it)
        self.breaker_change: object = None  # the last entry of breaker.changes counted
        self.joined = 0
        self.quota: float | None = None
        self.quota_limit: float | None = None


class GatewayMetrics:
    """The metrics of one gateway (one ``create_app``), in a registry of its own.

    ``start()`` begins counting upstream events (the app's lifespan calls it), ``stop()`` ends
    it; ``observe_operation`` takes each operation's report; ``endpoint`` serves ``/metrics``.
    """

    def __init__(self, upstreams: Mapping[str, Upstream]) -> None:
        self._upstreams = dict(upstreams)
        self._seen = {name: _Seen() for name in self._upstreams}
        self.registry = registry = CollectorRegistry()
        self.multiprocess = multiprocess()
        self._refresher: asyncio.Task[None] | None = None

        def counter(name: str, help: str, labels: Iterable[str]) -> Counter:
            return Counter(name, help, list(labels), registry=registry)

        self.operations = counter(
            "graftql_operations",
            "GraphQL operations by type (query, mutation, subscription, unknown) and outcome "
            "(ok, error: ran with errors, request_error: did not run).",
            ["type", "outcome"],
        )
        self.operation_seconds = Histogram(
            "graftql_operation_duration_seconds",
            "GraphQL operation duration (a subscription's whole life), by type.",
            ["type"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self.requests = counter(
            "graftql_upstream_requests",
            "Upstream attempts (retries count each) by method and outcome (ok or error code).",
            ["upstream", "method", "outcome"],
        )
        self.request_seconds = Histogram(
            "graftql_upstream_request_duration_seconds",
            "Upstream attempt duration, including a rate-limit wait and a token fetch.",
            ["upstream"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self.retries = counter(
            "graftql_upstream_retries",
            "Retries about to be sent, by the failed attempt's error code.",
            ["upstream", "reason"],
        )
        self.breaker_state = Gauge(
            "graftql_upstream_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open (with several workers: the "
            "worst any worker sees).",
            ["upstream"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.breaker_transitions = counter(
            "graftql_upstream_breaker_transitions",
            "Circuit breaker state changes, by the new state.",
            ["upstream", "state"],
        )
        self.rate_limit_wait = counter(
            "graftql_upstream_rate_limit_wait_seconds",
            "Seconds calls waited for the gateway's rate limit or the upstream's quota.",
            ["upstream"],
        )
        self.rejections = counter(
            "graftql_upstream_rejections",
            "Calls the gateway refused itself, by bulkhead or rate_limit.",
            ["upstream", "by"],
        )
        self.fallbacks = counter(
            "graftql_upstream_fallbacks",
            "Fallback values served instead of an upstream's error.",
            ["upstream"],
        )
        self.dedup_joins = counter(
            "graftql_upstream_dedup_joins",
            "Calls answered by an identical call already in flight (in-flight dedup).",
            ["upstream"],
        )
        self.quota_remaining = Gauge(
            "graftql_upstream_quota_remaining",
            "Calls left in the upstream's quota, as its rate-limit headers last said.",
            ["upstream"],
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.quota_limit = Gauge(
            "graftql_upstream_quota_limit",
            "The upstream's quota per window, as its rate-limit headers last said (when they "
            "say it): with quota_remaining, the share left.",
            ["upstream"],
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.token_fetches = counter(
            "graftql_upstream_token_fetches",
            "OAuth2 token fetches by outcome (fetched, failed).",
            ["upstream", "outcome"],
        )
        self.cache = counter(
            "graftql_upstream_cache",
            "Response cache lookups by outcome: hit, miss, stale (served stale: revalidating "
            "in the background or stale-if-error), revalidated (a 304), bypass (backend down).",
            ["upstream", "outcome"],
        )
        self.webhooks_received = counter(
            "graftql_webhooks_received", "Webhook deliveries received, by source.", ["source"]
        )
        self.webhooks_verified = counter(
            "graftql_webhooks_verified",
            "Webhook deliveries whose signature (and timestamp) verified, by source.",
            ["source"],
        )
        self.webhooks_rejected = counter(
            "graftql_webhooks_rejected",
            "Webhook deliveries refused, by reason (missing, malformed, mismatch, stale: the "
            "signature; forbidden: the peer address; too_large; bad_payload; unavailable: the "
            "inbox could not store it).",
            ["source", "reason"],
        )
        self.webhooks_duplicated = counter(
            "graftql_webhooks_duplicated",
            "Verified webhook deliveries of an event already stored (acknowledged, not stored).",
            ["source"],
        )
        self.webhooks_processed = counter(
            "graftql_webhooks_processed",
            "Webhook events settled by the inbox, by outcome (processed, superseded: older than "
            "what was processed for its entity, failed: gave up after max_attempts).",
            ["source", "outcome"],
        )
        self.subscriptions_active = Gauge(
            "graftql_subscriptions_active",
            "Subscriptions running now, by transport (websocket, sse); with several workers, "
            "the sum over the live ones.",
            ["transport"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.subscription_events = counter(
            "graftql_subscription_events",
            "Subscription events sent to clients, by transport (websocket, sse).",
            ["transport"],
        )
        # Labelled, as the subscription gauge: a gauge's file is written when its series is
        # made, and a process that serves nothing (the --workers parent) must not write one.
        self.websocket_connections = Gauge(
            "graftql_websocket_connections",
            "GraphQL WebSocket connections open now (accepted), by protocol "
            "(graphql-transport-ws, graphql-ws); with several workers, the sum over the live "
            "ones.",
            ["protocol"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._active: dict[str, Any] = {}  # children by transport, made in start()
        self._delivered: dict[str, Callable[[], None]] = {}
        self._connections: dict[str, Any] = {}
        # Made on first use: a gauge without labels writes its file at once in multiprocess
        # mode, and a process that never runs the inbox (the --workers parent) must not.
        self.inbox_backlog: Gauge | None = None
        # Children by label values: .labels() costs more than the increment itself.
        self._operation_children: dict[tuple[str, str], Any] = {}
        self._operation_seconds_children: dict[str, Any] = {}
        self._request_children: dict[tuple[str, str, str], Any] = {}
        self._request_seconds_children: dict[str, Any] = {}
        self._cache_children: dict[tuple[str, str], Any] = {}

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Count upstream events from now on; series that are known in advance start at 0."""
        for kind in _TYPES:
            self.operation_seconds.labels(kind)
            for outcome in _OUTCOMES:
                self.operations.labels(kind, outcome)
        for name, upstream in self._upstreams.items():
            self.request_seconds.labels(name)
            self.fallbacks.labels(name)
            self.dedup_joins.labels(name)
            self.rate_limit_wait.labels(name)
            if upstream.cache is not None:
                for outcome in _CACHE_OUTCOMES:
                    self.cache.labels(name, outcome)
            if upstream.breaker is not None:
                for state in _BREAKER_STATES:
                    self.breaker_transitions.labels(name, state)
                self.breaker_state.labels(name).set(0)
        for transport in _TRANSPORTS:
            self._active[transport] = self.subscriptions_active.labels(transport)
            self._delivered[transport] = self.subscription_events.labels(transport).inc
        for protocol in _WEBSOCKET_PROTOCOLS:
            self._connections[protocol] = self.websocket_connections.labels(protocol)
        self.sync()
        events.listen(self._on_event)
        if self.multiprocess:
            _forget_dead_workers()
            self._refresher = asyncio.get_running_loop().create_task(self._refresh())

    async def stop(self) -> None:
        events.unlisten(self._on_event)
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        if self.multiprocess:
            # This worker's gauges leave the sums; its counters stay (they were counted).
            mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(_REFRESH_SECONDS)
            self.sync()
            _forget_dead_workers()

    # -- what is counted ------------------------------------------------------------------

    def observe_operation(self, report: OperationReport) -> None:
        key = (report.type, report.outcome)
        counter = self._operation_children.get(key)
        if counter is None:
            counter = self._operation_children[key] = self.operations.labels(*key)
        counter.inc()
        histogram = self._operation_seconds_children.get(report.type)
        if histogram is None:
            histogram = self._operation_seconds_children[report.type] = (
                self.operation_seconds.labels(report.type)
            )
        histogram.observe(report.seconds)

    # -- subscriptions (schema/subscriptions.py) and WebSocket connections (server/websocket.py)

    def subscription_started(self, transport: str) -> Callable[[], None]:
        active = self._active.get(transport)
        if active is None:  # not started (an app built without its lifespan): count nothing
            return _nothing
        active.inc()
        return self._delivered[transport]

    def subscription_ended(self, transport: str) -> None:
        active = self._active.get(transport)
        if active is not None:
            active.dec()

    def websocket_opened(self, protocol: str) -> None:
        connections = self._connections.get(protocol)
        if connections is not None:
            connections.inc()

    def websocket_closed(self, protocol: str) -> None:
        connections = self._connections.get(protocol)
        if connections is not None:
            connections.dec()

    # -- webhooks (server/webhooks.py, events/inbox.py) ---------------------------------------

    def webhook(self, source: str, stage: str, reason: str | None = None) -> None:
        """``stage``: received, verified, rejected (with ``reason``) or duplicated."""
        if stage == "received":
            self.webhooks_received.labels(source).inc()
        elif stage == "verified":
            self.webhooks_verified.labels(source).inc()
        elif stage == "rejected":
            self.webhooks_rejected.labels(source, reason or "unknown").inc()
        elif stage == "duplicated":
            self.webhooks_duplicated.labels(source).inc()

    def processed(self, source: str, outcome: str) -> None:
        self.webhooks_processed.labels(source, outcome).inc()

    def backlog(self, count: int) -> None:
        if self.inbox_backlog is None:
            self.inbox_backlog = Gauge(
                "graftql_webhook_inbox_backlog",
                "Webhook events stored and not yet processed (as of the inbox's last pass).",
                registry=self.registry,
                multiprocess_mode="livemax",
            )
        self.inbox_backlog.set(count)

    def _on_event(self, event: str, upstream: str, fields: dict[str, Any]) -> None:
        if upstream not in self._seen:
            return  # not one of ours: label values come from the configuration only
        if event == "attempt":
            key = (upstream, str(fields.get("method")), str(fields.get("outcome")))
            counter = self._request_children.get(key)
            if counter is None:
                counter = self._request_children[key] = self.requests.labels(*key)
            counter.inc()
            histogram = self._request_seconds_children.get(upstream)
            if histogram is None:
                histogram = self._request_seconds_children[upstream] = self.request_seconds.labels(
                    upstream
                )
            histogram.observe(fields.get("seconds", 0.0))
            self._sync_upstream(upstream, self._upstreams[upstream], read_state=False)
        elif event == "retry":
            self.retries.labels(upstream, str(fields.get("reason"))).inc()
        elif event == "breaker":
            self._sync_upstream(upstream, self._upstreams[upstream], read_state=False)
        elif event == "rate_limit_wait":
            self.rate_limit_wait.labels(upstream).inc(fields.get("seconds", 0.0))
        elif event == "rejected":
            self.rejections.labels(upstream, str(fields.get("by"))).inc()
        elif event == "fallback":
            self.fallbacks.labels(upstream).inc()
        elif event == "cache":
            looked = (upstream, str(fields.get("outcome")))
            child = self._cache_children.get(looked)
            if child is None:
                if looked[1] not in _CACHE_OUTCOMES:
                    return
                child = self._cache_children[looked] = self.cache.labels(*looked)
            child.inc()
        elif event == "token":
            self.token_fetches.labels(upstream, str(fields.get("outcome"))).inc()

    def sync(self) -> None:
        """Read what has no event from every upstream: breaker state and transitions, dedup
        joins, the reported quota."""
        for name, upstream in self._upstreams.items():
            self._sync_upstream(name, upstream, read_state=True)

    def _sync_upstream(self, name: str, upstream: Upstream, *, read_state: bool) -> None:
        seen = self._seen[name]
        breaker = upstream.breaker
        if breaker is not seen.breaker:
            # A configuration reload replaced the breaker: show the new one's state.
            replaced = seen.breaker is not None
            seen.breaker, seen.breaker_change = breaker, None
            if replaced:
                moved_to = breaker.changes[-1][1] if breaker and breaker.changes else "closed"
                self.breaker_state.labels(name).set(_BREAKER_STATES[moved_to])
        if breaker is not None:
            if read_state:
                breaker.state  # noqa: B018 - an open breaker turns half-open when it is read
            changes = breaker.changes  # every change, read without the property's clock call
            if changes and changes[-1] is not seen.breaker_change:
                for _, moved_to in _new_changes(changes, seen.breaker_change):
                    self.breaker_transitions.labels(name, moved_to).inc()
                seen.breaker_change = changes[-1]
                self.breaker_state.labels(name).set(_BREAKER_STATES[changes[-1][1]])
        joined = upstream.flights.joined
        if joined != seen.joined:
            self.dedup_joins.labels(name).inc(joined - seen.joined)
            seen.joined = joined
        remaining = upstream.rate.remaining
        # Written only when it changed: with several workers the newest report wins.
        if remaining is not None and remaining != seen.quota:
            self.quota_remaining.labels(name).set(remaining)
            seen.quota = remaining
        limit = upstream.rate.limit
        if limit is not None and limit != seen.quota_limit:
            self.quota_limit.labels(name).set(limit)
            seen.quota_limit = limit

    # -- /metrics -------------------------------------------------------------------------

    async def endpoint(self, request: Request) -> Response:
        self.sync()
        encoder, media_type = choose_encoder(request.headers.get("accept", ""))
        if self.multiprocess:
            # Every worker's files, read afresh for each scrape (the library's recipe).
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry = self.registry
        body = await run_in_threadpool(encoder, registry)
        return Response(body, media_type=media_type)


def _nothing() -> None:
    pass


def _forget_dead_workers() -> None:
    """Drop the gauges of workers that died without stopping (killed, crashed): the server
    that restarts them cannot tell the library. Their counters stay, as they should."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    pids: set[int] = set()
    for path in glob.glob(os.path.join(glob.escape(directory), "gauge_live*_*.db")):
        digits = os.path.basename(path)[: -len(".db")].rpartition("_")[2]
        if digits.isdigit():
            pids.add(int(digits))
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid)  # type: ignore[no-untyped-call]
        except PermissionError:  # alive, another user's: not one of our workers anyway
            pass


def _new_changes(changes: list[Any], last: object) -> list[Any]:
    """The breaker's changes after ``last`` (all that are kept, if ``last`` fell off)."""
    for index in range(len(changes) - 1, -1, -1):
        if changes[index] is last:
            return changes[index + 1 :]
    return list(changes)
