"""The `graftql` command as a user runs it: real processes, real ports, real signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import jwt
import pytest
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from graftql import __version__
from graftql.demo.runner import EXAMPLE_QUERY
from integration.helpers import GRAFTQL, free_port_block, run, wait_until_up


def test_version_and_help() -> None:
    assert run("--version").stdout.strip() == f"graftql {__version__}"
    for command in ([], ["serve"], ["demo"], ["check"], ["status"]):
        result = run(*command, "--help")
        assert result.returncode == 0 and "usage: graftql" in result.stdout


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (None, "graftql: {path}: no such file"),
        ("schema: a:b\nupstreams: [\n", "graftql: {path}: invalid YAML at line 3, column 1:"),
        (
            "schema: a:b\nupstreams:\n  crm: {kind: rest, url: 'http://x', timout: 3}\n",
            "graftql: {path}: upstreams.crm.timout: unknown key (did you mean 'timeout'?)",
        ),
        (
            "schema: a:b\nserver: {port: eighty}\n",
            "graftql: {path}: server.port: input should be a valid integer",
        ),
        (
            "schema: a:b\nupstreams:\n  crm:\n    kind: rest\n    url: http://x\n"
            "    auth: {type: bearer, token: '${GRAFTQL_CLI_TEST_UNSET}'}\n",
            "graftql: {path}: upstreams.crm.auth.token: "
            "environment variable GRAFTQL_CLI_TEST_UNSET is not set",
        ),
        (
            "schema: nowhere.at_all:schema\n",
            "graftql: {path}: schema: cannot import 'nowhere.at_all'",
        ),
    ],
)
@pytest.mark.parametrize("command", ["check", "serve"])
def test_config_errors_are_one_line_exit_2_no_traceback(
    tmp_path: Path, content: str | None, line: str, command: str
) -> None:
    path = tmp_path / "gateway.yaml"
    if content is not None:
        path.write_text(content)
    args = [str(path)] if command == "check" else ["--config", str(path)]
    result = run(command, *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [printed] = result.stderr.splitlines()
    assert printed.startswith(line.format(path=path)), printed
    assert result.stdout == ""


def test_check_summarises_and_hides_secrets() -> None:
    from importlib.resources import files

    demo_yaml = str(files("graftql.demo") / "gateway.yaml")
    result = run("check", demo_yaml, env={"DEMO_CRM_API_KEY": "very-secret-crm-key"})
    assert result.returncode == 0, result.stderr
    assert "very-secret-crm-key" not in result.stdout
    assert "demo-catalog-token" not in result.stdout
    lines = result.stdout.splitlines()
    assert lines[0] == f"{demo_yaml}: OK"
    crm = next(line for line in lines if line.strip().startswith("crm "))
    assert "auth api_key (value=***, header=X-Api-Key)" in crm
    auth = next(line for line in lines if line.startswith("auth "))
    assert auth == (
        "auth       HS256  secret=***  issuer graftql-demo  audience graftql-demo  "
        "anonymous allowed"
    )
    assert "graftql-demo-jwt-secret" not in result.stdout
    assert "upstreams  4" in result.stdout
    assert "  POST /webhooks/payments  standard  1 secret(s)" in lines
    assert "whsec_" not in result.stdout


@pytest.mark.parametrize(
    ("sig", "returncode"), [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, 0)]
)
def test_serve_runs_until_a_signal_and_shuts_down_gracefully(
    tmp_path: Path, sig: signal.Signals, returncode: int
) -> None:
    port = free_port_block(1)
    path = tmp_path / "gateway.yaml"
    # A secret in the file (redis.password) must survive the --port/--env overrides.
    path.write_text(
        "schema: graftql.demo.schema:schema\nupstreams: {}\n"
        "redis: {url: 'redis://127.0.0.1:6379/0', password: '${GRAFTQL_TEST_REDIS_PW}'}\n"
    )
    process = subprocess.Popen(
        [*GRAFTQL, "serve", "--config", str(path), "--port", str(port), "--env", "production"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "GRAFTQL_TEST_REDIS_PW": "not-the-real-one"},
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
        page = httpx.get(f"http://127.0.0.1:{port}/graphql", headers={"accept": "text/html"})
        assert page.status_code == 404  # --env production: no GraphiQL
    finally:
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == returncode
    assert "Application shutdown complete." in stderr
    assert "Traceback" not in stderr


def test_demo_answers_the_example_query_and_stops_cleanly_on_ctrl_c() -> None:
    base = free_port_block(5)
    process = subprocess.Popen(
        [*GRAFTQL, "demo", "--port", str(base)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{base}/readyz", process)
        # The banner prints a token for the customer of the example query (Ada, c1).
        assert process.stdout is not None
        banner = []
        while not (line := process.stdout.readline()).startswith("  customer c1"):
            assert line, "the banner printed no customer token"
            banner.append(line)
        token = line.split()[-1]
        while line and not line.startswith("Press Ctrl-C"):  # the rest, before communicate()
            banner.append(line)
            line = process.stdout.readline()
        url = f"http://127.0.0.1:{base}/graphql"
        response = httpx.post(
            url,
            json={"query": EXAMPLE_QUERY},
            headers={"authorization": f"Bearer {token}"},
            timeout=30,
        )
        body = response.json()
        assert "errors" not in body
        assert body["data"]["customer"]["name"] == "Ada Lovelace"
        assert len(body["data"]["customer"]["orders"]["edges"]) == 5
        # Anonymous: the public name only.
        anonymous = httpx.post(url, json={"query": EXAMPLE_QUERY}, timeout=30).json()
        assert anonymous["data"]["customer"] == {
            "name": "Ada Lovelace",
            "email": None,
            "orders": None,
        }
    finally:
        process.send_signal(signal.SIGINT)
        rest, stderr = process.communicate(timeout=30)
    stdout = "".join(banner) + rest
    assert process.returncode == 0, stderr
    assert f"http://127.0.0.1:{base}/graphql?headers=%7B%22Authorization" in stdout
    assert f"GraphiQL  http://127.0.0.1:{base}/graphql" in stdout
    assert 'customer(id: "c1")' in stdout
    assert "Traceback" not in stderr
    for port in range(base, base + 5):  # every port was released
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_token_mints_what_the_configured_gateway_accepts(tmp_path: Path) -> None:
    result = run("token", "--demo", "--sub", "c2", "--claim", "role=customer", "--ttl", "60")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "c2" and claims["role"] == "customer"
    assert claims["iss"] == claims["aud"] == "graftql-demo"
    assert claims["exp"] - claims["iat"] == 60
    # A gateway whose keys are public cannot mint: the identity provider does.
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "schema: graftql.demo.schema:schema\n"
        "server: {auth: {algorithms: [RS256], jwks_url: 'https://id.example/jwks'}}\n"
    )
    result = run("token", "--config", str(path), "--sub", "x")
    assert result.returncode == 2 and "ask the identity provider" in result.stderr
    assert "Traceback" not in result.stderr
    result = run("token", "--demo", "--sub", "x", "--claim", "novalue")
    assert result.returncode == 2 and "expected NAME=VALUE" in result.stderr


def test_demo_reports_a_taken_port_clearly() -> None:
    base = free_port_block(5)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", base + 2))
        blocker.listen()
        result = subprocess.run(
            [*GRAFTQL, "demo", "--port", str(base)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"graftql: port {base + 2} on 127.0.0.1 is already in use; "
        "choose another base port with --port"
    )


def test_flag_overrides_are_validated_like_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("schema: graftql.demo.schema:schema\n")
    result = run("serve", "--config", str(path), "--port", "99999")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"graftql: {path}: --port: input should be less than or equal to 65535"
    )


@pytest.mark.parametrize(
    ("module", "reason"),
    [
        ("raise RuntimeError('boom')\n", "importing 'myschema' failed: RuntimeError: boom"),
        ("schema = 42\n", "myschema:schema is a int, not a graftql.GatewaySchema"),
    ],
)
def test_schema_module_problems_are_config_errors(tmp_path: Path, module: str, reason: str) -> None:
    (tmp_path / "myschema.py").write_text(module)
    (tmp_path / "gateway.yaml").write_text("schema: myschema:schema\n")
    result = run("check", "gateway.yaml", cwd=tmp_path)  # the working directory is importable
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"graftql: gateway.yaml: schema: {reason}")


def test_schema_module_next_to_the_config_is_found(tmp_path: Path) -> None:
    (tmp_path / "myschema.py").write_text(
        "import strawberry\nfrom graftql import GatewaySchema\n"
        "@strawberry.type\nclass Query:\n    hello: str = 'world'\n"
        "schema = GatewaySchema(query=Query)\n"
    )
    (tmp_path / "gateway.yaml").write_text("schema: myschema:schema\n")
    result = run("check", "gateway.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "gateway.yaml: OK"


def test_serve_does_not_let_a_local_process_choose_its_address(tmp_path: Path) -> None:
    """uvicorn's proxy headers are off: X-Forwarded-For from loopback is believed only when
    server.rate_limit.trusted_proxies says so, so two spoofed addresses share one bucket."""
    port = free_port_block(1)
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "schema: graftql.demo.schema:schema\nupstreams: {}\n"
        "server: {rate_limit: {rate: 0.1, burst: 1}}\n"
    )
    process = subprocess.Popen(
        [*GRAFTQL, "serve", "--config", str(path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
        statuses = [
            httpx.post(
                f"http://127.0.0.1:{port}/graphql",
                json={"query": "{ __typename }"},
                headers={"x-forwarded-for": address},
            ).status_code
            for address in ("203.0.113.1", "203.0.113.2")
        ]
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert statuses == [200, 429]


@pytest.mark.parametrize("compression", [False, True])
def test_serve_negotiates_websocket_compression_only_when_configured(
    tmp_path: Path, compression: bool
) -> None:
    """server.websocket.compression: permessage-deflate, which browsers offer, is accepted
    only when it is on (it costs ~40 KB per connection)."""
    port = free_port_block(1)
    path = tmp_path / "gateway.yaml"
    setting = "true" if compression else "false"
    path.write_text(
        "schema: graftql.demo.schema:schema\nupstreams: {}\n"
        f"server: {{websocket: {{compression: {setting}}}}}\n"
    )
    process = subprocess.Popen(
        [*GRAFTQL, "serve", "--config", str(path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
        url = f"ws://127.0.0.1:{port}/graphql"
        with connect(
            url, subprotocols=[Subprotocol("graphql-transport-ws")], compression="deflate"
        ) as ws:
            assert ws.response is not None
            negotiated = ws.response.headers.get("sec-websocket-extensions") or ""
            ws.send('{"type": "connection_init"}')
            assert ws.recv(timeout=10) == '{"type":"connection_ack"}'
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert ("permessage-deflate" in negotiated) is compression
