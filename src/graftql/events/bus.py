"""The event bus: publish and subscribe by topic.

Two implementations of one ``EventBus`` protocol:

- ``MemoryBus``: one process. ``publish`` hands the event to every current subscriber of the
  topic at once.
- ``RedisBus``: several replicas. ``publish`` is a Redis ``PUBLISH`` on
  ``<key_prefix>bus:<topic>``; each process holds one pub/sub connection (client name
  ``<key_prefix>bus``) subscribed to the topics its local subscribers want, and fans each
  message out to them. A process's own events come back through Redis like everyone else's,
  so every subscriber sees each event exactly once whichever replica published it. When the
  connection is lost the hub reconnects with backoff and subscribes again to every topic in
  use. Redis pub/sub keeps nothing: events published while a replica is disconnected do not
  reach that replica's subscribers (the inbox's events were durably stored first; a subscriber
  that must see every change re-reads state after ``Subscription.gaps`` grows).

Idempotent publishing: ``publish(..., event_id=...)`` skips an id already published
(MemoryBus: the last ``dedup_size`` ids; RedisBus: a ``SET NX`` key per id, kept ``dedup_ttl``
seconds, in the same Lua call as the ``PUBLISH``).

Slow consumers: each subscription has a bounded queue (``queue_size`` events). When it is
full, ``slow_consumer: drop_oldest`` (the default) drops the oldest queued event to make room
and counts it in ``Subscription.dropped``; ``disconnect`` ends that subscription instead
(iteration raises ``SlowConsumer``), so its client knows it missed events. Publishers never
wait for a subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Literal, Protocol

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from graftql.config import RedisConfig
from graftql.errors import GraftqlError

__all__ = [
    "BusUnavailable",
    "EventBus",
    "MemoryBus",
    "RedisBus",
    "SlowConsumer",
    "SlowConsumerPolicy",
    "Subscription",
]

logger = logging.getLogger("graftql.events")

SlowConsumerPolicy = Literal["drop_oldest", "disconnect"]
_RECONNECT_DELAY = (0.05, 5.0)  # first and longest wait between attempts to listen again

# KEYS: the id's marker, the channel. ARGV: the event, the marker's time to live (ms).
_PUBLISH_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[2]) then
  return redis.call('PUBLISH', KEYS[2], ARGV[1])
end
return -1
"""


class BusUnavailable(GraftqlError):
    """An event could not be published (Redis unreachable). The caller decides whether to
    retry: the inbox does; a best-effort publisher may ignore it."""

    code = "BUS_UNAVAILABLE"


class SlowConsumer(GraftqlError):
    """A subscription with ``slow_consumer: disconnect`` fell ``queue_size`` events behind and
    was ended. Its client gets ``SUBSCRIPTION_TOO_SLOW`` (not masked: it is expected, and it
    tells the client to resubscribe)."""

    code = "SUBSCRIPTION_TOO_SLOW"


class EventBus(Protocol):
    """Publish/subscribe by topic. Events are JSON-compatible mappings."""

    async def publish(
        self, topic: str, event: Mapping[str, Any], *, event_id: str | None = None
    ) -> None:
        """Deliver ``event`` to the topic's subscribers. With ``event_id``, an id this bus
        already published (within ``dedup_ttl``) is not published again: a publisher that
        retries after a crash or failure cannot deliver twice."""

    def subscribe(self, topic: str) -> Subscription: ...

    async def health(self) -> dict[str, object]:
        """``/readyz``'s entry for the bus: ``backend``, ``status`` (up, down) and, when down,
        ``detail`` (never a URL or a credential)."""

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


class _Hub(Protocol):
    async def _attach(self, subscription: Subscription) -> None: ...

    async def _detach(self, subscription: Subscription) -> None: ...


