"""Configuration reload on SIGHUP, as an operator does it: a real `graftql serve` process, a
real upstream that records what it received, and the gateway's own log lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from graftql.config import parse_config
from graftql.server.metrics import GatewayMetrics
from graftql.server.reload import diff
from graftql.testing import ChaosUpstream, Latency, Respond
from graftql.upstreams import Upstreams
from integration.helpers import GRAFTQL, free_port_block, wait_until_up

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP here")

SCHEMA_MODULE = """
import strawberry
from graftql import Context, GatewaySchema

@strawberry.type
class Query:
    @strawberry.field
    async def item(self, info: strawberry.Info[Context, None]) -> str | None:
        return str(await info.context.upstreams.rest("crm").get("/item"))

schema = GatewaySchema(query=Query)
"""


class Gateway:
    def __init__(self, tmp: Path, chaos: ChaosUpstream) -> None:
        self.tmp = tmp
        self.port = free_port_block(1)
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = tmp / "crm-token"
        self.config_path = tmp / "gateway.yaml"
        self.log_path = tmp / "gateway.log"
        self.crm: dict[str, Any] = {
            "kind": "rest",
            "url": chaos.url,
            "timeout": 0.3,
            "retry": {"attempts": 1},
            "breaker": {"enabled": False},
            "auth": {"type": "bearer", "token": f"file:{self.token}"},
        }
        self.server: dict[str, Any] = {"log_format": "json"}
        (tmp / "reload_schema.py").write_text(SCHEMA_MODULE)
        self.token.write_text("token-one\n")
        self.write()

    def write(self, text: str | None = None) -> None:
        document = {"schema": "reload_schema:schema", "server": self.server}
        document["upstreams"] = {"crm": self.crm}
        self.config_path.write_text(text if text is not None else yaml.safe_dump(document))

    def reload_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log_path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("logger") == "graftql.reload":
                lines.append(record)
        return lines

    def hangup(self, process: subprocess.Popen[bytes], text: str | None = None) -> dict[str, Any]:
        """Write the file (``text``, or the settings as they are now), SIGHUP, then the
        reload's log line (waiting for it, not for a guessed time)."""
        self.write(text)
        seen = len(self.reload_lines())
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            lines = self.reload_lines()
            if len(lines) > seen:
                return lines[seen]
            time.sleep(0.05)
        raise AssertionError("no reload log line")

    def query(self) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/graphql", json={"query": "{ item }"}, timeout=30)
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body


@contextmanager
def running(gateway: Gateway, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    with gateway.log_path.open("wb") as log:
        command = [*GRAFTQL, "serve", "--config", str(gateway.config_path)]
        process = subprocess.Popen(
            [*command, "--port", str(gateway.port), *args],
            cwd=gateway.tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(gateway.tmp)},
        )
        try:
            wait_until_up(f"{gateway.url}/healthz", process)  # type: ignore[arg-type]
            yield process
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture
def gateway(
    tmp_path: Path, chaos: ChaosUpstream
) -> Iterator[tuple[Gateway, subprocess.Popen[bytes]]]:
    gateway = Gateway(tmp_path, chaos)
    with running(gateway) as process:
        yield gateway, process


def test_sighup_applies_a_new_timeout_and_a_rotated_secret_file_and_reports_what_waits(
    gateway: tuple[Gateway, subprocess.Popen[bytes]], chaos: ChaosUpstream
) -> None:
    gw, process = gateway
    chaos.route("GET /item", Latency(1.0) + Respond(json={"ok": 1}))
    # The upstream needs 1 s; the timeout is 0.3 s.
    assert gw.query()["errors"][0]["extensions"]["code"] == "UPSTREAM_TIMEOUT"
    assert chaos.requests[-1].headers["authorization"] == "Bearer token-one"

    gw.token.write_text("token-two\n")
    gw.crm["timeout"] = 20
    gw.crm["url"] = "http://127.0.0.1:9"  # needs a restart: must not be applied
    gw.server["request_timeout"] = 40  # needs a restart too
    line = gw.hangup(process)
    assert line["level"] == "warning"
    assert line["reload"] == "applied"
    assert line["applied"] == ["upstreams.crm.auth.token", "upstreams.crm.timeout"]
    assert line["needs_restart"] == ["server.request_timeout", "upstreams.crm.url"]
    assert (
        "NOT applied, these need a restart: server.request_timeout, upstreams.crm.url"
        in (line["message"])
    )
    assert "token-two" not in gw.log_path.read_text()

    # The new timeout and the new secret apply; the URL is still the running one.
    assert gw.query() == {"data": {"item": "{'ok': 1}"}}
    assert chaos.requests[-1].headers["authorization"] == "Bearer token-two"
    assert chaos.count("GET /item") == 2


def test_an_in_flight_request_survives_a_reload(
    gateway: tuple[Gateway, subprocess.Popen[bytes]], chaos: ChaosUpstream
) -> None:
    gw, process = gateway
    chaos.route("GET /item", Latency(3.0) + Respond(json={"ok": 1}))
    gw.crm["timeout"] = 20
    gw.hangup(process)
    results: list[dict[str, Any]] = []
    client = threading.Thread(target=lambda: results.append(gw.query()))
    client.start()
    chaos.wait_for_requests(1, timeout=20)  # the call is at the upstream now
    gw.token.write_text("token-three\n")
    line = gw.hangup(process)
    assert line["applied"] == ["upstreams.crm.auth.token"]
    client.join(timeout=30)
    assert results == [{"data": {"item": "{'ok': 1}"}}]
    # It finished with the credentials it started with; the next call has the new ones.
    assert chaos.requests[0].headers["authorization"] == "Bearer token-one"
    assert gw.query() == {"data": {"item": "{'ok': 1}"}}
    assert chaos.requests[1].headers["authorization"] == "Bearer token-three"


