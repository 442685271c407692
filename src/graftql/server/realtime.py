"""The gateway's event sources: webhook routes with their inbox, and polling sources.

``create_app`` makes one ``Realtime`` and starts and stops it with the application; the bus
itself is the app's (``Context.bus``)."""

from __future__ import annotations

from typing import Protocol

from starlette.routing import Route

from graftql.config import GatewayConfig
from graftql.events.bus import EventBus
from graftql.events.inbox import InboxObserver, WebhookInbox, invalidation_hook
from graftql.events.polling import PollingSource
from graftql.events.stores import InboxStore, store_from_config
from graftql.server.webhooks import WebhookObserver, WebhookRoutes
from graftql.upstreams import Upstreams

__all__ = ["Realtime"]


class _Observer(InboxObserver, WebhookObserver, Protocol):
    pass


class Realtime:
    def __init__(
        self,
        config: GatewayConfig,
        bus: EventBus,
        upstreams: Upstreams,
        *,
        observer: _Observer | None = None,
        store: InboxStore | None = None,
    ) -> None:
        inbox_config = config.events.inbox
        self.inbox: WebhookInbox | None = None
        self.webhooks: WebhookRoutes | None = None
        if config.webhooks:
            self.inbox = WebhookInbox(
                store if store is not None else store_from_config(config),
                bus,
                invalidate=invalidation_hook(upstreams),
                max_attempts=inbox_config.max_attempts,
                retry_delay=inbox_config.retry_delay,
                retention=inbox_config.retention_days * 86400,
                observer=observer,
            )
            rate_limit = config.server.rate_limit
            self.webhooks = WebhookRoutes(
                config.webhooks,
                self.inbox,
                trusted_proxies=list(rate_limit.trusted_proxies) if rate_limit else None,
                observer=observer,
            )
        self.pollers = [
            PollingSource(name, source, upstreams.rest(source.upstream), bus)
            for name, source in config.events.polling.items()
        ]

    @property
    def routes(self) -> list[Route]:
        if self.webhooks is None:
            return []
        return [Route("/webhooks/{name}", self.webhooks.handle, methods=["GET", "POST", "PUT"])]

    async def start(self) -> None:
        if self.inbox is not None:
            await self.inbox.start()
        for poller in self.pollers:
            await poller.start()

    async def aclose(self) -> None:
        for poller in self.pollers:
            await poller.aclose()
        if self.inbox is not None:
            await self.inbox.aclose()
