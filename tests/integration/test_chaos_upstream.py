"""graftql.testing.ChaosUpstream over real loopback connections, with httpx as the client.

Every behaviour is checked for the exact outcome a client sees (status, headers, body, or the
concrete httpx exception), randomness through injected seeds, and the recording and lifecycle
(keep-alive, counts, reset, prompt stop while a handler hangs) through the public API only.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import pytest
import strawberry

from graftql import Context, GatewaySchema, load_config
from graftql.server import create_app
from graftql.testing import (
    UNMATCHED,
    Behaviour,
    Call,
    ChaosUpstream,
    Disconnect,
    FailRate,
    Hang,
    InvalidJson,
    Latency,
    Malformed,
    ReceivedRequest,
    Reset,
    Respond,
    RetryAfter,
    Sometimes,
    Trickle,
    Truncated,
    WrongContentType,
)

SEED = 20240611


@pytest.fixture
def chaos() -> Iterator[ChaosUpstream]:
    """The thread form, for the synchronous tests."""
    with ChaosUpstream(seed=SEED).running() as upstream:
        yield upstream


@pytest.fixture
def client(chaos: ChaosUpstream) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=chaos.url, timeout=5) as http:
        yield http


# -- answers -------------------------------------------------------------------------------------


def test_queued_behaviours_are_used_once_each_then_the_default(
    chaos: ChaosUpstream, client: httpx.Client
) -> None:
    route = chaos.route("GET /users/*").queue(Respond(503), times=2)
    route.always(Respond(200, json={"id": "u1", "tags": ["a"]}))
    assert route.pending == 2

    statuses = [client.get("/users/u1").status_code for _ in range(4)]

    assert statuses == [503, 503, 200, 200]
    assert route.pending == 0
    answer = client.get("/users/u1")
    assert answer.json() == {"id": "u1", "tags": ["a"]}
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["content-length"] == str(len(answer.content))
    assert chaos.count("GET /users/*") == route.count == 5


def test_respond_sends_status_headers_and_body_as_given(
    chaos: ChaosUpstream, client: httpx.Client
) -> None:
    chaos.route("/raw", Respond(201, b"\x00\x01raw", headers={"X-Trace": "t-1"}))
    chaos.route("/text", Respond(200, "héllo"))
    chaos.route("/typed", Respond(202, b"<a/>", content_type="application/xml"))
    chaos.route("/pairs", Respond(200, headers=[("set-cookie", "a=1"), ("set-cookie", "b=2")]))
    chaos.route("/empty", Respond(204))

    raw = client.get("/raw")
    assert (raw.status_code, raw.content, raw.headers["x-trace"]) == (201, b"\x00\x01raw", "t-1")
    assert "content-type" not in raw.headers
    text = client.get("/text")
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    assert text.text == "héllo"
    typed = client.get("/typed")
    assert (typed.status_code, typed.headers["content-type"]) == (202, "application/xml")
    assert client.get("/pairs").headers.get_list("set-cookie") == ["a=1", "b=2"]
    empty = client.get("/empty")
    assert (empty.status_code, empty.content) == (204, b"")
    assert "content-length" not in empty.headers
    head = client.head("/raw")
    assert (head.status_code, head.content, head.headers["content-length"]) == (201, b"", "5")


def test_unmatched_requests_get_a_404_json_or_the_configured_behaviour(
    chaos: ChaosUpstream, client: httpx.Client
) -> None:
    missing = client.post("/nowhere?x=1", json={})
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "no chaos route matches",
        "method": "POST",
        "path": "/nowhere",
    }
    chaos.unmatched = Respond(410, json={"gone": True})
    assert client.get("/elsewhere").status_code == 410
    assert chaos.count(UNMATCHED) == 2
    assert chaos.counts == {UNMATCHED: 2}


def test_routes_match_method_and_raw_path_most_specific_first(
    chaos: ChaosUpstream, client: httpx.Client
) -> None:
    chaos.route("/items", Respond(200, "any method"))
    chaos.route("/users/*", Respond(200, "one segment"))
    chaos.route("/deep/**", Respond(200, "any depth"))
    chaos.route("GET /users/me", Respond(200, "exact"))  # added later, still wins
    chaos.route("GET /items", Respond(200, "GET only"))

    assert client.get("/users/u1?fields=a").text == "one segment"
    assert client.get("/users/me").text == "exact"
    assert client.post("/users/me").text == "one segment"
    assert client.get("/items").text == "GET only"
    assert client.delete("/items").text == "any method"
    assert client.get("/users/a%2Fb").text == "one segment"  # raw: %2F is no separator
    assert client.get("/users/a/b").status_code == 404
    assert client.get("/deep/a/b/c").text == "any depth"
    assert chaos.counts == {
        "/users/*": 3,
        "GET /users/me": 1,
        "GET /items": 1,
        "/items": 1,
        UNMATCHED: 1,
        "/deep/**": 1,
    }
    assert [r.path for r in chaos.requests if r.route == "/users/*"] == [
        "/users/u1",
        "/users/me",
        "/users/a%2Fb",
    ]


def test_retry_after_in_seconds_and_as_http_date(
    chaos: ChaosUpstream, client: httpx.Client
) -> None:
    chaos.route("/seconds", RetryAfter(429, 2))
    chaos.route("/date", RetryAfter(503, 30, http_date=True))
    chaos.route("/fixed", RetryAfter(503, at=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)))

    limited = client.get("/seconds")
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "2")
    assert limited.json() == {"error": "Too Many Requests", "retry_after": 2}

    before = datetime.now(UTC).replace(microsecond=0)
    unavailable = client.get("/date")
    after = datetime.now(UTC)
    assert unavailable.status_code == 503
    when = parsedate_to_datetime(unavailable.headers["retry-after"])
    assert unavailable.headers["retry-after"].endswith(" GMT")
    assert before.timestamp() + 30 <= when.timestamp() <= after.timestamp() + 30

    fixed = client.get("/fixed")
    assert fixed.headers["retry-after"] == "Wed, 02 Jan 2030 03:04:05 GMT"
    assert fixed.json() == {"error": "Service Unavailable"}


# -- failures below HTTP -------------------------------------------------------------------------


def test_reset_before_answering_is_a_read_error(chaos: ChaosUpstream, client: httpx.Client) -> None:
    chaos.route("/reset", Reset())
    with pytest.raises(httpx.ReadError, match="Connection reset by peer"):
        client.get("/reset")
    assert chaos.count("/reset") == 1


def test_reset_after_headers_fails_while_reading_the_body(
    chaos: ChaosUpstream, client: httpx.Client
) -> None:
    chaos.route("/reset", Reset(after_headers=True, status=200))
    with client.stream("GET", "/reset") as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == "1024"
        with pytest.raises(httpx.ReadError, match="Connection reset by peer"):
            response.read()


def test_a_hang_is_cut_by_the_client_timeout_and_the_server_goes_on(
    chaos: ChaosUpstream, client: httpx.Client
) -> None:
    chaos.route("/hang", Hang())
    chaos.route("/ok", Respond(200, "fine"))
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.get("/hang", timeout=0.1)
    assert time.monotonic() - started < 1.0
    assert client.get("/ok").text == "fine"
    assert chaos.counts == {"/hang": 1, "/ok": 1}


def test_garbage_status_line_is_a_protocol_error(
    chaos: ChaosUpstream, client: httpx.Client
) -> None:
    chaos.route("/garbage", Malformed())
    chaos.route("/custom", Malformed(b"SMTP ready\r\n\r\n"))
    with pytest.raises(httpx.RemoteProtocolError, match="illegal status line"):
        client.get("/garbage")
    with pytest.raises(httpx.RemoteProtocolError, match="illegal status line"):
        client.get("/custom")


def test_truncated_body_declares_more_than_it_sends(
    chaos: ChaosUpstream, client: httpx.Client
) -> None:
    full = json.dumps({"items": list(range(30))}, separators=(",", ":")).encode()
    chaos.route("/cut", Truncated(json={"items": list(range(30))}, sent=10))
    received = bytearray()
    with client.stream("GET", "/cut") as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(len(full))
        cut = f"without sending complete message body (received 10 bytes, expected {len(full)})"
        with pytest.raises(httpx.RemoteProtocolError, match=re.escape(cut)):
            for chunk in response.iter_raw():
                received += chunk
    assert bytes(received) == full[:10]


def test_disconnect_closes_without_answering(chaos: ChaosUpstream, client: httpx.Client) -> None:
    chaos.route("/bye", Disconnect())
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        client.get("/bye")


# -- bad payloads --------------------------------------------------------------------------------


def test_invalid_json_under_a_json_content_type(chaos: ChaosUpstream, client: httpx.Client) -> None:
    chaos.route("/broken", InvalidJson())
    chaos.route("/broken-502", InvalidJson(502, "{nope"))
    response = client.get("/broken")
    assert (response.status_code, response.headers["content-type"]) == (200, "application/json")
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert client.get("/broken-502").content == b"{nope"


def test_wrong_content_type(chaos: ChaosUpstream, client: httpx.Client) -> None:
    chaos.route("/html", WrongContentType())
    chaos.route("/json-as-text", WrongContentType(json={"ok": True}, content_type="text/plain"))
    html = client.get("/html")
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert html.text.startswith("<html>")
    labelled = client.get("/json-as-text")
    assert (labelled.headers["content-type"], labelled.json()) == ("text/plain", {"ok": True})


def test_trickle_sends_the_body_slowly_and_a_read_timeout_cuts_it(
    chaos: ChaosUpstream, client: httpx.Client
) -> None:
    chaos.route("/slow", Trickle(200, b"abcdef", chunk_size=2, interval=0.03))
    chaos.route("/slower", Trickle(200, b"abcdef", chunk_size=1, interval=0.5))

    started = time.monotonic()
    chunks: list[bytes] = []
    with client.stream("GET", "/slow") as response:
        assert response.headers["content-length"] == "6"
        chunks.extend(response.iter_raw())
    assert b"".join(chunks) == b"abcdef"
    assert time.monotonic() - started >= 0.09  # three chunks, each after a 30 ms pause

    with pytest.raises(httpx.ReadTimeout):
        client.get("/slower", timeout=httpx.Timeout(5, read=0.05))


def test_call_decides_per_request_and_its_failures_are_kept(
    chaos: ChaosUpstream, client: httpx.Client
) -> None:
    def echo(request: ReceivedRequest) -> Behaviour:
        return Respond(200, json={"query": request.query, "got": request.json()})

    async def later(request: ReceivedRequest) -> Behaviour:
        await asyncio.sleep(0)
        return Respond(418) if request.headers.get("x-teapot") else Respond(200)

    def broken(request: ReceivedRequest) -> Behaviour:
        raise ValueError(f"cannot handle {request.path}")

    chaos.route("POST /echo", Call(echo))
    chaos.route("/async", Call(later))
    chaos.route("/broken", Call(broken))

    assert client.post("/echo?a=%20b", json={"n": 1}).json() == {"query": "a=%20b", "got": {"n": 1}}
    assert client.get("/async", headers={"X-Teapot": "yes"}).status_code == 418
    assert client.get("/async").status_code == 200
    failed = client.get("/broken")
    assert failed.status_code == 500
    assert failed.json()["detail"] == "ValueError('cannot handle /broken')"
    [error] = chaos.errors
    assert isinstance(error, ValueError)


def test_a_route_that_ran_out_answers_500_and_records_an_error(
    chaos: ChaosUpstream, client: httpx.Client
) -> None:
    chaos.route("/once").queue(Respond(200))
    assert client.get("/once").status_code == 200
    exhausted = client.get("/once")
    assert exhausted.status_code == 500
    assert exhausted.json() == {"error": "chaos route '/once' has no behaviour left"}
    [error] = chaos.errors
    assert isinstance(error, LookupError)
    assert str(error) == "chaos route '/once' has no behaviour left"


# -- randomness, always from the seed ------------------------------------------------------------


def _statuses(url: str, path: str, count: int) -> list[int]:
    with httpx.Client(base_url=url, timeout=5) as http:
        return [http.get(path).status_code for _ in range(count)]


def test_seeded_failure_rate_is_reproducible_and_close_to_the_share(chaos: ChaosUpstream) -> None:
    behaviour = FailRate(0.1, 503) + Respond(200)
    chaos.route("GET /flaky", behaviour)
    first = _statuses(chaos.url, "/flaky", 1000)

    chaos.reset()  # reseeds: the same script replays the same sequence
    chaos.route("GET /flaky", behaviour)
    again = _statuses(chaos.url, "/flaky", 1000)

    with ChaosUpstream(seed=SEED + 1).running() as other:
        other.route("GET /flaky", behaviour)
        different = _statuses(other.url, "/flaky", 200)

    assert set(first) == {200, 503}
    assert again == first
    assert different != first[:200]
    assert 70 <= first.count(503) <= 130  # 10 % of 1000, within three standard deviations
    assert chaos.count("GET /flaky") == 1000


def test_sometimes_replaces_the_answer_for_a_seeded_share(chaos: ChaosUpstream) -> None:
    def outcomes(url: str) -> list[str]:
        seen: list[str] = []
        with httpx.Client(base_url=url, timeout=5) as http:
            for _ in range(40):
                try:
                    seen.append(str(http.get("/maybe").status_code))
                except httpx.ReadError:
                    seen.append("reset")
        return seen

    script = Sometimes(0.25, Reset()) + Respond(200)
    chaos.route("/maybe", script)
    mine = outcomes(chaos.url)
    with ChaosUpstream(seed=SEED).running() as twin:
        twin.route("/maybe", script)
        assert outcomes(twin.url) == mine
    assert set(mine) == {"200", "reset"}
    assert chaos.count("/maybe") == 40  # a reset request was received and counted too


def test_latency_distributions_are_seeded_and_bounded() -> None:
    distributions = {
        "uniform": (Latency.uniform(0.02, 0.05), 0.02, 0.05),
        "exponential": (Latency.exponential(0.03, cap=0.1), 0.0, 0.1),
        "lognormal": (Latency.lognormal(0.03, 0.8, cap=0.2), 0.0, 0.2),
        "normal": (Latency.normal(0.01, 0.02, cap=0.05), 0.0, 0.05),
        "spike": (Latency.spike(0.05, 0.2), 0.0, 0.2),
    }
    for name, (latency, low, high) in distributions.items():
        rng = random.Random(7)
        draws = [latency.sample(rng) for _ in range(2000)]
        replay = random.Random(7)
        assert draws == [latency.sample(replay) for _ in range(2000)], name
        assert all(low <= d <= high for d in draws), name
        assert len(set(draws)) > 1, name
    normal = Latency.normal(0.01, 0.02, cap=0.05)
    rng = random.Random(7)
    assert any(normal.sample(rng) == 0.0 for _ in range(200))  # clipped at 0, not negative
    spike = Latency.spike(0.05, 0.2)
    rng = random.Random(7)
    spikes = [spike.sample(rng) for _ in range(2000)]
    assert set(spikes) == {0.0, 0.2}
    assert 60 <= spikes.count(0.2) <= 140  # 5 % of 2000


def test_injected_latency_is_seeded_recorded_and_waited(chaos: ChaosUpstream) -> None:
    script = Latency.uniform(0.001, 0.004) + Latency.spike(0.2, 0.02) + Respond(200)

    def delays(upstream: ChaosUpstream) -> list[float]:
        upstream.route("/slow", script)
        with httpx.Client(base_url=upstream.url, timeout=5) as http:
            for _ in range(25):
                started = time.monotonic()
                http.get("/slow")
                elapsed = time.monotonic() - started
                assert elapsed >= upstream.requests[-1].delay
        return [r.delay for r in upstream.requests]

    mine = delays(chaos)
    with ChaosUpstream(seed=SEED).running() as twin:
        assert delays(twin) == mine
    with ChaosUpstream(seed=SEED + 1).running() as other:
        assert delays(other) != mine
    assert all(0.001 <= d <= 0.024 for d in mine)
    assert any(d >= 0.021 for d in mine)  # some spiked


def test_fixed_latency_composes_with_a_status(chaos: ChaosUpstream, client: httpx.Client) -> None:
    chaos.route("/late", Latency(0.03) + RetryAfter(503, 1))
    started = time.monotonic()
    response = client.get("/late")
    assert time.monotonic() - started >= 0.03
    assert (response.status_code, response.headers["retry-after"]) == (503, "1")
    assert chaos.requests[-1].delay == 0.03


# -- recording and lifecycle ---------------------------------------------------------------------


def test_every_request_is_recorded_as_it_arrived(
    chaos: ChaosUpstream, client: httpx.Client
) -> None:
    chaos.route("POST /orders/*", Respond(201))
    before = time.monotonic()
    client.post(
        "/orders/o%201?b=2&a=1",
        content=b'{"x":1}',
        headers={"Content-Type": "application/json", "X-Dup": "1"},
    )
    client.post("/orders/o2", content=iter([b"ab", b"cd"]))  # chunked request body
    after = time.monotonic()

    first, second = chaos.requests
    assert (first.method, first.path, first.query, first.body) == (
        "POST",
        "/orders/o%201",
        "b=2&a=1",
        b'{"x":1}',
    )
    assert first.headers["content-type"] == "application/json"
    assert first.headers["x-dup"] == "1"
    assert first.headers["host"] == f"127.0.0.1:{chaos.port}"
    assert first.route == "POST /orders/*"
    assert first.peer[0] == "127.0.0.1"
    assert before <= first.at <= second.at <= after
    assert second.headers["transfer-encoding"] == "chunked"
    assert second.body == b"abcd"
    assert chaos.total == chaos.count() == 2


def test_keep_alive_serves_several_requests_on_one_connection(
    chaos: ChaosUpstream, client: httpx.Client
) -> None:
    chaos.route("/k", Respond(200, "k"))
    for _ in range(5):
        assert client.get("/k").text == "k"
    closing = client.get("/k", headers={"Connection": "close"})
    assert closing.headers["connection"] == "close"
    client.get("/k")

    peers = [r.peer for r in chaos.requests]
    assert len(set(peers[:6])) == 1  # one TCP connection, reused
    assert peers[6] != peers[0]  # the server closed it as asked; a new one was opened


def test_raw_clients_100_continue_http10_and_bad_requests(chaos: ChaosUpstream) -> None:
    chaos.route("/raw", Respond(200, "ok"))

    def exchange(data: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", chaos.port), timeout=5) as sock:
            sock.sendall(data)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
            return received

    continued = exchange(
        b"POST /raw HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"
        b"Connection: close\r\n\r\nhi"
    )
    assert continued.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    old = exchange(b"GET /raw HTTP/1.0\r\n\r\n")  # HTTP/1.0 without keep-alive: closed after
    assert old.startswith(b"HTTP/1.1 200 OK\r\n") and old.endswith(b"\r\n\r\nok")
    assert b"connection: close" in old
    assert exchange(b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert chaos.total == 2  # a request that is not HTTP is answered 400 and not counted
    assert chaos.requests[0].body == b"hi"


def test_reset_clears_scripts_counts_log_and_errors(
    chaos: ChaosUpstream, client: httpx.Client
) -> None:
    chaos.route("/a", Call(lambda r: Respond(int(r.query))))
    chaos.unmatched = Respond(418)
    client.get("/a?x")  # the Call raises ValueError
    client.get("/b")
    assert (chaos.total, len(chaos.requests), len(chaos.errors)) == (2, 2, 1)

    chaos.reset()

    assert (chaos.total, chaos.counts, chaos.requests, chaos.errors) == (0, {}, [], [])
    assert client.get("/a").status_code == 404  # the route is gone, unmatched is back to 404


def test_stop_returns_promptly_while_a_handler_hangs() -> None:
    chaos = ChaosUpstream(seed=SEED).start()
    chaos.route("/hang", Hang())
    chaos.route("/late", Latency(30) + Respond(200))
    outcomes: list[BaseException] = []

    def call(path: str) -> None:
        try:
            httpx.get(f"{chaos.url}{path}", timeout=30)
        except httpx.HTTPError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=call, args=(p,)) for p in ("/hang", "/late")]
    for thread in threads:
        thread.start()
    chaos.wait_for_requests(2)

    started = time.monotonic()
    chaos.stop()
    assert time.monotonic() - started < 0.5
    for thread in threads:
        thread.join(5)
    assert [type(e) for e in outcomes] == [httpx.RemoteProtocolError] * 2
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{chaos.url}/hang", timeout=1)
    chaos.stop()  # a second stop is harmless


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Latency(-0.1), "latency must be >= 0 seconds, got -0.1"),
        (lambda: Latency(float("nan")), "latency must be a finite number, got nan"),
        (lambda: Latency.uniform(0.5, 0.1), "low must be <= high"),
        (lambda: Latency.exponential(0), "mean must be > 0, got 0"),
        (lambda: Latency.spike(1.5, 0.2), "probability must be a probability between 0 and 1"),
        (lambda: FailRate(-0.1), "rate must be a probability between 0 and 1, got -0.1"),
        (lambda: Sometimes(2, Reset()), "probability must be a probability between 0 and 1"),
        (lambda: Respond(600), "status must be an integer between 100 and 599, got 600"),
        (lambda: Respond(99), "status must be an integer between 100 and 599, got 99"),
        (lambda: FailRate(0.1, 700), "status must be an integer between 100 and 599, got 700"),
        (lambda: RetryAfter(429, -1), "seconds must be an integer >= 0, got -1"),
        (lambda: Respond(200, b"x", json={}), "give either body or json, not both"),
        (lambda: Trickle(200, b"x", interval=-1), "interval must be >= 0 seconds, got -1"),
        (lambda: Truncated(200, b"abc", sent=3), "sent must be smaller than the body's 3 bytes"),
        (lambda: InvalidJson(200, b"{}"), "InvalidJson body must not parse as JSON"),
        (lambda: ChaosUpstream().route("users"), "a route path starts with '/'"),
        (lambda: ChaosUpstream().route("GET /a?b=1"), "a route path starts with '/'"),
        (lambda: ChaosUpstream().route("/a").queue(times=-1), "times must be an integer >= 0"),
    ],
)
def test_bad_scripting_input_raises_a_clear_value_error(
    build: Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build()


def test_a_modifier_alone_is_not_a_behaviour() -> None:
    with pytest.raises(TypeError, match=r"needs '\+ Respond\(...\)'"):
        ChaosUpstream().route("/a").queue(Latency(0.1))  # type: ignore[arg-type]


# -- the async form ------------------------------------------------------------------------------


@pytest.fixture
async def achaos() -> AsyncIterator[ChaosUpstream]:
    async with ChaosUpstream(seed=SEED) as upstream:
        yield upstream


async def test_async_form_serves_scripts_in_the_running_loop(achaos: ChaosUpstream) -> None:
    achaos.route("GET /users/*").queue(Respond(503), RetryAfter(429, 1)).always(
        Respond(200, json={"id": "u1"})
    )
    async with httpx.AsyncClient(base_url=achaos.url, timeout=5) as http:
        answers = [await http.get("/users/u1") for _ in range(3)]
        assert [a.status_code for a in answers] == [503, 429, 200]
        assert answers[1].headers["retry-after"] == "1"
        assert answers[2].json() == {"id": "u1"}
        assert len({r.peer for r in achaos.requests}) == 1

        achaos.route("/reset", Reset())
        with pytest.raises(httpx.ReadError):
            await http.get("/reset")
        achaos.route("/hang", Hang())
        with pytest.raises(httpx.ReadTimeout):
            await http.get("/hang", timeout=0.05)
    assert achaos.url.startswith("http://127.0.0.1:")
    assert achaos.counts == {"GET /users/*": 3, "/reset": 1, "/hang": 1}


async def test_async_stop_cuts_hung_handlers_promptly() -> None:
    chaos = ChaosUpstream(seed=SEED)
    await chaos.astart()
    chaos.route("/hang", Hang())
    with pytest.raises(RuntimeError, match="astop"):
        chaos.stop()
    async with httpx.AsyncClient(base_url=chaos.url, timeout=30) as http:
        pending = asyncio.gather(*(http.get("/hang") for _ in range(3)), return_exceptions=True)
        async with asyncio.timeout(5):
            await chaos.wait_for_requests_async(3)
        started = time.monotonic()
        await chaos.astop()
        assert time.monotonic() - started < 0.5
        outcomes = await pending
    assert [type(o) for o in outcomes] == [httpx.RemoteProtocolError] * 3


# -- behind a gateway (the docs/testing.md example) ----------------------------------------------


@strawberry.type
class User:
    id: strawberry.ID
    name: str


@strawberry.type
class Query:
    @strawberry.field
    async def user(self, info: strawberry.Info[Context, None], id: strawberry.ID) -> User | None:
        row = await info.context.upstreams.rest("users").get("/users/{id}", id=id)
        return User(id=row["id"], name=row["name"])


GATEWAY_YAML = """
schema: tests:unused
upstreams:
  users:
    kind: rest
    url: ${USERS_URL}
    timeout: 2
    retry: {attempts: 3, base_delay: 0.01}
"""


async def test_a_gateway_in_front_of_the_chaos_upstream(tmp_path: Path) -> None:
    (tmp_path / "gateway.yaml").write_text(GATEWAY_YAML)
    query = {"query": '{ user(id: "u1") { name } }'}
    async with ChaosUpstream(seed=SEED) as chaos:
        config = load_config(tmp_path / "gateway.yaml", environ={"USERS_URL": chaos.url})
        app = create_app(config, GatewaySchema(query=Query))
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://gateway") as gateway,
        ):
            chaos.route("GET /users/*").queue(Respond(503), Reset()).always(
                Respond(200, json={"id": "u1", "name": "Ada"})
            )
            answer = (await gateway.post("/graphql", json=query)).json()
            assert answer == {"data": {"user": {"name": "Ada"}}}
            assert chaos.count("GET /users/*") == 3  # two failures retried, then the answer

            chaos.reset()
            chaos.route("GET /users/*", InvalidJson())
            answer = (await gateway.post("/graphql", json=query)).json()
            assert answer["data"] == {"user": None}
            assert answer["errors"][0]["extensions"] == {
                "code": "UPSTREAM_BAD_RESPONSE",
                "upstream": "users",
            }
            assert [r.path for r in chaos.requests] == ["/users/u1"]
