"""``graftql demo``: the four storefront services and a gateway in front of them, on loopback.

The services get fresh random credentials on every run; the gateway learns them the way a real
deployment would, through the ``${DEMO_*}`` references in the demo's gateway.yaml.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Mapping
from importlib.resources import as_file, files
from urllib.parse import quote

from graftql.config import GatewayConfig, load_config
from graftql.demo.servers import LoopbackServer, PortInUseError, ServerStartupError
from graftql.demo.services import SERVICE_NAMES, DemoCredentials, build_apps
from graftql.errors import ConfigError

__all__ = ["EXAMPLE_QUERY", "demo_config", "demo_environment", "demo_tokens", "run_demo"]

# The demo's two kinds of signed-in client (the schema's permissions read these claims).
CUSTOMER_CLAIMS: Mapping[str, str] = {"sub": "c1", "role": "customer", "name": "Ada Lovelace"}
STAFF_CLAIMS: Mapping[str, str] = {"sub": "staff-1", "role": "staff"}
TOKEN_HOURS = 12

EXAMPLE_QUERY = """\
{
  customer(id: "c1") {
    name
    email
    orders(first: 5) {
      edges {
        node {
          id
          status
          total { amount currency }
          lines {
            quantity
            product { name price { amount currency } reviews { rating } }
          }
          payment { status }
          shipment { status trackingNumber eta }
        }
      }
    }
  }
}"""


def demo_environment(credentials: DemoCredentials, urls: Mapping[str, str]) -> dict[str, str]:
    """The ``DEMO_*`` variables that the demo's gateway.yaml refers to."""
    return {
        "DEMO_CATALOG_URL": urls["catalog"],
        "DEMO_CRM_URL": urls["crm"],
        "DEMO_PAYMENTS_URL": urls["payments"],
        "DEMO_SHIPPING_URL": urls["shipping"],
        "DEMO_CATALOG_TOKEN": credentials.catalog_token,
        "DEMO_CRM_API_KEY": credentials.crm_api_key,
        "DEMO_PAYMENTS_CLIENT_ID": credentials.payments_client_id,
        "DEMO_PAYMENTS_CLIENT_SECRET": credentials.payments_client_secret,
        "DEMO_SHIPPING_KEY_ID": credentials.shipping_key_id,
        "DEMO_SHIPPING_SECRET": credentials.shipping_secret,
        "DEMO_PAYMENTS_WEBHOOK_SECRET": credentials.payments_webhook_secret,
        # The webhook inbox of this run (a SQLite file), away from the working directory.
        "DEMO_INBOX_PATH": os.path.join(tempfile.mkdtemp(prefix="graftql-demo-"), "inbox.db"),
    }


def demo_config(environment: Mapping[str, str]) -> GatewayConfig:
    """Load the packaged demo gateway.yaml, its ``${DEMO_*}`` taken from ``environment``."""
    with as_file(files("graftql.demo") / "gateway.yaml") as path:
        return load_config(path, environ={**os.environ, **environment})


def demo_tokens(config: GatewayConfig, *, ttl: int = TOKEN_HOURS * 3600) -> dict[str, str]:
    """Tokens the demo gateway accepts: ``customer`` (Ada, c1) and ``staff``."""
    from graftql.server.identity import mint_token

    auth = config.server.auth
    assert auth is not None, "the demo's gateway.yaml has a server.auth block"
    return {
        "customer": mint_token(auth, CUSTOMER_CLAIMS, ttl=ttl),
        "staff": mint_token(auth, STAFF_CLAIMS, ttl=ttl),
    }


async def _run(host: str, port: int, graphiql_assets: str | None) -> None:
    from graftql.server import create_app
    from graftql.server.process import tune_gc

    credentials = DemoCredentials.generate()
    apps = build_apps(credentials)
    servers: list[LoopbackServer] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        urls = {}
        for offset, name in enumerate(SERVICE_NAMES, start=1):
            server = LoopbackServer(apps[name], port=port + offset)
            servers.append(server)
            await server.start()
            urls[name] = server.url
        config = demo_config(demo_environment(credentials, urls))
        update: dict[str, object] = {"host": host, "port": port}
        if graphiql_assets is not None:
            update["graphiql_assets"] = graphiql_assets
        server_config = config.server.model_copy(update=update)
        config = config.model_copy(update={"server": server_config})
        gateway = LoopbackServer(create_app(config), port=port)
        servers.append(gateway)
        await gateway.start()
        # payments announces status changes to the gateway (signed Standard Webhooks).
        apps["payments"].state.webhooks.url = f"{gateway.url}/webhooks/payments"
        tune_gc()
        _banner(gateway.url, urls, demo_tokens(config))
        await stop.wait()
        print("\nstopping the demo ...", flush=True)
    finally:
        for server in reversed(servers):
            await server.stop()


def _banner(gateway: str, urls: Mapping[str, str], tokens: Mapping[str, str]) -> None:
    services = "\n".join(f"  {name:<9} {url}" for name, url in urls.items())
    headers = quote(f'{{"Authorization": "Bearer {tokens["customer"]}"}}', safe="")
    print(
        f"""graftql demo is running.

  GraphiQL  {gateway}/graphql
  ready?    {gateway}/readyz

upstream services (loopback only, random credentials for this run):
{services}

Who you are: anonymous clients see products and customers' names only. Open GraphiQL signed
in as the customer Ada Lovelace (c1), the token in its Headers tab:

  {gateway}/graphql?headers={headers}

or send 'Authorization: Bearer <token>' with one of these ({TOKEN_HOURS} hours; more with
`graftql token --demo --sub c2 --claim role=customer`):

  customer c1  {tokens["customer"]}
  staff        {tokens["staff"]}

Paste this into GraphiQL:

{EXAMPLE_QUERY}

Press Ctrl-C to stop.""",
        flush=True,
    )


def run_demo(
    *, host: str = "127.0.0.1", port: int = 8000, graphiql_assets: str | None = None
) -> int:
    """Run until Ctrl-C; returns the process exit status. ``graphiql_assets``: a directory
    of GraphiQL's files (``graftql graphiql-assets``) to serve instead of a CDN's."""
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if host not in ("127.0.0.1", "localhost"):
        print("graftql: the demo listens on 127.0.0.1 only", file=sys.stderr)
        return 2
    try:
        asyncio.run(_run(host, port, graphiql_assets))
    except PortInUseError as exc:
        print(f"graftql: {exc.strerror}; choose another base port with --port", file=sys.stderr)
        return 1
    except (ConfigError, ServerStartupError) as exc:
        print(f"graftql: the demo could not start: {exc}", file=sys.stderr)
        return 1
    return 0
