"""``POST /webhooks/<name>``: verify a delivery, store it in the inbox, acknowledge.

In order, each step answering for itself:

1. unknown source: 404; a method other than POST: 405;
2. ``allow_ips`` set and the peer (the real one: X-Forwarded-For only from trusted proxies)
   not in it: 403;
3. a body over ``max_body_bytes`` (by Content-Length, or counted while reading): 413;
4. the signature, on the raw body bytes (``events/signatures.py``): 400 for malformed
   headers, 401 for a missing or wrong signature or a stale timestamp;
5. a body that is not a JSON object, or lacks a field the topic names: 400;
6. the inbox stores it: 200 ``{"status": "stored"}``, or 200 ``{"status": "duplicate"}``
   for an event id already stored; the store failing: 503 (the sender retries).

Nothing is stored unless every check passed. Answers are small JSON bodies that name the
reason, never a secret or a stack trace.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from graftql.config.webhooks import WebhookSourceConfig
from graftql.events.inbox import WebhookInbox
from graftql.events.signatures import SignatureRejected, Verified, Verifier
from graftql.events.stores import InboxEvent, StoreError
from graftql.events.templates import field, fill_template
from graftql.schema.ratelimit import client_address

__all__ = ["WebhookObserver", "WebhookRoutes"]


class WebhookObserver(Protocol):
    def webhook(self, source: str, stage: str, reason: str | None = None) -> None: ...


class _TooLarge(Exception):
    pass


def _version(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


class WebhookRoutes:
    """Every configured source's route; ``handle`` is the Starlette endpoint."""

    def __init__(
        self,
        sources: Mapping[str, WebhookSourceConfig],
        inbox: WebhookInbox,
        *,
        trusted_proxies: list[str] | None = None,
        observer: WebhookObserver | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sources = dict(sources)
        self.inbox = inbox
        self.observer = observer
        self.clock = clock
        self._verifiers = {name: Verifier(cfg, clock=clock) for name, cfg in sources.items()}
        default_trusted = trusted_proxies or []
        self._trusted = {
            name: tuple(
                ipaddress.ip_network(n)
                for n in (
                    cfg.trusted_proxies if cfg.trusted_proxies is not None else default_trusted
                )
            )
            for name, cfg in sources.items()
        }
        self._allowed = {
            name: tuple(ipaddress.ip_network(n) for n in cfg.allow_ips)
            for name, cfg in sources.items()
        }

    def _note(self, source: str, stage: str, reason: str | None = None) -> None:
        if self.observer is not None:
            self.observer.webhook(source, stage, reason)

    def _refuse(self, source: str, status: int, reason: str, message: str) -> Response:
        self._note(source, "rejected", reason)
        return JSONResponse({"error": message}, status_code=status)

    async def handle(self, request: Request) -> Response:
        name = request.path_params["name"]
        config = self.sources.get(name)
        if config is None:
            return JSONResponse({"error": "no such webhook source"}, status_code=404)
        if request.method != "POST":
            return JSONResponse(
                {"error": "webhooks are POSTed"}, status_code=405, headers={"Allow": "POST"}
            )
        self._note(name, "received")
        allowed = self._allowed[name]
        if allowed:
            peer = client_address(request, self._trusted[name])
            if peer is None or not any(
                peer.version == net.version and peer in net for net in allowed
            ):
                return self._refuse(name, 403, "forbidden", "this address may not deliver")
        try:
            body = await self._body(request, config.max_body_bytes)
        except _TooLarge:
            return self._refuse(name, 413, "too_large", "the body is too large")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers.raw}
        try:
            verified = self._verifiers[name].verify(body, headers)
        except SignatureRejected as exc:
            return self._refuse(name, exc.status, exc.reason, exc.message)
        self._note(name, "verified")
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):
            return self._refuse(name, 400, "bad_payload", "the body is not a JSON object")
        event = self._event(name, config, verified, payload, body, headers)
        if isinstance(event, str):
            return self._refuse(name, 400, "bad_payload", event)
        try:
            stored = await self.inbox.accept(event)
        except StoreError:
            return self._refuse(
                name, 503, "unavailable", "the event could not be stored; retry later"
            )
        if not stored:
            self._note(name, "duplicated")
        return JSONResponse({"status": "stored" if stored else "duplicate", "id": event.event_id})

    async def _body(self, request: Request, limit: int) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise _TooLarge
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    def _event(
        self,
        name: str,
        config: WebhookSourceConfig,
        verified: Verified,
        payload: dict[str, Any],
        body: bytes,
        headers: Mapping[str, str],
    ) -> InboxEvent | str:
        event_id = verified.event_id
        if event_id is None:
            given = payload.get("id")
            # No id from the sender: the body's hash, so an identical re-delivery is one event.
            event_id = str(given) if given not in (None, "") else hashlib.sha256(body).hexdigest()
        if config.scheme == "github":
            kind = headers.get("x-github-event", "")
        else:
            kind_value = field(payload, config.type_field)
            kind = str(kind_value) if kind_value is not None else ""
        extra = {"source": name, "type": kind, "id": event_id}
        topic = fill_template(config.topic, payload, extra)
        if topic is None:
            return f"the payload lacks a field the topic {config.topic!r} needs"
        entity = fill_template(config.entity, payload, extra) if config.entity else None
        version: float | None = None
        if entity is not None:
            if config.version_field is not None:
                version = _version(field(payload, config.version_field))
                if version is None:
                    return f"the payload's {config.version_field!r} is not a number or time"
            else:
                version = verified.timestamp if verified.timestamp is not None else self.clock()
        tags = [t for t in (fill_template(x, payload, extra) for x in config.invalidate) if t]
        received = self.clock()
        return InboxEvent(
            source=name,
            event_id=event_id,
            topic=topic,
            event={
                "id": event_id,
                "source": name,
                "type": kind,
                "version": version,
                "receivedAt": received,
                "data": payload,
            },
            entity=entity,
            version=version,
            tags=tags,
        )
