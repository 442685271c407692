"""Upstream failures reach the client as coded errors on exactly the fields that needed them."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest

from graftql.config import GatewayConfig
from graftql.demo.runner import EXAMPLE_QUERY, demo_config, demo_environment
from graftql.demo.servers import ServerThread
from graftql.demo.services import DemoCredentials, build_apps
from integration.expected import EXPECTED
from integration.helpers import graphql, start_gateway


@pytest.fixture
def private_stack(
    demo_credentials: DemoCredentials,
) -> Iterator[tuple[dict[str, ServerThread], str]]:
    """Services and a gateway of this test's own, so stopping a service harms no other test."""
    threads = {n: ServerThread(app).start() for n, app in build_apps(demo_credentials).items()}
    urls = {name: thread.url for name, thread in threads.items()}
    gateway = start_gateway(demo_config(demo_environment(demo_credentials, urls)))
    try:
        yield threads, gateway.url
    finally:
        gateway.stop()
        for thread in threads.values():
            thread.stop()


def test_stopped_service_nulls_exactly_the_fields_that_needed_it(
    private_stack: tuple[dict[str, ServerThread], str],
) -> None:
    services, gateway = private_stack
    services["shipping"].stop()

    body = graphql(gateway, EXAMPLE_QUERY)

    expected = copy.deepcopy(EXPECTED)
    for edge in expected["customer"]["orders"]["edges"]:
        edge["node"]["shipment"] = None
    assert body["data"] == expected
    assert sorted(body["errors"], key=lambda e: e["path"][3]) == [
        {
            "message": "shipping could not be reached",
            "locations": [{"line": 16, "column": 11}],
            "path": ["customer", "orders", "edges", i, "node", "shipment"],
            "extensions": {"code": "UPSTREAM_UNAVAILABLE", "upstream": "shipping"},
        }
        for i in range(5)
    ]

    ready = httpx.get(f"{gateway}/readyz")
    assert ready.status_code == 503
    report = ready.json()
    assert report["status"] == "unready"
    assert report["upstreams"]["shipping"]["status"] == "down"
    assert report["upstreams"]["shipping"]["detail"] == "connection refused"
    assert {n: u["status"] for n, u in report["upstreams"].items()} == {
        "catalog": "up",
        "crm": "up",
        "payments": "up",
        "shipping": "down",
    }
    assert httpx.get(f"{gateway}/healthz").json() == {"status": "ok"}


def test_optional_upstream_down_keeps_the_gateway_ready(
    demo_credentials: DemoCredentials, demo_services: Mapping[str, str]
) -> None:
    urls = dict(demo_services)
    with ServerThread(lambda scope, receive, send: None) as dead:  # type: ignore[arg-type,return-value]
        urls["shipping"] = dead.url
    config = demo_config(demo_environment(demo_credentials, urls))
    shipping = config.upstreams["shipping"].model_copy(update={"required": False})
    config = config.model_copy(update={"upstreams": {**config.upstreams, "shipping": shipping}})
    gateway = start_gateway(config)
    try:
        ready = httpx.get(f"{gateway.url}/readyz")
        assert ready.status_code == 200
        assert ready.json()["upstreams"]["shipping"]["status"] == "down"
    finally:
        gateway.stop()


def test_wrong_credentials_are_an_auth_error_that_leaks_nothing(
    demo_credentials: DemoCredentials, demo_services: Mapping[str, str]
) -> None:
    environment = demo_environment(demo_credentials, demo_services)
    environment["DEMO_CRM_API_KEY"] = "wrong-key-0123456789"
    gateway = start_gateway(demo_config(environment))
    try:
        body = graphql(gateway.url, '{ customer(id: "c1") { name } product(id: "p1") { name } }')
    finally:
        gateway.stop()
    assert body["data"] == {"customer": None, "product": {"name": "Mechanical Keyboard"}}
    assert body["errors"] == [
        {
            "message": "crm rejected the gateway's credentials",
            "locations": [{"line": 1, "column": 3}],
            "path": ["customer"],
            "extensions": {"code": "UPSTREAM_AUTH_FAILED", "upstream": "crm"},
        }
    ]
    assert "wrong-key" not in str(body) and "127.0.0.1" not in str(body)


