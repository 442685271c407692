"""The "shipping" demo upstream: a legacy REST API that answers XML and wants signed requests.

Every request carries ``X-Key-Id``, ``X-Timestamp`` (unix seconds) and ``X-Signature``, the
lowercase hex HMAC-SHA256 under the shared secret of the canonical string::

    "\\n".join([timestamp, METHOD, raw_path, raw_query, sha256_hex(body)])

``raw_path`` is the path exactly as it went over the wire (percent-encoding untouched, no
query) and ``raw_query`` the raw query string (empty if none). Signing the raw bytes rather
than a decoded form is deliberate: it is what catches a client that re-encodes paths. A
timestamp more than :data:`MAX_SKEW_SECONDS` from the service clock is rejected as stale.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Final
from xml.sax.saxutils import escape

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from graftql.demo.data import SHIPMENTS_BY_ORDER_ID, Shipment
from graftql.demo.services.common import (
    ServiceControl,
    create_service_app,
    query_list,
    raw_path,
    raw_query,
)

SERVICE_NAME: Final = "shipping"
MAX_ORDER_IDS: Final = 100
MAX_SKEW_SECONDS: Final = 300
XML_DECLARATION: Final = '<?xml version="1.0" encoding="UTF-8"?>'
XML_MEDIA_TYPE: Final = "application/xml; charset=utf-8"


def element(tag: str, content: str | Iterable[str] = "") -> str:
    """``<tag>content</tag>``; a str is escaped text, an iterable is already-built children.

    Tags are always literals from this module; only text content comes from data, and it is
    always escaped here, so no caller can splice unescaped data into the document.
    """
    inner = escape(content) if isinstance(content, str) else "".join(content)
    return f"<{tag}>{inner}</{tag}>" if inner else f"<{tag}/>"


def shipment_xml(shipment: Shipment) -> str:
    return element(
        "shipment",
        [
            element("order_id", shipment.order_id),
            element("status", shipment.status),
            element("tracking_number", shipment.tracking_number),
            element("eta", shipment.eta),
        ],
    )


def xml_response(body: str, status: int = 200) -> Response:
    return Response(
        (XML_DECLARATION + body).encode("utf-8"),
        status_code=status,
        headers={"Content-Type": XML_MEDIA_TYPE},
    )


def error_response(status: int, code: str, message: str) -> Response:
    return xml_response(
        element("error", [element("code", code), element("message", message)]), status
    )


def canonical_string(timestamp: str, method: str, path: str, query: str, body: bytes) -> str:
    return "\n".join([timestamp, method, path, query, hashlib.sha256(body).hexdigest()])


async def list_shipments(request: Request) -> Response:
    order_ids = query_list(request, "order_ids")
    if not order_ids:
        return error_response(400, "bad_request", "order_ids is required, e.g. ?order_ids=o1,o2")
    if len(order_ids) > MAX_ORDER_IDS:
        return error_response(400, "bad_request", f"at most {MAX_ORDER_IDS} order_ids")
    # Request order, duplicates collapsed; orders without a shipment are simply absent.
    found = [
        shipment_xml(shipment)
        for order_id in dict.fromkeys(order_ids)
        if (shipment := _shipment(request, order_id)) is not None
    ]
    return xml_response(element("shipments", found))


def _shipment(request: Request, order_id: str) -> Shipment | None:
    """The shipment as it is now: the data, with any status changed through the control route."""
    shipment = SHIPMENTS_BY_ORDER_ID.get(order_id)
    status = request.app.state.shipment_status.get(order_id)
    if shipment is not None and status is not None:
        shipment = replace(shipment, status=status)
    return shipment


async def feed(request: Request) -> Response:
    """Every shipment: what a poller reads to notice changes (there are no webhooks)."""
    found = [shipment_xml(s) for o in SHIPMENTS_BY_ORDER_ID if (s := _shipment(request, o))]
    return xml_response(element("shipments", found))


async def change_status(request: Request) -> Response:
    """``POST /__shipments/{order_id}/status`` ``{"status": "DELIVERED"}`` (a control route:
    the demo's way to make a shipment move)."""
    order_id = request.path_params["order_id"]
    try:
        status = json.loads(await request.body() or b"{}").get("status")
    except (ValueError, AttributeError):
        status = None
    if order_id not in SHIPMENTS_BY_ORDER_ID:
        return JSONResponse({"error": "no such shipment"}, status_code=404)
    if status not in ("IN_TRANSIT", "DELIVERED"):
        return JSONResponse({"error": "'status' is IN_TRANSIT or DELIVERED"}, status_code=400)
    request.app.state.shipment_status[order_id] = status
    return JSONResponse({"order_id": order_id, "status": status})


async def get_shipment(request: Request) -> Response:
    order_id = request.path_params["order_id"]
    shipment = _shipment(request, order_id)
    if shipment is None:
        return error_response(404, "not_found", f"no shipment for order {order_id}")
    return xml_response(shipment_xml(shipment))


def create_app(
    *,
    key_id: str,
    secret: str | bytes,
    control: ServiceControl | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The shipping service, accepting requests signed with ``secret`` under ``key_id``."""
    if not key_id or not secret:
        raise ValueError("key_id and secret must not be empty")
    control = control or ServiceControl(SERVICE_NAME)
    secret_bytes = secret.encode("utf-8") if isinstance(secret, str) else secret

    def unauthorized(reason: str) -> Response:
        return error_response(401, "unauthorized", reason)

    async def guard(request: Request) -> Response | None:
        headers = request.headers
        for name in ("X-Key-Id", "X-Timestamp", "X-Signature"):
            if name not in headers:
                return unauthorized(f"missing {name} header")
        if not hmac.compare_digest(headers["x-key-id"].encode("latin-1"), key_id.encode()):
            return unauthorized("unknown key id")
        timestamp = headers["x-timestamp"]
        if not (timestamp.isascii() and timestamp.isdecimal() and len(timestamp) <= 12):
            return unauthorized("X-Timestamp must be integer unix seconds")
        if abs(clock() - int(timestamp)) > MAX_SKEW_SECONDS:
            return unauthorized("stale timestamp")
        canonical = canonical_string(
            timestamp,
            request.method,
            raw_path(request.scope),
            raw_query(request.scope),
            await request.body(),
        )
        expected = hmac.new(secret_bytes, canonical.encode("utf-8"), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(headers["x-signature"].encode("latin-1"), expected.encode()):
            return unauthorized("signature mismatch")
        return None

    routes = [
        Route("/shipments", list_shipments, methods=["GET"]),
        Route("/shipments/{order_id}", get_shipment, methods=["GET"]),
        Route("/feed/shipments", feed, methods=["GET"]),
        Route("/__shipments/{order_id}/status", change_status, methods=["POST"]),
    ]
    app = create_service_app(control, routes, error_response=error_response, guard=guard)
    app.state.shipment_status = {}
    return app
