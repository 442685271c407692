"""Shared fixtures: the four storefront demo upstream services running on loopback."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from types import MappingProxyType

import pytest

from graftql.demo.servers import ServerThread
from graftql.demo.services import DemoCredentials, build_apps


@pytest.fixture(scope="session")
def demo_credentials() -> DemoCredentials:
    """Random per-session secrets, so no test can pass by relying on the well-known defaults."""
    return DemoCredentials.generate()


@pytest.fixture(scope="session")
def demo_services(demo_credentials: DemoCredentials) -> Iterator[Mapping[str, str]]:
    """Service name -> base URL ("http://127.0.0.1:PORT") of all four demo services.

    Shared by the whole session: a test that changes chaos settings or relies on counters
    should ``POST {url}/__reset`` first (and afterwards, if it changed chaos).
    """
    apps = build_apps(demo_credentials)
    with ExitStack() as stack:
        urls = {name: stack.enter_context(ServerThread(app)).url for name, app in apps.items()}
        yield MappingProxyType(urls)
