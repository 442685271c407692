"""The payments demo's outgoing webhooks: Standard Webhooks, signed, sent when a payment's
status changes, and replayed or duplicated on request (to show the gateway's dedup).

Control routes (no credentials, like the other ``/__`` routes):

- ``PUT /__webhooks`` ``{"url": "http://gateway/webhooks/payments"}``: where to send them.
- ``POST /__payments/{id}/status`` ``{"status": "refunded"}``: change a payment's status;
  the service sends a ``payment.updated`` webhook and answers ``{"event_id", "delivered"}``
  (the gateway's HTTP status, or null if it could not be reached).
- ``POST /__webhooks/{event_id}/replay`` ``{"times": 2, "concurrently": true}``: send that
  event again under the same ``webhook-id``, re-signed with a fresh timestamp (as a sender's
  retry is); answers ``{"delivered": [statuses]}``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from standardwebhooks.webhooks import Webhook
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from graftql.demo.data import ORDERS_BY_ID, PAYMENTS_BY_ID

__all__ = ["PaymentWebhooks"]

STATUSES = ("succeeded", "failed", "refunded")


class PaymentWebhooks:
    """Status changes of the demo payments and the webhooks that announce them."""

    def __init__(self, secret: str, url: str | None = None) -> None:
        self._signer = Webhook(secret)
        self.url = url
        self.status: dict[str, str] = {}  # changed statuses, by payment id
        self.sent: dict[str, bytes] = {}  # event id -> body, for replays
        self._updated = 0.0

    def status_of(self, payment_id: str, default: str) -> str:
        return self.status.get(payment_id, default)

    async def _send(self, event_id: str, body: bytes) -> int | None:
        if self.url is None:
            return None
        now = int(time.time())
        signature = self._signer.sign(event_id, datetime.fromtimestamp(now, tz=UTC), body.decode())
        headers = {
            "content-type": "application/json",
            "webhook-id": event_id,
            "webhook-timestamp": str(now),
            "webhook-signature": signature,
        }
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                answer = await client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError:
            return None
        return answer.status_code

    async def change(self, payment_id: str, status: str) -> tuple[str, int | None]:
        payment = PAYMENTS_BY_ID[payment_id]
        self.status[payment_id] = status
        # A strictly increasing version, so the gateway can order this payment's events.
        self._updated = max(time.time(), self._updated + 0.001)
        event_id = f"msg_{uuid.uuid4().hex}"
        body = orjson.dumps(
            {
                "type": "payment.updated",
                "data": {
                    "id": payment.id,
                    "order_id": payment.order_id,
                    "customer_id": ORDERS_BY_ID[payment.order_id].customer_id,
                    "status": status,
                    "amount": payment.amount,
                    "currency": payment.currency,
                    "updated": self._updated,
                },
            }
        )
        self.sent[event_id] = body
        return event_id, await self._send(event_id, body)

    async def replay(self, event_id: str, times: int, concurrently: bool) -> list[int | None]:
        body = self.sent[event_id]
        if concurrently:
            return list(await asyncio.gather(*(self._send(event_id, body) for _ in range(times))))
        return [await self._send(event_id, body) for _ in range(times)]

    def routes(self) -> list[Route]:
        async def target(request: Request) -> Response:
            data = await _json(request)
            url = data.get("url") if isinstance(data, dict) else None
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                return _error("'url' must be an http(s) URL")
            self.url = url
            return JSONResponse({"url": url})

        async def change(request: Request) -> Response:
            payment_id = request.path_params["id"]
            data = await _json(request)
            status = data.get("status") if isinstance(data, dict) else None
            if payment_id not in PAYMENTS_BY_ID:
                return _error("no such payment", 404)
            if status not in STATUSES:
                return _error(f"'status' must be one of {', '.join(STATUSES)}")
            event_id, delivered = await self.change(payment_id, str(status))
            return JSONResponse({"event_id": event_id, "delivered": delivered})

        async def replay(request: Request) -> Response:
            event_id = request.path_params["event_id"]
            data = await _json(request)
            if event_id not in self.sent:
                return _error("no such event", 404)
            times = data.get("times", 1) if isinstance(data, dict) else 1
            if not isinstance(times, int) or not 1 <= times <= 100:
                return _error("'times' must be an integer from 1 to 100")
            concurrently = bool(data.get("concurrently", False))
            return JSONResponse({"delivered": await self.replay(event_id, times, concurrently)})

        return [
            Route("/__webhooks", target, methods=["PUT"]),
            Route("/__payments/{id}/status", change, methods=["POST"]),
            Route("/__webhooks/{event_id}/replay", replay, methods=["POST"]),
        ]


async def _json(request: Request) -> Any:
    try:
        return orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError:
        return None


def _error(message: str, status: int = 400) -> Response:
    return JSONResponse({"error": message}, status_code=status)
