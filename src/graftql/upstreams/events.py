"""What the policies did, as events: one small interface for metrics, logs and tests.

``listen(callback)`` registers ``callback(event, upstream, fields)``; every policy reports
through ``emit``. Events: ``attempt`` (attempt, method, outcome: "ok" or the error code,
status, seconds), ``retry`` (attempt, delay, reason), ``breaker`` (state),
``rate_limit_wait`` (seconds), ``rejected`` (by: bulkhead | rate_limit), ``fallback``
(loader or field, reason), ``token`` (outcome: fetched | failed, trigger: missing | expiring |
rejected, principal; for OAuth2 token fetches), ``auth_rejected`` (status, method, principal: an
upstream answered 401/403), ``secret_reload`` (key, outcome: changed | unchanged | failed,
principal), ``cache`` (outcome: hit | miss | stale | revalidated | bypass, scope: service |
principal, and for stale and bypass a reason), ``call`` (once per call as its caller saw it,
after its attempts: method, target (the URL path, never the query), attempts, joined (it shared
a call in flight), outcome, seconds). ``token``, ``auth_rejected`` and
``secret_reload`` are the audit trail (``server/logs.py``). A listener must be quick;
if it raises, the error is logged and the call that emitted the event goes on as if nothing
happened.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["Listener", "emit", "listen", "listening", "unlisten"]

Listener = Callable[[str, str, dict[str, Any]], None]

_listeners: list[Listener] = []
logger = logging.getLogger("graftql.upstreams")


def listen(listener: Listener) -> None:
    _listeners.append(listener)


def unlisten(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def listening() -> bool:
    """Is anyone listening? Lets a hot path skip measuring what nobody reads."""
    return bool(_listeners)


def emit(event: str, upstream: str, **fields: Any) -> None:
    for listener in _listeners:
        try:
            listener(event, upstream, fields)
        except Exception:
            logger.exception("an event listener failed on %s", event)
