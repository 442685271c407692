"""Connect and read timeouts, each within the attempt's total, over real loopback sockets."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from graftql.config import UpstreamConfig, parse_config
from graftql.errors import ConfigError, UpstreamTimeout, UpstreamUnavailable
from graftql.testing import ChaosUpstream, Latency, Respond
from graftql.upstreams import RestUpstream, events


def rest(url: str, **settings: Any) -> RestUpstream:
    return RestUpstream(
        "svc", UpstreamConfig.model_validate({"kind": "rest", "url": url, **settings})
    )


async def test_connect_timeout_fails_the_attempt_early(unanswered_port: int) -> None:
    upstream = rest(
        f"http://127.0.0.1:{unanswered_port}",
        timeout=5,
        connect_timeout=0.3,
        retry={"attempts": 1},
    )
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable) as caught:
        await upstream.get("/items")
    elapsed = time.monotonic() - started
    await upstream.aclose()
    assert 0.3 <= elapsed < 1.5
    assert str(caught.value) == "svc could not be reached within 0.3s"
    assert caught.value.sent is False


async def test_read_timeout_bounds_the_silence_not_the_whole_answer(
    chaos: ChaosUpstream,
) -> None:
    chaos.route("GET /items").queue(Latency(1.0) + Respond(json={"late": True}))
    upstream = rest(chaos.url, timeout=5, read_timeout=0.3, retry={"attempts": 1})
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as caught:
        await upstream.get("/items")
    elapsed = time.monotonic() - started
    await upstream.aclose()
    assert 0.3 <= elapsed < 0.9
    assert str(caught.value) == "svc sent nothing for 0.3s"
    assert chaos.total == 1


async def test_the_attempt_total_caps_the_read_timeout(chaos: ChaosUpstream) -> None:
    chaos.route("GET /items").queue(Latency(1.5) + Respond(json={"late": True}))
    upstream = rest(chaos.url, timeout=0.4, read_timeout=3, retry={"attempts": 1})
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as caught:
        await upstream.get("/items")
    assert time.monotonic() - started < 1.2
    await upstream.aclose()
    assert str(caught.value) == "svc did not answer within 0.4s"


async def test_a_mutation_that_never_left_is_tried_again() -> None:
    """A POST is not safe to repeat once sent; when no connection could be made it was never
    sent, so the retry loop may try it again (here the upstream comes up in between)."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens on the port now: the first attempt is refused
    chaos = ChaosUpstream(port=port)
    chaos.route("POST /payments").queue(Respond(json={"id": "pay_1"}))

    def bring_it_up(event: str, upstream: str, fields: dict[str, Any]) -> None:
        if event == "retry" and not chaos.is_running:
            chaos.start()

    events.listen(bring_it_up)
    upstream = rest(f"http://127.0.0.1:{port}", retry={"attempts": 2, "base_delay": 0.01})
    try:
        assert await upstream.request("POST", "/payments", json_body={"amount": 1}) == {
            "id": "pay_1"
        }
    finally:
        events.unlisten(bring_it_up)
        await upstream.aclose()
        chaos.stop()
    assert [(r.method, r.path) for r in chaos.requests] == [("POST", "/payments")]
    assert chaos.errors == []


async def test_a_mutation_that_reached_the_upstream_is_not_repeated(
    chaos: ChaosUpstream,
) -> None:
    chaos.route("POST /payments").queue(Latency(1.0) + Respond(json={"late": True}))
    upstream = rest(
        chaos.url, timeout=5, read_timeout=0.2, retry={"attempts": 3, "base_delay": 0.01}
    )
    with pytest.raises(UpstreamTimeout):
        await upstream.request("POST", "/payments", json_body={"amount": 1})
    await upstream.aclose()
    assert chaos.total == 1


def test_timeouts_are_validated_with_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {
                "schema": "m:s",
                "upstreams": {
                    "a": {"kind": "rest", "url": "http://x", "connect_timeout": 0},
                    "b": {"kind": "rest", "url": "http://x", "read_timeout": "slow"},
                },
            }
        )
    assert caught.value.errors == [
        ("upstreams.a.connect_timeout", "input should be greater than 0"),
        (
            "upstreams.b.read_timeout",
            "input should be a valid number, unable to parse string as a number",
        ),
    ]
