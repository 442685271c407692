"""``ObserveSubscriptions``: when a subscription starts and ends, by transport, and how its
transport counts each event it delivers — for the metrics, knowing nothing of Prometheus.

A subscription is counted from the moment it passed validation and its execution began
(``on_execute``) until the operation ends (``on_operation``), when its source is closed:
completed, stopped by the client, or its connection gone. The transport is ``websocket``
(both WebSocket protocols) or ``sse`` (graphql-sse); subscriptions do not run over plain HTTP.

Events: the observer hands back, for each subscription, the callable that counts one event.
It is kept in a context variable of the task that runs the subscription (strawberry runs the
operation's generator, and so this hook, in the transport's task for that operation); the
transport calls ``delivered()`` after it has sent an event to the client. Queries and
mutations on the same transports find no callable there and count nothing. The cost per event
is that one lookup and the counter's increment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextvars import ContextVar, Token
from typing import Protocol

from starlette.websockets import WebSocket
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

__all__ = ["ObserveSubscriptions", "SubscriptionObserver", "delivered", "delivery"]

_delivery: ContextVar[Callable[[], None] | None] = ContextVar(
    "graftql_subscription_delivery", default=None
)


class SubscriptionObserver(Protocol):
    def subscription_started(self, transport: str) -> Callable[[], None]:
        """One more subscription runs on ``transport``; returns what counts one event."""

    def subscription_ended(self, transport: str) -> None: ...


def delivery() -> Callable[[], None] | None:
    """What counts an event of the subscription that this task runs (None: not one)."""
    return _delivery.get()


def delivered() -> None:
    """The transport sent one event of the subscription that this task runs."""
    count = _delivery.get()
    if count is not None:
        count()


class ObserveSubscriptions(SchemaExtension):
    """Pass it as a factory: ``lambda: ObserveSubscriptions(observer)``."""

    def __init__(self, observer: SubscriptionObserver) -> None:
        self._observer = observer
        self._transport: str | None = None
        self._token: Token[Callable[[], None] | None] | None = None

    def on_operation(self) -> Iterator[None]:
        # The operation's whole life: for a subscription, until its source is closed.
        try:
            yield
        finally:
            if self._transport is not None:
                self._observer.subscription_ended(self._transport)
                self._transport = None
            if self._token is not None:
                try:
                    _delivery.reset(self._token)
                except ValueError:  # closed from another task (a stop, the connection's end)
                    pass

    def on_execute(self) -> Iterator[None]:
        # Strawberry wraps only the start of a subscription in on_execute, but by then the
        # operation's type is known, and it has passed validation.
        context = self.execution_context
        if context.operation_type is OperationType.SUBSCRIPTION and self._transport is None:
            request = getattr(context.context, "request", None)
            transport = "websocket" if isinstance(request, WebSocket) else "sse"
            self._token = _delivery.set(self._observer.subscription_started(transport))
            self._transport = transport
        yield
