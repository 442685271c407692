"""``Explain``: every upstream call an operation made, in ``extensions.graftql.upstreamCalls``.

One entry per call as the operation saw it (``upstreams/events.py``'s ``call`` event)::

    {"upstream": "crm", "method": "GET", "target": "/customers", "batchSize": 3,
     "cache": "miss", "dedup": "joined", "attempts": 1, "durationMs": 4.2}

``target`` is the URL path only (a query string may carry a credential). ``batchSize`` is the
number of keys of the loader batch that made the call (absent outside a loader). ``cache``
appears when a response-cache event said hit, miss or stale for the call; a cache hit that
made no call is listed with ``attempts: 0``. ``dedup`` is ``joined`` when the call shared
another one in flight (it made no attempt of its own), else ``own``.

A request asks for it with the ``graftql-explain`` header; whether it gets it depends on
``server.explain``: ``auto`` (the default) answers it in development and never in production;
``trusted`` answers it, in any mode, only when the header equals ``server.explain_secret``
(compared in constant time); ``off`` never. Explain shows upstream names, paths and timings,
so production must not show them to anyone else. It is asked for rather than always on so
that a development gateway answers exactly what production would, unless someone asks.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from strawberry.extensions import SchemaExtension

from graftql.config import ServerConfig
from graftql.resolvers.loaders import current_batch
from graftql.upstreams import events

__all__ = ["EXPLAIN_HEADER", "Explain", "explain_enabled", "listen_for_calls"]

EXPLAIN_HEADER = "graftql-explain"
_MAX_CALLS = 1000  # an operation listing more is cut there: explain must not grow unbounded


class _Explained:
    """One operation's calls, and cache outcomes not yet matched to a call (per upstream, in
    order): a cache that sits inside the call (a hit still ends in a ``call`` event) and one
    that answers instead of calling are both reported once."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.pending: dict[str, list[dict[str, Any]]] = {}

    def flush(self) -> list[dict[str, Any]]:
        for upstream, notes in self.pending.items():  # answered from the cache: no call
            for fields in notes:
                self.calls.append(
                    _entry(upstream, fields, cache=fields["outcome"], attempts=0, seconds=0.0)
                )
        self.pending.clear()
        return self.calls[:_MAX_CALLS]


_current: ContextVar[_Explained | None] = ContextVar("graftql_explain", default=None)


def explain_enabled(server: ServerConfig) -> bool:
    """Can any request of this server get explain output?"""
    return server.explain == "trusted" or (server.explain == "auto" and server.env == "development")


def listen_for_calls() -> None:
    """Listen for call events (once per process, however many schemas are built)."""
    events.unlisten(_listen)
    events.listen(_listen)


def _listen(event: str, upstream: str, fields: dict[str, Any]) -> None:
    explained = _current.get()
    if explained is None or len(explained.calls) >= _MAX_CALLS:
        return
    if event == "cache":
        if isinstance(fields.get("outcome"), str):
            # The loader batch is known now, in the batch's task, not when it is flushed.
            note = {**fields, "batch": current_batch.get()}
            explained.pending.setdefault(upstream, []).append(note)
        return
    if event != "call":
        return
    cache = None
    notes = explained.pending.get(upstream)
    if notes:
        target = _path(fields.get("target"))
        match = next((n for n in notes if _path(n.get("target")) == target), notes[0])
        notes.remove(match)
        cache = match["outcome"]
    explained.calls.append(
        _entry(
            upstream,
            fields,
            cache=cache,
            attempts=fields.get("attempts", 0),
            seconds=fields.get("seconds", 0.0),
            dedup="joined" if fields.get("joined") else "own",
            outcome=fields.get("outcome", "ok"),
        )
    )


def _entry(
    upstream: str,
    fields: dict[str, Any],
    *,
    cache: str | None,
    attempts: int,
    seconds: float,
    dedup: str | None = None,
    outcome: str = "ok",
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "upstream": upstream,
        "method": fields.get("method"),
        "target": _path(fields.get("target") or fields.get("path")),
    }
    batch = fields["batch"] if "batch" in fields else current_batch.get()
    if batch is not None:
        entry["loader"], entry["batchSize"] = batch
    if cache is not None:
        entry["cache"] = cache
    if dedup is not None:
        entry["dedup"] = dedup
    entry["attempts"] = attempts
    entry["outcome"] = outcome
    entry["durationMs"] = round(seconds * 1000, 1)
    return entry


def _path(target: Any) -> str | None:
    if not isinstance(target, str):
        return None
    return target.split("?", 1)[0]  # an event that carries a URL: drop its query anyway


class Explain(SchemaExtension):
    """Collects the operation's upstream calls and adds them to the result's extensions."""

    def __init__(self, server: ServerConfig) -> None:
        self._mode = server.explain
        self._production = server.env == "production"
        secret = server.explain_secret
        self._secret = secret.reveal().encode() if secret is not None else None
        self._explained: _Explained | None = None

    def _allowed(self) -> bool:
        if self._mode == "off" or (self._mode == "auto" and self._production):
            return False
        request = getattr(self.execution_context.context, "request", None)
        given = request.headers.get(EXPLAIN_HEADER) if request is not None else None
        if given is None:
            return False
        if self._mode == "auto":
            return True
        return self._secret is not None and hmac.compare_digest(given.encode(), self._secret)

    def on_operation(self) -> Iterator[None]:
        if not self._allowed():
            yield
            return
        listen_for_calls()  # again: code that clears all listeners (tests) must not blind us
        self._explained = _Explained()
        token = _current.set(self._explained)
        try:
            yield
        finally:
            try:
                _current.reset(token)
            except ValueError:  # a subscription closed from another context (at shutdown)
                pass

    def get_results(self) -> dict[str, Any]:
        if self._explained is None:
            return {}
        return {"graftql": {"upstreamCalls": self._explained.flush()}}
