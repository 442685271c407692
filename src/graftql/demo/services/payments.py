"""The "payments" demo upstream: a payment-provider style REST/JSON API behind OAuth2.

Clients first obtain a short-lived bearer token with the OAuth2 client-credentials grant at
``POST /oauth/token`` (RFC 6749 section 4.4), then call the ``/v1/payments`` API with it.
Lists use Stripe-style cursor pagination (``limit`` + ``starting_after``). Token expiry is
measured with an injectable clock so tests can expire tokens without sleeping.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from typing import Final
from urllib.parse import parse_qs, unquote_plus

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from graftql.demo.data import ORDERS_BY_ID, PAYMENTS, PAYMENTS_BY_ID, Payment
from graftql.demo.services.common import (
    JSONObject,
    ServiceControl,
    create_service_app,
    parse_bounded_int,
    query_list,
)
from graftql.demo.services.payment_webhooks import PaymentWebhooks

SERVICE_NAME: Final = "payments"
TOKEN_PATH: Final = "/oauth/token"
DEFAULT_TOKEN_TTL: Final = 300
DEFAULT_SCOPE: Final = "payments:read"
MAX_ORDER_IDS: Final = 100
DEFAULT_LIMIT: Final = 10
MAX_LIMIT: Final = 100
# The RFC requires no caching of token responses.
_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_SORTED_PAYMENTS: Final = tuple(sorted(PAYMENTS, key=lambda p: p.id))


def payment_json(payment: Payment, webhooks: PaymentWebhooks | None = None) -> JSONObject:
    return {
        "id": payment.id,
        "object": "payment",
        "order_id": payment.order_id,
        "status": webhooks.status_of(payment.id, payment.status) if webhooks else payment.status,
        "amount": payment.amount,
        "currency": payment.currency,
        "created": payment.created,
    }


def api_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"error": {"type": "invalid_request_error", "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def error_response(status: int, code: str, message: str) -> Response:
    """Routing errors and injected failures in the provider's error shape."""
    error_type = "api_error" if status >= 500 else "invalid_request_error"
    body = {"error": {"type": error_type, "code": code, "message": message}}
    return JSONResponse(body, status_code=status)


def oauth_error(status: int, code: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {"error": code}, status_code=status, headers={**_NO_STORE, **(headers or {})}
    )


class TokenStore:
    """Issued access tokens and their expiry, by the service's clock."""

    def __init__(self, ttl: int, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self._clock = clock
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self) -> str:
        token = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            # Drop expired tokens on each issue so the store stays as small as the live set.
            self._expiry = {t: exp for t, exp in self._expiry.items() if exp > now}
            self._expiry[token] = now + self.ttl
        return token

    def is_valid(self, token: str) -> bool:
        with self._lock:
            expiry = self._expiry.get(token)
        return expiry is not None and self._clock() < expiry


