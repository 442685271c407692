"""The "crm" demo upstream: a REST/JSON API over the seeded customers and their orders.

Authenticated with a static ``X-Api-Key`` header. It offers single and batch customer lookups
(the batch endpoint is what a gateway's DataLoader should use), page-number pagination of a
customer's orders, and single order lookups.
"""

from __future__ import annotations

import hmac
import math
from typing import Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from graftql.demo.data import CUSTOMERS_BY_ID, ORDERS_BY_CUSTOMER_ID, ORDERS_BY_ID, Customer, Order
from graftql.demo.services.common import (
    JSONObject,
    ServiceControl,
    create_service_app,
    parse_bounded_int,
    query_list,
)

SERVICE_NAME: Final = "crm"
MAX_IDS: Final = 100
DEFAULT_PER_PAGE: Final = 10
MAX_PER_PAGE: Final = 100


def customer_json(customer: Customer) -> JSONObject:
    return {"id": customer.id, "name": customer.name, "email": customer.email}


def order_json(order: Order) -> JSONObject:
    return {
        "id": order.id,
        "customer_id": order.customer_id,
        "status": order.status,
        "currency": order.currency,
        "total_amount": order.total_amount,
        "created_at": order.created_at,
        "lines": [
            {
                "product_id": line.product_id,
                "quantity": line.quantity,
                "unit_amount": line.unit_amount,
            }
            for line in order.lines
        ],
    }


def error_response(status: int, code: str, message: str = "") -> Response:
    body: JSONObject = {"error": code}
    if message and message != code:
        body["message"] = message
    return JSONResponse(body, status_code=status)


async def get_customer(request: Request) -> Response:
    customer = CUSTOMERS_BY_ID.get(request.path_params["id"])
    if customer is None:
        return error_response(404, "not_found")
    return JSONResponse(customer_json(customer))


async def list_customers(request: Request) -> Response:
    ids = query_list(request, "ids")
    if not ids:
        return error_response(400, "ids is required, e.g. ?ids=c1,c2")
    if len(ids) > MAX_IDS:
        return error_response(400, f"at most {MAX_IDS} ids per request, got {len(ids)}")
    # Request order is kept and duplicates collapse to their first position, which is what a
    # batching client needs to map results back to keys.
    unique = dict.fromkeys(ids)
    found = [customer_json(CUSTOMERS_BY_ID[i]) for i in unique if i in CUSTOMERS_BY_ID]
    return JSONResponse({"data": found})


async def customer_orders(request: Request) -> Response:
    customer_id = request.path_params["id"]
    if customer_id not in CUSTOMERS_BY_ID:
        return error_response(404, "not_found")
    params = request.query_params
    try:
        page = parse_bounded_int(params.get("page"), name="page", default=1, low=1, high=10**9)
        per_page = parse_bounded_int(
            params.get("per_page"),
            name="per_page",
            default=DEFAULT_PER_PAGE,
            low=1,
            high=MAX_PER_PAGE,
        )
    except ValueError as exc:
        return error_response(400, str(exc))
    orders = ORDERS_BY_CUSTOMER_ID[customer_id]  # already newest first, then by id
    start = (page - 1) * per_page
    return JSONResponse(
        {
            "data": [order_json(order) for order in orders[start : start + per_page]],
            "page": page,
            "per_page": per_page,
            "total": len(orders),
            "total_pages": math.ceil(len(orders) / per_page),
        }
    )


async def get_order(request: Request) -> Response:
    order = ORDERS_BY_ID.get(request.path_params["id"])
    if order is None:
        return error_response(404, "not_found")
    return JSONResponse(order_json(order))


def create_app(*, api_key: str, control: ServiceControl | None = None) -> Starlette:
    """The CRM service; requests must send ``X-Api-Key: <api_key>``."""
    if not api_key:
        # An empty key would let requests without the header through.
        raise ValueError("api_key must not be empty")
    control = control or ServiceControl(SERVICE_NAME)
    expected = api_key.encode()

    async def guard(request: Request) -> Response | None:
        provided = request.headers.get("x-api-key", "").encode("latin-1")
        if hmac.compare_digest(provided, expected):
            return None
        return error_response(401, "unauthorized")

    routes = [
        Route("/customers", list_customers, methods=["GET"]),
        Route("/customers/{id}", get_customer, methods=["GET"]),
        Route("/customers/{id}/orders", customer_orders, methods=["GET"]),
        Route("/orders/{id}", get_order, methods=["GET"]),
    ]
    return create_service_app(control, routes, error_response=error_response, guard=guard)