@pytest.fixture
def catalog_chaos(demo_services: Mapping[str, str]) -> Iterator[str]:
    url = demo_services["catalog"]
    try:
        yield f"{url}/__chaos"
    finally:
        httpx.post(f"{url}/__reset").raise_for_status()


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (503, "UPSTREAM_UNAVAILABLE", "catalog is unavailable (HTTP 503)"),
        (502, "UPSTREAM_UNAVAILABLE", "catalog is unavailable (HTTP 502)"),
        (504, "UPSTREAM_TIMEOUT", "catalog timed out (HTTP 504)"),
        (429, "UPSTREAM_RATE_LIMITED", "catalog is rate limiting the gateway"),
        (500, "UPSTREAM_BAD_RESPONSE", "catalog answered HTTP 500"),
        (403, "UPSTREAM_AUTH_FAILED", "catalog rejected the gateway's credentials"),
    ],
)
def test_upstream_status_codes_become_error_codes(
    gateway: str, catalog_chaos: str, status: int, code: str, message: str
) -> None:
    httpx.post(
        catalog_chaos, json={"failure_rate": 1.0, "failure_status": status}
    ).raise_for_status()
    body = graphql(gateway, '{ product(id: "p1") { name } customer(id: "c2") { id } }')
    assert body["data"] == {"product": None, "customer": {"id": "c2"}}
    assert [(e["path"], e["message"], e["extensions"]) for e in body["errors"]] == [
        (["product"], message, {"code": code, "upstream": "catalog"})
    ]


def test_slow_upstream_times_out_at_its_configured_timeout(
    gateway_config: GatewayConfig, catalog_chaos: str
) -> None:
    catalog = gateway_config.upstreams["catalog"].model_copy(update={"timeout": 0.2})
    upstreams = {**gateway_config.upstreams, "catalog": catalog}
    gateway = start_gateway(gateway_config.model_copy(update={"upstreams": upstreams}))
    httpx.post(catalog_chaos, json={"latency_ms": 3000}).raise_for_status()
    try:
        started = time.monotonic()
        body = graphql(gateway.url, '{ product(id: "p1") { name } }')
        elapsed = time.monotonic() - started
    finally:
        gateway.stop()
    assert body["data"] == {"product": None}
    [error] = body["errors"]
    assert error["message"] == "catalog did not answer within 0.2s"
    assert error["extensions"] == {"code": "UPSTREAM_TIMEOUT", "upstream": "catalog"}
    assert elapsed < 3.0  # answered long before the upstream would have


def test_arguments_reach_the_upstream_as_one_encoded_segment(
    gateway: str, demo_services: Mapping[str, str]
) -> None:
    crm = demo_services["crm"]
    cases = {
        "../admin": "/orders/..%2Fadmin",
        "a/b": "/orders/a%2Fb",
        "a?x=1": "/orders/a%3Fx%3D1",
        "%2e%2e%2f": "/orders/%252e%252e%252f",
        "..": "/orders/%2E%2E",
        "http://127.0.0.2/x#frag": "/orders/http%3A%2F%2F127.0.0.2%2Fx%23frag",
    }
    for value, raw_path in cases.items():
        httpx.post(f"{crm}/__reset").raise_for_status()
        body = graphql(gateway, "query ($id: ID!) { order(id: $id) { id } }", id=value)
        assert body == {"data": {"order": None}}  # the CRM's 404 for that id, not another route
        received: list[dict[str, Any]] = httpx.get(f"{crm}/__requests").json()["requests"]
        assert [(r["method"], r["path"], r["query"]) for r in received] == [("GET", raw_path, "")]


def test_empty_identifier_is_bad_user_input(gateway: str) -> None:
    body = graphql(gateway, '{ order(id: "") { id } }')
    assert body["data"] == {"order": None}
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT"}