def _client_credentials(
    request: Request, form: dict[str, list[str]]
) -> tuple[str, str] | Response | None:
    """The client's (id, secret) from HTTP Basic or the form; None if it sent neither."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    basic = scheme.lower() == "basic"
    in_form = "client_id" in form or "client_secret" in form
    if basic and in_form:  # RFC 6749 2.3: a client must use only one authentication method
        return oauth_error(400, "invalid_request")
    if basic:
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return oauth_error(
                401, "invalid_client", {"WWW-Authenticate": 'Basic realm="payments"'}
            )
        client_id, sep, client_secret = decoded.partition(":")
        if not sep:
            return oauth_error(
                401, "invalid_client", {"WWW-Authenticate": 'Basic realm="payments"'}
            )
        # RFC 6749 2.3.1: both parts are form-urlencoded before being joined and encoded.
        return unquote_plus(client_id), unquote_plus(client_secret)
    if in_form:
        return form.get("client_id", [""])[0], form.get("client_secret", [""])[0]
    return None


def create_app(
    *,
    client_id: str,
    client_secret: str,
    token_ttl: int = DEFAULT_TOKEN_TTL,
    control: ServiceControl | None = None,
    clock: Callable[[], float] = time.monotonic,
    webhook_secret: str | None = None,
    webhook_url: str | None = None,
) -> Starlette:
    """The payments service with one OAuth2 client; tokens live ``token_ttl`` seconds.

    With ``webhook_secret`` (a ``whsec_`` Standard Webhooks secret) it sends a signed webhook
    to ``webhook_url`` whenever a payment's status is changed (``payment_webhooks.py``)."""
    if not client_id or not client_secret:
        raise ValueError("client_id and client_secret must not be empty")
    if token_ttl <= 0:
        raise ValueError("token_ttl must be positive")
    control = control or ServiceControl(SERVICE_NAME)
    tokens = TokenStore(token_ttl, clock)

    async def issue_token(request: Request) -> Response:
        try:
            form = parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return oauth_error(400, "invalid_request")
        if any(len(values) > 1 for values in form.values()):
            return oauth_error(400, "invalid_request")  # RFC 6749 3.2: no repeated parameters
        grant_type = form.get("grant_type", [""])[0]
        if not grant_type:
            return oauth_error(400, "invalid_request")
        credentials = _client_credentials(request, form)
        if isinstance(credentials, Response):
            return credentials
        # Compare both parts even if the first differs, so timing says nothing about which.
        id_ok = credentials is not None and hmac.compare_digest(
            credentials[0].encode(), client_id.encode()
        )
        secret_ok = credentials is not None and hmac.compare_digest(
            credentials[1].encode(), client_secret.encode()
        )
        if not (id_ok and secret_ok):
            return oauth_error(
                401, "invalid_client", {"WWW-Authenticate": 'Basic realm="payments"'}
            )
        if grant_type != "client_credentials":
            return oauth_error(400, "unsupported_grant_type")
        scope = form.get("scope", [""])[0] or DEFAULT_SCOPE
        body = {
            "access_token": tokens.issue(),
            "token_type": "Bearer",
            "expires_in": token_ttl,
            "scope": scope,
        }
        return JSONResponse(body, headers=_NO_STORE)

    async def guard(request: Request) -> Response | None:
        if request.scope["path"] == TOKEN_PATH:
            return None  # the token endpoint authenticates the client itself
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and tokens.is_valid(token.strip()):
            return None
        return api_error(
            401,
            "invalid or expired token",
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )

    routes = [
        Route(TOKEN_PATH, issue_token, methods=["POST"]),
        Route("/v1/payments", list_payments, methods=["GET"]),
        Route("/v1/payments/{id}", get_payment, methods=["GET"]),
    ]
    webhooks = PaymentWebhooks(webhook_secret, webhook_url) if webhook_secret else None
    if webhooks is not None:
        routes += webhooks.routes()
    app = create_service_app(control, routes, error_response=error_response, guard=guard)
    app.state.tokens = tokens
    app.state.webhooks = webhooks
    return app


async def list_payments(request: Request) -> Response:
    params = request.query_params
    order_ids = query_list(request, "order_ids")
    if order_ids is not None and not order_ids:
        return api_error(400, "order_ids must list at least one order id")
    if order_ids is not None and len(order_ids) > MAX_ORDER_IDS:
        return api_error(400, f"at most {MAX_ORDER_IDS} order_ids per request")
    try:
        limit = parse_bounded_int(
            params.get("limit"), name="limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT
        )
    except ValueError as exc:
        return api_error(400, str(exc))
    cursor = params.get("starting_after")
    if cursor is not None and cursor not in PAYMENTS_BY_ID:
        return api_error(400, "starting_after is not a known payment id")
    wanted = set(order_ids) if order_ids is not None else set(ORDERS_BY_ID)
    # The cursor is an id, and the list is sorted by id, so "after the cursor" is a plain
    # comparison: it stays correct even if the cursor itself is filtered out of this list.
    remaining = [
        p for p in _SORTED_PAYMENTS if p.order_id in wanted and (cursor is None or p.id > cursor)
    ]
    page = remaining[:limit]
    return JSONResponse(
        {
            "object": "list",
            "data": [payment_json(p, request.app.state.webhooks) for p in page],
            "has_more": len(remaining) > limit,
        }
    )


async def get_payment(request: Request) -> Response:
    payment = PAYMENTS_BY_ID.get(request.path_params["id"])
    if payment is None:
        return api_error(404, "no such payment")
    return JSONResponse(payment_json(payment, request.app.state.webhooks))
