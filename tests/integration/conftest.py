"""Gateway fixtures: the demo gateway in front of the demo services, over real loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest

from graftql.config import GatewayConfig
from graftql.demo.runner import demo_config, demo_environment
from graftql.demo.servers import ServerThread
from graftql.demo.services import DemoCredentials
from graftql.server import create_app
from integration.scripted import ScriptedUpstream


@pytest.fixture(scope="session")
def gateway_config(
    demo_credentials: DemoCredentials, demo_services: Mapping[str, str]
) -> GatewayConfig:
    return demo_config(demo_environment(demo_credentials, demo_services))


@pytest.fixture(scope="session")
def gateway(gateway_config: GatewayConfig) -> Iterator[str]:
    """Base URL of a gateway serving the demo schema in front of the session's services."""
    with ServerThread(create_app(gateway_config)) as server:
        yield server.url


@pytest.fixture
def scripted() -> Iterator[tuple[ScriptedUpstream, str]]:
    """A scripted upstream on an ephemeral loopback port and its base URL."""
    upstream = ScriptedUpstream()
    url = upstream.start()
    try:
        yield upstream, url
    finally:
        upstream.stop()