def test_an_invalid_file_is_rejected_and_the_gateway_keeps_serving_the_old_one(
    gateway: tuple[Gateway, subprocess.Popen[bytes]], chaos: ChaosUpstream
) -> None:
    gw, process = gateway
    chaos.route("GET /item", Respond(json={"ok": 1}))
    gw.crm["timeout"] = -1
    gw.crm["retyr"] = {}
    line = gw.hangup(process)
    assert line["level"] == "error"
    assert line["reload"] == "rejected"
    assert line["message"] == (
        "configuration reload rejected, the running configuration is kept: "
        "upstreams.crm.timeout: input should be greater than 0; "
        "upstreams.crm.retyr: unknown key (did you mean 'retry'?)"
    )
    line = gw.hangup(process, "schema: [unclosed\n")
    assert line["reload"] == "rejected"
    assert "gateway.yaml: invalid YAML at line 2, column 1" in line["message"]
    assert gw.query() == {"data": {"item": "{'ok': 1}"}}
    assert process.poll() is None
    assert httpx.get(f"{gw.url}/healthz").status_code == 200


def test_diff_names_changed_keys_and_rotated_secrets_by_path(tmp_path: Path) -> None:
    secret = tmp_path / "s"
    secret.write_text("one")

    def config(**crm: Any) -> Any:
        upstream = {"kind": "rest", "url": "http://127.0.0.1:1"}
        upstream["headers"] = {"x-key": f"file:{secret}"}
        return parse_config({"schema": "a:b", "upstreams": {"crm": {**upstream, **crm}}})

    old = config()
    assert diff(old, config()) == []
    secret.write_text("two")  # the same reference, a rotated value
    new = config(retry={"attempts": 2}, endpoints=[{"match": "GET /x"}], rate_limit={"rate": 5})
    assert diff(old, new) == [
        "upstreams.crm.endpoints",
        "upstreams.crm.headers.x-key",
        "upstreams.crm.rate_limit",
        "upstreams.crm.retry.attempts",
    ]
    assert diff(old.upstreams["crm"], new.upstreams["crm"], "up") == [
        "up.endpoints",
        "up.headers.x-key",
        "up.rate_limit",
        "up.retry.attempts",
    ]


def test_with_workers_sighup_checks_the_file_then_replaces_the_workers(
    tmp_path: Path, chaos: ChaosUpstream
) -> None:
    chaos.route("GET /item", Latency(1.0) + Respond(json={"ok": 1}))
    gw = Gateway(tmp_path, chaos)
    with running(gw, "--workers", "2") as process:
        assert gw.query()["errors"][0]["extensions"]["code"] == "UPSTREAM_TIMEOUT"
        # An invalid file: the supervisor says so, and the workers go on as they were.
        gw.crm["timeout"] = "soon"
        line = gw.hangup(process)
        assert line["reload"] == "rejected"
        assert line["message"] == (
            "configuration reload rejected, the workers keep the running configuration: "
            "upstreams.crm.timeout: input should be a valid number, unable to parse string "
            "as a number"
        )
        assert gw.query()["errors"][0]["extensions"]["code"] == "UPSTREAM_TIMEOUT"
        # A valid one: new workers, which read it.
        gw.crm["timeout"] = 20
        gw.token.write_text("token-two\n")
        line = gw.hangup(process)
        assert line["reload"] == "restarting_workers"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # until both old workers are replaced
            answers = [gw.query() for _ in range(4)]
            if all(answer == {"data": {"item": "{'ok': 1}"}} for answer in answers):
                break
        else:
            raise AssertionError(f"the new timeout never applied: {answers}")
        assert chaos.requests[-1].headers["authorization"] == "Bearer token-two"
        assert process.poll() is None


async def test_a_reloaded_breaker_shows_in_the_metrics_and_an_unchanged_one_keeps_its_state(
    chaos: ChaosUpstream,
) -> None:
    def config(**breaker: Any) -> Any:
        upstream = {"kind": "rest", "url": chaos.url, "breaker": {"minimum_calls": 1, **breaker}}
        return parse_config({"schema": "a:b", "upstreams": {"crm": upstream}})

    upstreams = Upstreams.from_config(config())
    metrics = GatewayMetrics(upstreams)
    try:
        metrics.start()
        crm = upstreams["crm"]
        assert crm.breaker is not None
        crm.breaker.record(failed=True, duration=0.01)  # opens: 1 call, all failed
        metrics.sync()
        state = metrics.registry.get_sample_value
        assert state("graftql_upstream_breaker_state", {"upstream": "crm"}) == 2
        # The same breaker settings (a timeout changed): the open breaker stays open.
        opened = crm.breaker
        crm.reconfigure(config().upstreams["crm"].model_copy(update={"timeout": 2.0}))
        assert crm.breaker is opened and crm.policy.timeout == 2.0
        # New breaker settings: a new, closed breaker, and the gauge says so.
        crm.reconfigure(config(open_for=30).upstreams["crm"])
        assert crm.breaker is not opened
        metrics.sync()
        assert state("graftql_upstream_breaker_state", {"upstream": "crm"}) == 0
        with pytest.raises(ValueError, match="a new kind or URL needs a new upstream"):
            crm.reconfigure(config().upstreams["crm"].model_copy(update={"url": "http://x"}))
    finally:
        await metrics.stop()
        await upstreams.aclose()