class Subscription:
    """One subscriber's view of a topic: ``async with bus.subscribe(t) as events: async for
    event in events``. Events published after ``__aenter__`` returned are delivered; each is a
    fresh dict (subscribers may change theirs)."""

    def __init__(
        self, hub: _Hub, topic: str, *, queue_size: int, policy: SlowConsumerPolicy
    ) -> None:
        self.topic = topic
        self.dropped = 0  # events dropped by ``drop_oldest``
        self.gaps = 0  # times the bus lost its connection while this was subscribed
        self._hub = hub
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(queue_size)
        self._policy = policy
        self._closed = False
        self._overflowed = False
        self._leaving: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Subscription:
        await self._hub._attach(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._hub._detach(self)
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)  # wake a waiting reader

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        """The next event; ends when the subscription is closed; ``SlowConsumer`` when it
        was ended by ``slow_consumer: disconnect``."""
        if not self._overflowed and not (self._closed and self._queue.empty()):
            item = await self._queue.get()
            if item is not None:
                event: dict[str, Any] = orjson.loads(item)
                return event
        if self._overflowed:
            raise SlowConsumer(f"subscriber to {self.topic!r} fell behind and was dropped")
        raise StopAsyncIteration

    async def get(self) -> dict[str, Any]:
        """The next event (for code that does not iterate); ``StopAsyncIteration`` once closed."""
        return await self.__anext__()

    def _offer(self, data: bytes) -> None:
        """Queue one encoded event without ever waiting (publishers never block)."""
        if self._closed:
            return
        try:
            self._queue.put_nowait(data)
            return
        except asyncio.QueueFull:
            pass
        if self._policy == "disconnect":
            self._overflowed = True
            self._closed = True
            # Leave the hub from a task: _offer runs inside the hub's fan-out loop.
            self._leaving = asyncio.get_running_loop().create_task(self._hub._detach(self))
            self._queue.get_nowait()  # room for the wake-up
            self._queue.put_nowait(None)
            return
        self._queue.get_nowait()
        self.dropped += 1
        self._queue.put_nowait(data)


def _encode(event: Mapping[str, Any]) -> bytes:
    return orjson.dumps(dict(event))


class MemoryBus:
    """The bus of a single process."""

    def __init__(
        self,
        *,
        queue_size: int = 1000,
        slow_consumer: SlowConsumerPolicy = "drop_oldest",
        dedup_size: int = 100_000,
    ) -> None:
        self.queue_size = queue_size
        self.slow_consumer: SlowConsumerPolicy = slow_consumer
        self._topics: dict[str, set[Subscription]] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._dedup_size = dedup_size
        self.published = 0

    async def start(self) -> None:
        return None

    async def health(self) -> dict[str, object]:
        return {"backend": "memory", "status": "up"}

    async def aclose(self) -> None:
        for subscriptions in list(self._topics.values()):
            for subscription in list(subscriptions):
                await subscription.aclose()

    def subscribe(self, topic: str) -> Subscription:
        return Subscription(self, topic, queue_size=self.queue_size, policy=self.slow_consumer)

    async def publish(
        self, topic: str, event: Mapping[str, Any], *, event_id: str | None = None
    ) -> None:
        if event_id is not None:
            if event_id in self._seen:
                return
            self._seen[event_id] = None
            if len(self._seen) > self._dedup_size:
                self._seen.popitem(last=False)
        data = _encode(event)
        self.published += 1
        for subscription in list(self._topics.get(topic, ())):
            subscription._offer(data)

    def subscribers(self, topic: str) -> int:
        return len(self._topics.get(topic, ()))

    async def _attach(self, subscription: Subscription) -> None:
        self._topics.setdefault(subscription.topic, set()).add(subscription)

    async def _detach(self, subscription: Subscription) -> None:
        subscriptions = self._topics.get(subscription.topic)
        if subscriptions is not None:
            subscriptions.discard(subscription)
            if not subscriptions:
                del self._topics[subscription.topic]


