"""Real-time: the event bus, webhook verification and the inbox, polling sources
(docs/realtime.md). Events flow up: source -> inbox -> bus -> subscription resolvers."""

from __future__ import annotations

from graftql.config import GatewayConfig
from graftql.events.bus import (
    BusUnavailable,
    EventBus,
    MemoryBus,
    RedisBus,
    SlowConsumer,
    SlowConsumerPolicy,
    Subscription,
)

__all__ = [
    "BusUnavailable",
    "EventBus",
    "MemoryBus",
    "RedisBus",
    "SlowConsumer",
    "SlowConsumerPolicy",
    "Subscription",
    "bus_from_config",
]


def bus_from_config(config: GatewayConfig) -> EventBus:
    """The bus ``events.bus`` describes: in memory, or Redis (the top-level ``redis:``)."""
    bus = config.events.bus
    if bus.backend == "redis" and config.redis is not None:
        return RedisBus(
            config.redis,
            queue_size=bus.queue_size,
            slow_consumer=bus.slow_consumer,
            dedup_ttl=config.events.inbox.retention_days * 86400,
        )
    return MemoryBus(queue_size=bus.queue_size, slow_consumer=bus.slow_consumer)
