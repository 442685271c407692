"""The demo with every secret set to a marker string: whatever happens, no marker gets out.

Each secret the demo's gateway.yaml reads from the environment (the four upstream credentials
and the inbound JWT secret) is a unique marker. The demo is exercised the way things go wrong
in production — queries as a customer and anonymously, an upstream that rejects the gateway's
credential, an upstream that is down, another that fails, bad and forged client tokens over
HTTP and WebSocket — with every logger at DEBUG through the gateway's own log pipeline. Then
no log line, no response (bodies and headers), and neither /readyz nor /metrics may contain any
marker. A marker carried inside a client's forged token must not be echoed either.
"""

from __future__ import annotations

import io
import json
import secrets
from dataclasses import replace
from typing import Any

import httpx
import jwt
import pytest
import websockets
from websockets.typing import Subprotocol

from graftql.demo.runner import EXAMPLE_QUERY, demo_config, demo_environment, demo_tokens
from graftql.demo.servers import ServerThread
from graftql.demo.services import DemoCredentials, build_apps
from graftql.server import create_app
from graftql.server.logs import configure_logging
from integration.helpers import ws_url


def marker(name: str) -> str:
    return f"MARKER{name}{secrets.token_hex(12)}"


MARKERS = {
    "catalog_token": marker("catalogtoken"),
    "crm_api_key": marker("crmapikey"),
    "payments_client_secret": marker("paymentssecret"),
    "shipping_secret": marker("shippingsecret"),
    "jwt_secret": marker("jwtsecret"),
    "forged_claim": marker("forgedclaim"),  # inside a client's token, never configured
}


class Seen:
    """Everything the outside world got to see."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def response(self, response: httpx.Response) -> httpx.Response:
        self.texts.append(response.text)
        self.texts.extend(f"{k}: {v}" for k, v in response.headers.items())
        return response

    def leaks(self, text: str) -> list[str]:
        return [name for name, value in MARKERS.items() if value in text]


async def ws_exchange(url: str, payload: dict[str, Any]) -> str:
    """What the client saw: every message, or the close code and reason."""
    seen: list[str] = []
    async with websockets.connect(
        ws_url(url), subprotocols=[Subprotocol("graphql-transport-ws")]
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        try:
            seen.append(str(await ws.recv()))
            query = {"query": EXAMPLE_QUERY}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": query}))
            seen.append(str(await ws.recv()))
        except websockets.ConnectionClosed as closed:
            seen.append(f"closed {closed.rcvd}")
    return "\n".join(seen)


async def test_no_secret_marker_reaches_logs_errors_readyz_or_metrics(
    restore_logging: None,
) -> None:
    credentials = DemoCredentials(
        catalog_token=MARKERS["catalog_token"],
        crm_api_key=MARKERS["crm_api_key"],
        payments_client_id="demo-payments-client",
        payments_client_secret=MARKERS["payments_client_secret"],
        shipping_key_id="demo-shipping-key",
        shipping_secret=MARKERS["shipping_secret"],
    )
    apps = build_apps(credentials)
    # The catalog expects another token: it rejects the marker the gateway sends (401).
    apps["catalog"] = build_apps(replace(credentials, catalog_token="something-else"))["catalog"]
    threads = {name: ServerThread(app).start() for name, app in apps.items()}
    urls = {name: thread.url for name, thread in threads.items()}
    environment = {
        **demo_environment(credentials, urls),
        "GRAFTQL_DEMO_JWT_SECRET": MARKERS["jwt_secret"],
    }
    config = demo_config(environment)
    assert config.server.auth is not None
    assert config.server.auth.secret is not None
    assert config.server.auth.secret.reveal() == MARKERS["jwt_secret"]
    stream = io.StringIO()
    configure_logging(config, "debug", stream=stream)
    seen = Seen()
    tokens = demo_tokens(config)
    customer = {"authorization": f"Bearer {tokens['customer']}"}
    forged = jwt.encode(
        {"sub": MARKERS["forged_claim"], "role": "staff"}, "not-the-secret" * 3, algorithm="HS256"
    )
    bad_headers = [
        {"authorization": f"Bearer {forged}"},
        {"authorization": f"Bearer {MARKERS['forged_claim']}"},  # malformed
        {"authorization": f"Basic {MARKERS['forged_claim']}"},
        {"authorization": f"Bearer {jwt.encode({'sub': 'x', 'exp': 1}, MARKERS['jwt_secret'])}"},
    ]
    try:
        with ServerThread(create_app(config)) as gateway:
            url = f"{gateway.url}/graphql"
            async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
                answer = await client.post(url, json={"query": EXAMPLE_QUERY}, headers=customer)
                body = seen.response(answer).json()
                # Real work happened: the CRM answered, the catalog refused the credential.
                assert body["data"]["customer"]["name"] == "Ada Lovelace"
                assert "UPSTREAM_AUTH_FAILED" in json.dumps(body["errors"])
                seen.response(await client.post(url, json={"query": EXAMPLE_QUERY}))  # anonymous
                for headers in bad_headers:
                    refused = seen.response(
                        await client.post(url, json={"query": "{ __typename }"}, headers=headers)
                    )
                    assert refused.status_code == 401
                # An upstream down, another failing.
                threads["shipping"].stop()
                chaos = {"failure_rate": 1, "failure_status": 500}
                (await client.post(f"{urls['payments']}/__chaos", json=chaos)).raise_for_status()
                answer = await client.post(url, json={"query": EXAMPLE_QUERY}, headers=customer)
                body = seen.response(answer).json()
                errors = json.dumps(body["errors"])
                assert "UPSTREAM_UNAVAILABLE" in errors or "CIRCUIT_OPEN" in errors
                ready = seen.response(await client.get(f"{gateway.url}/readyz"))
                assert ready.status_code == 503
                metrics = seen.response(await client.get(f"{gateway.url}/metrics"))
                assert metrics.status_code == 200 and "graftql_" in metrics.text
            seen.texts.append(await ws_exchange(gateway.url, {"Authorization": f"Bearer {forged}"}))
            seen.texts.append(await ws_exchange(gateway.url, customer))
    finally:
        for thread in threads.values():
            thread.stop()  # again for shipping: a no-op
    logs = stream.getvalue()
    # The exercise was real: refusals were audited, failures logged.
    assert "inbound token rejected (http): bad signature" in logs
    assert "inbound token rejected (websocket): bad signature" in logs
    assert "UPSTREAM_AUTH_FAILED" in logs
    assert "closed" in seen.texts[-2] and '"data"' in seen.texts[-1]
    leaked = {name for text in seen.texts for name in seen.leaks(text)}
    assert leaked == set(), f"markers in responses: {leaked}"
    assert seen.leaks(logs) == [], [line for line in logs.splitlines() if seen.leaks(line)][:5]


@pytest.mark.parametrize(
    "line",
    [
        "GET /graphql?headers=%7B%22Authorization%22%3A%22Bearer%20eyJhbGc.eyJzdWIi.sig%22%7D",
        "GET /graphql?headers=Bearer+eyJhbGc.eyJzdWIi.sig",
        "Authorization: Bearer eyJhbGc.eyJzdWIi.sig",
    ],
)
def test_a_bearer_token_in_a_url_is_masked_in_logs(line: str) -> None:
    from graftql.server.logs import RedactSecrets

    assert "eyJ" not in RedactSecrets().redact(line)
