"""The demo services under test with injected clocks, shared by the test_demo_* modules."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from graftql.demo.servers import ServerThread
from graftql.demo.services import DemoCredentials, build_apps

PAYMENTS_T0 = 1_000.0
SHIPPING_T0 = 1_780_000_000.0


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Stack:
    urls: dict[str, str]
    apps: dict[str, Starlette]
    creds: DemoCredentials
    payments_clock: FakeClock
    shipping_clock: FakeClock


def stack_fixtures(services: tuple[str, ...]) -> tuple[Callable[..., Any], ...]:
    """The ``stack``, ``client`` and autouse ``_fresh_services`` fixtures for ``services``:
    bind them to names in a test module (``stack, client, _fresh = stack_fixtures(...)``)."""

    @pytest.fixture(scope="module")
    def stack(demo_credentials: DemoCredentials) -> Iterator[Stack]:
        payments_clock, shipping_clock = FakeClock(PAYMENTS_T0), FakeClock(SHIPPING_T0)
        apps = build_apps(
            demo_credentials, payments_clock=payments_clock, shipping_clock=shipping_clock
        )
        apps = {name: app for name, app in apps.items() if name in services}
        with ExitStack() as servers:
            urls = {
                name: servers.enter_context(ServerThread(app)).url for name, app in apps.items()
            }
            yield Stack(urls, apps, demo_credentials, payments_clock, shipping_clock)

    @pytest.fixture(scope="module")
    def client() -> Iterator[httpx.Client]:
        # trust_env=False: a proxy configured in the environment must never see loopback traffic.
        with httpx.Client(trust_env=False, timeout=10) as c:
            yield c

    @pytest.fixture(autouse=True)
    def _fresh_services(stack: Stack, client: httpx.Client) -> None:
        for url in stack.urls.values():
            client.post(f"{url}/__reset").raise_for_status()
        stack.payments_clock.now = PAYMENTS_T0
        stack.shipping_clock.now = SHIPPING_T0

    return stack, client, _fresh_services