class RedisBus:
    """The bus of several replicas, over Redis pub/sub (see the module docstring)."""

    def __init__(
        self,
        config: RedisConfig | str,
        *,
        key_prefix: str | None = None,
        queue_size: int = 1000,
        slow_consumer: SlowConsumerPolicy = "drop_oldest",
        publish_timeout: float = 2.0,
        dedup_ttl: float = 86400.0,
    ) -> None:
        if isinstance(config, str):
            config = RedisConfig(url=config)
        self.config = config
        self.prefix = f"{key_prefix if key_prefix is not None else config.key_prefix}bus:"
        self.client_name = f"{self.prefix[:-1]}".replace(" ", "_")
        self.queue_size = queue_size
        self.slow_consumer: SlowConsumerPolicy = slow_consumer
        self._publish_timeout = publish_timeout
        password = config.password.reveal() if config.password else None
        # Publishing: ordinary commands, each bounded.
        self._client = aioredis.Redis.from_url(
            config.url,
            password=password,
            socket_connect_timeout=publish_timeout,
            socket_timeout=publish_timeout,
            client_name=self.client_name,
        )
        # Listening: a connection that waits for messages without a read timeout; a dead peer
        # is found by the keep-alive PINGs of ``health_check_interval``.
        self._listen_client = aioredis.Redis.from_url(
            config.url,
            password=password,
            socket_connect_timeout=publish_timeout,
            health_check_interval=5,
            socket_keepalive=True,
            client_name=self.client_name,
        )
        self._dedup_ms = int(dedup_ttl * 1000)
        self._publish_once = self._client.register_script(_PUBLISH_ONCE)
        self._topics: dict[str, set[Subscription]] = {}
        self._pubsub: aioredis.client.PubSub | None = None
        self._confirmed: dict[str, asyncio.Event] = {}
        self._connected = asyncio.Event()
        self._lock = asyncio.Lock()
        self._listener: asyncio.Task[None] | None = None
        self.reconnects = 0
        self.published = 0

    async def start(self) -> None:
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="graftql-event-bus")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._publish_timeout):
                    await self._connected.wait()

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        for subscriptions in list(self._topics.values()):
            for subscription in list(subscriptions):
                subscription._closed = True
                with contextlib.suppress(asyncio.QueueFull):
                    subscription._queue.put_nowait(None)
        self._topics.clear()
        await self._client.aclose()
        await self._listen_client.aclose()

    def subscribe(self, topic: str) -> Subscription:
        return Subscription(self, topic, queue_size=self.queue_size, policy=self.slow_consumer)

    async def health(self) -> dict[str, object]:
        """Up when Redis answers a PING (publishing works) and the listening connection is
        subscribed (subscribers hear events); ``reconnects``: times that connection was
        lost."""
        report: dict[str, object] = {"backend": "redis", "reconnects": self.reconnects}
        try:
            async with asyncio.timeout(self._publish_timeout):
                await self._client.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            return {**report, "status": "down", "detail": f"no answer ({type(exc).__name__})"}
        if self._listener is not None and not self._connected.is_set():
            return {**report, "status": "down", "detail": "not listening (reconnecting)"}
        return {**report, "status": "up"}

    async def publish(
        self, topic: str, event: Mapping[str, Any], *, event_id: str | None = None
    ) -> None:
        data = _encode(event)
        channel = self.prefix + topic

        async def send() -> Any:
            if event_id is None:
                return await self._client.publish(channel, data)
            keys = [f"{self.prefix}published:{event_id}", channel]
            return await self._publish_once(keys=keys, args=[data, self._dedup_ms])

        try:
            async with asyncio.timeout(self._publish_timeout):
                try:
                    await send()
                except (RedisConnectionError, OSError):
                    # A pooled connection that Redis closed (restart, CLIENT KILL, idle
                    # timeout) fails once; a fresh one is tried before giving up.
                    await send()
        except (RedisError, OSError, TimeoutError) as exc:
            raise BusUnavailable(f"cannot publish to {topic!r}: {type(exc).__name__}") from exc
        self.published += 1

    def subscribers(self, topic: str) -> int:
        return len(self._topics.get(topic, ()))

    # -- the hub ------------------------------------------------------------------------------

    async def _attach(self, subscription: Subscription) -> None:
        await self.start()
        topic = subscription.topic
        subscriptions = self._topics.setdefault(topic, set())
        subscriptions.add(subscription)
        if len(subscriptions) == 1:
            await self._subscribe_channel(topic)
        elif (confirmed := self._confirmed.get(topic)) is not None:
            with contextlib.suppress(TimeoutError):  # another subscriber's SUBSCRIBE in flight
                async with asyncio.timeout(self._publish_timeout):
                    await confirmed.wait()

    async def _subscribe_channel(self, topic: str) -> None:
        """SUBSCRIBE and wait (briefly) for Redis to confirm, so an event published after the
        subscriber's ``__aenter__`` returned is seen. Without a connection the listener
        subscribes once it has one."""
        pubsub = self._pubsub
        if pubsub is None or not self._connected.is_set():
            return
        confirmed = self._confirmed.setdefault(topic, asyncio.Event())
        try:
            async with self._lock:
                await pubsub.subscribe(self.prefix + topic)
        except (RedisError, OSError) as exc:
            logger.warning("event bus: cannot subscribe to %r (%s)", topic, type(exc).__name__)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._publish_timeout):
                await confirmed.wait()

    async def _detach(self, subscription: Subscription) -> None:
        topic = subscription.topic
        subscriptions = self._topics.get(topic)
        if subscriptions is None:
            return
        subscriptions.discard(subscription)
        if subscriptions:
            return
        del self._topics[topic]
        self._confirmed.pop(topic, None)
        pubsub = self._pubsub
        if pubsub is not None and self._connected.is_set():
            with contextlib.suppress(RedisError, OSError):
                async with self._lock:
                    if topic in self._topics:
                        return  # subscribed to again while this waited: stay subscribed
                    await pubsub.unsubscribe(self.prefix + topic)

    async def _listen(self) -> None:
        delay = _RECONNECT_DELAY[0]
        first = True
        while True:
            pubsub = self._listen_client.pubsub()
            try:
                # A channel nobody publishes on keeps the connection subscribed (and so
                # listening) even while no topic is in use.
                await pubsub.subscribe(f"{self.prefix}_hub")
                self._pubsub = pubsub
                self._connected.set()
                if not first:
                    self.reconnects += 1
                    for subscriptions in self._topics.values():
                        for subscription in subscriptions:
                            subscription.gaps += 1
                    logger.warning("event bus: reconnected to redis; subscribing again")
                first = False
                for topic in list(self._topics):
                    self._confirmed[topic] = asyncio.Event()
                    async with self._lock:
                        await pubsub.subscribe(self.prefix + topic)
                delay = _RECONNECT_DELAY[0]
                while True:
                    # A bounded wait, so the keep-alive PING (health_check_interval) is sent
                    # on a quiet connection and a silently dead peer is noticed.
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._dispatch(message)
            except (RedisError, OSError) as exc:
                logger.warning("event bus: lost redis (%s); reconnecting", type(exc).__name__)
            finally:
                self._connected.clear()
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            delay = min(_RECONNECT_DELAY[1], delay * 2)

    def _dispatch(self, message: Mapping[str, Any]) -> None:
        channel = message.get("channel")
        if isinstance(channel, bytes):
            channel = channel.decode()
        if not isinstance(channel, str) or not channel.startswith(self.prefix):
            return
        topic = channel[len(self.prefix) :]
        kind = message.get("type")
        if kind == "subscribe":
            confirmed = self._confirmed.get(topic)
            if confirmed is not None:
                confirmed.set()
            return
        if kind != "message":
            return
        data = message.get("data")
        if not isinstance(data, bytes):
            return
        for subscription in list(self._topics.get(topic, ())):
            subscription._offer(data)
