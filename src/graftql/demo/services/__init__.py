"""The four upstream services of the built-in "storefront" demo, and how to build them.

* ``catalog``  - GraphQL, ``Authorization: Bearer <token>``
* ``crm``      - REST/JSON, ``X-Api-Key``
* ``payments`` - REST/JSON behind OAuth2 client credentials
* ``shipping`` - REST/XML with HMAC-signed requests

:func:`build_apps` makes all four from one :class:`DemoCredentials`, so the demo runner and the
tests configure the gateway and the upstreams from the same object.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from starlette.applications import Starlette

from graftql.demo.services import catalog, crm, payments, shipping
from graftql.demo.services.common import ServiceControl


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    name: str
    default_port: int
    protocol: str
    description: str


SERVICES: Final[Mapping[str, ServiceInfo]] = MappingProxyType(
    {
        "catalog": ServiceInfo("catalog", 8001, "graphql", "products and reviews"),
        "crm": ServiceInfo("crm", 8002, "rest-json", "customers and orders"),
        "payments": ServiceInfo("payments", 8003, "rest-json", "payments (OAuth2)"),
        "shipping": ServiceInfo("shipping", 8004, "rest-xml", "shipments (HMAC-signed)"),
    }
)
SERVICE_NAMES: Final = tuple(SERVICES)
DEFAULT_PORTS: Final[Mapping[str, int]] = MappingProxyType(
    {name: info.default_port for name, info in SERVICES.items()}
)


@dataclass(frozen=True, slots=True)
class DemoCredentials:
    """Every secret the demo upstreams check, i.e. what the gateway must be configured with."""

    catalog_token: str
    crm_api_key: str
    payments_client_id: str
    payments_client_secret: str
    shipping_key_id: str
    shipping_secret: str
    # What payments signs its webhooks to the gateway with (Standard Webhooks: whsec_ + base64).
    payments_webhook_secret: str = "whsec_ZGVtby1wYXltZW50cy13ZWJob29rLXNlY3JldA=="

    @classmethod
    def defaults(cls) -> DemoCredentials:
        """Fixed, well-known values: convenient for a local demo, never for anything else."""
        return cls(
            catalog_token="demo-catalog-token",
            crm_api_key="demo-crm-api-key",
            payments_client_id="demo-payments-client",
            payments_client_secret="demo-payments-secret",
            shipping_key_id="demo-shipping-key",
            shipping_secret="demo-shipping-secret",
        )

    @classmethod
    def generate(cls) -> DemoCredentials:
        """Fresh random secrets, e.g. per test session, so nothing can rely on fixed values."""
        return cls(
            catalog_token=secrets.token_urlsafe(24),
            crm_api_key=secrets.token_urlsafe(24),
            payments_client_id=f"client_{secrets.token_hex(6)}",
            payments_client_secret=secrets.token_urlsafe(24),
            shipping_key_id=f"key_{secrets.token_hex(6)}",
            shipping_secret=secrets.token_urlsafe(32),
            payments_webhook_secret="whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
        )


def build_apps(
    credentials: DemoCredentials,
    *,
    controls: Mapping[str, ServiceControl] | None = None,
    token_ttl: int = payments.DEFAULT_TOKEN_TTL,
    payments_clock: Callable[[], float] = time.monotonic,
    shipping_clock: Callable[[], float] = time.time,
) -> dict[str, Starlette]:
    """All four demo apps keyed by service name; each app's control is ``app.state.control``."""
    controls = controls or {}

    def control(name: str) -> ServiceControl:
        return controls.get(name) or ServiceControl(name)

    return {
        "catalog": catalog.create_app(token=credentials.catalog_token, control=control("catalog")),
        "crm": crm.create_app(api_key=credentials.crm_api_key, control=control("crm")),
        "payments": payments.create_app(
            client_id=credentials.payments_client_id,
            client_secret=credentials.payments_client_secret,
            token_ttl=token_ttl,
            control=control("payments"),
            clock=payments_clock,
            webhook_secret=credentials.payments_webhook_secret,
        ),
        "shipping": shipping.create_app(
            key_id=credentials.shipping_key_id,
            secret=credentials.shipping_secret,
            control=control("shipping"),
            clock=shipping_clock,
        ),
    }


__all__ = [
    "DEFAULT_PORTS",
    "SERVICES",
    "SERVICE_NAMES",
    "DemoCredentials",
    "ServiceControl",
    "ServiceInfo",
    "build_apps",
]
