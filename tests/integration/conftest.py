"""Gateway fixtures: the demo gateway in front of the demo services, over real loopback HTTP,
and a scriptable chaos upstream for the tests that need an upstream to misbehave."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Iterator, Mapping

import pytest

from graftql.config import GatewayConfig
from graftql.demo.runner import demo_config, demo_environment
from graftql.demo.servers import ServerThread
from graftql.demo.services import DemoCredentials
from graftql.server import create_app
from graftql.testing import ChaosUpstream
from integration.helpers import delete_keys, require_redis, unique_prefix


@pytest.fixture(scope="session")
def gateway_config(
    demo_credentials: DemoCredentials, demo_services: Mapping[str, str]
) -> GatewayConfig:
    config = demo_config(demo_environment(demo_credentials, demo_services))
    # Without the shipping poller: its requests would add to the upstream counts that the
    # storefront tests assert (tests/integration/test_demo_realtime.py runs its own).
    return config.model_copy(update={"events": config.events.model_copy(update={"polling": {}})})


@pytest.fixture(scope="session")
def gateway(gateway_config: GatewayConfig) -> Iterator[str]:
    """Base URL of a gateway serving the demo schema in front of the session's services."""
    with ServerThread(create_app(gateway_config)) as server:
        yield server.url


@pytest.fixture
def chaos() -> Iterator[ChaosUpstream]:
    """A started :class:`graftql.testing.ChaosUpstream`, served from a background thread, so
    synchronous and async tests alike can use it (its ``url`` is ``http://127.0.0.1:PORT``).

    Nothing is scripted: a request that matches no route gets a 404, so a test scripts every
    path it relies on. A test whose script ran out (a route with no behaviour left) fails at
    teardown instead of passing on a 500 it never expected.
    """
    with ChaosUpstream().running() as upstream:
        yield upstream
    assert upstream.errors == [], "the chaos upstream's script ran out or a Call raised"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging replaces the root logger's handlers and level: put them back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A Redis key prefix of this test's own (Redis required: skip, or fail under CI=true);
    its keys are deleted afterwards."""
    await asyncio.to_thread(require_redis)
    prefix = unique_prefix()
    yield prefix
    await delete_keys(prefix)


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port whose listener never accepts and whose accept queue is full: a SYN to it goes
    unanswered, as with a host that drops packets (or a Redis that hangs)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=1)  # takes the only slot
    try:
        yield port
    finally:
        filler.close()
        listener.close()
