"""The demo services' control plane over real HTTP: stats, request log, reset, chaos, health."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest

from graftql.demo.servers import ServerThread
from graftql.demo.services import DemoCredentials, ServiceControl
from graftql.demo.services import crm as crm_service
from graftql.demo.services.common import (
    REQUEST_LOG_SIZE,
    ChaosDraw,
    ChaosError,
    ChaosSettings,
    draw_chaos,
)

API_KEY = "control-test-key"


@pytest.fixture(scope="module")
def control() -> ServiceControl:
    return ServiceControl("crm", failure_status=503)


@pytest.fixture(scope="module")
def crm_url(control: ServiceControl) -> Iterator[str]:
    with ServerThread(crm_service.create_app(api_key=API_KEY, control=control)) as server:
        yield server.url


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=10) as c:
        yield c


@pytest.fixture(autouse=True)
def _reset(crm_url: str, client: httpx.Client) -> Iterator[None]:
    client.post(f"{crm_url}/__reset").raise_for_status()
    yield
    client.post(f"{crm_url}/__reset").raise_for_status()  # never leak chaos into other tests


def get(client: httpx.Client, url: str, key: str = API_KEY) -> httpx.Response:
    return client.get(url, headers={"X-Api-Key": key})


def test_stats_count_by_route_template_including_rejected(
    crm_url: str, client: httpx.Client
) -> None:
    get(client, f"{crm_url}/customers/c1")
    get(client, f"{crm_url}/customers/c2")
    get(client, f"{crm_url}/customers/c2", key="wrong")  # rejected, still counted
    get(client, f"{crm_url}/customers?ids=c1,c2")
    get(client, f"{crm_url}/customers/c1/orders?page=2&per_page=5")
    get(client, f"{crm_url}/no/such/route")
    client.post(f"{crm_url}/customers/c1", headers={"X-Api-Key": API_KEY})  # 405
    client.get(f"{crm_url}/__requests")
    client.get(f"{crm_url}/healthz")
    assert client.get(f"{crm_url}/__stats").json() == {
        "service": "crm",
        "total": 7,
        "requests": {
            "GET /customers/{id}": 3,
            "GET /customers": 1,
            "GET /customers/{id}/orders": 1,
            "GET <unmatched>": 1,
            "POST /customers/{id}": 1,
        },
    }


def test_request_log_keeps_the_raw_path_query_and_headers(
    crm_url: str, client: httpx.Client
) -> None:
    response = get(client, f"{crm_url}/customers/..%2Fadmin")
    assert response.status_code == 404
    get(client, f"{crm_url}/customers?ids=c1%2Cc2&x=%20")
    client.get(f"{crm_url}/__stats")
    logged = client.get(f"{crm_url}/__requests").json()["requests"]
    assert [(r["method"], r["path"], r["query"]) for r in logged] == [
        ("GET", "/customers/..%2Fadmin", ""),
        ("GET", "/customers", "ids=c1%2Cc2&x=%20"),
    ]
    headers = logged[0]["headers"]
    assert headers["x-api-key"] == API_KEY
    assert all(name == name.lower() for name in headers)


def test_request_log_is_bounded() -> None:
    control = ServiceControl("bounded")
    scope = {"method": "GET", "path": "/x", "raw_path": b"/x", "query_string": b"", "headers": []}
    for i in range(REQUEST_LOG_SIZE + 10):
        control.record("GET /x", {**scope, "query_string": f"i={i}".encode()})
    entries = control.requests()
    assert len(entries) == REQUEST_LOG_SIZE
    assert entries[0].query == "i=10" and control.count("GET /x") == REQUEST_LOG_SIZE + 10


def test_reset_clears_counters_log_and_chaos(crm_url: str, client: httpx.Client) -> None:
    get(client, f"{crm_url}/customers/c1")
    client.post(
        f"{crm_url}/__chaos",
        json={"latency_ms": 1, "failure_rate": 0.5, "seed": 3, "slow_rate": 0.2, "slow_ms": 9},
    )
    assert client.post(f"{crm_url}/__reset").json() == {"ok": True}
    assert client.get(f"{crm_url}/__stats").json() == {"service": "crm", "total": 0, "requests": {}}
    assert client.get(f"{crm_url}/__requests").json() == {"requests": []}
    assert client.get(f"{crm_url}/__chaos").json() == {
        "latency_ms": 0,
        "failure_rate": 0.0,
        "failure_status": 503,
        "seed": 0,
        "slow_rate": 0.0,
        "slow_ms": 0,
    }


@pytest.mark.parametrize(
    "body",
    [
        {"latency_ms": -1},
        {"latency_ms": "5"},
        {"latency_ms": 1.5},
        {"failure_rate": 1.5},
        {"failure_rate": True},
        {"failure_rate": "0.5"},
        {"failure_status": 200},
        {"seed": None},
        {"failures": 1},
        [1, 2],
        {"slow_rate": -0.1},
        {"slow_rate": 1.01},
        {"slow_rate": False},
        {"slow_rate": "0.05"},
        {"slow_rate": None},
        {"slow_ms": -1},
        {"slow_ms": 60_001},
        {"slow_ms": 200.5},
        {"slow_ms": "200"},
        {"slow_ms": True},
        {"slow_rate": 0.05, "slow_ms": -200},  # one bad value refuses the whole change
        {"slow": 0.05},
    ],
)
def test_chaos_rejects_bad_settings(crm_url: str, client: httpx.Client, body: Any) -> None:
    response = client.post(f"{crm_url}/__chaos", json=body)
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)
    chaos = client.get(f"{crm_url}/__chaos").json()
    assert chaos["failure_rate"] == 0.0
    assert (chaos["slow_rate"], chaos["slow_ms"]) == (0.0, 0)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"slow_rate": 2}, "slow_rate must be a number between 0 and 1"),
        ({"slow_rate": True}, "slow_rate must be a number between 0 and 1"),
        ({"slow_ms": 60_001}, "slow_ms must be an integer between 0 and 60000"),
        ({"slow_ms": 0.5}, "slow_ms must be an integer between 0 and 60000"),
        ({"slowms": 5}, "unknown chaos setting(s): slowms"),
    ],
)
def test_chaos_error_names_the_bad_slow_setting(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(ChaosError) as caught:
        ChaosSettings().updated(changes)
    assert str(caught.value) == reason
    control = ServiceControl("direct")
    with pytest.raises(ChaosError):
        control.update_chaos(changes)
    assert control.chaos == ChaosSettings()
    if "slowms" not in changes:  # the constructor takes only the known settings
        with pytest.raises(ChaosError):
            ServiceControl("construct", **changes)


def test_chaos_slow_settings_are_shown_and_an_int_rate_becomes_a_float(
    crm_url: str, client: httpx.Client
) -> None:
    answer = client.post(f"{crm_url}/__chaos", json={"slow_rate": 1, "slow_ms": 200}).json()
    assert answer == client.get(f"{crm_url}/__chaos").json()
    assert answer == {
        "latency_ms": 0,
        "failure_rate": 0.0,
        "failure_status": 503,
        "seed": 0,
        "slow_rate": 1.0,
        "slow_ms": 200,
    }
    assert isinstance(answer["slow_rate"], float)


def test_chaos_rejects_non_json(crm_url: str, client: httpx.Client) -> None:
    response = client.post(f"{crm_url}/__chaos", content=b"latency=5")
    assert response.status_code == 400


def failure_pattern(client: httpx.Client, crm_url: str, settings: Mapping[str, Any]) -> list[int]:
    client.post(f"{crm_url}/__chaos", json=dict(settings)).raise_for_status()
    return [get(client, f"{crm_url}/customers/c1").status_code for _ in range(24)]


def test_chaos_failures_are_reproducible_from_the_seed(crm_url: str, client: httpx.Client) -> None:
    settings = {"failure_rate": 0.5, "failure_status": 502, "seed": 7}
    first = failure_pattern(client, crm_url, settings)
    second = failure_pattern(client, crm_url, settings)
    assert first == second
    assert set(first) == {200, 502}
    rng = random.Random(7)  # one draw per request, in arrival order
    assert first == [502 if rng.random() < 0.5 else 200 for _ in range(24)]
    other_seed = failure_pattern(client, crm_url, {**settings, "seed": 8})
    assert other_seed != first
    stats = client.get(f"{crm_url}/__stats").json()
    assert stats["requests"] == {"GET /customers/{id}": 72}  # failures are counted too
    failed = next(i for i, status in enumerate(first) if status == 502)
    client.post(f"{crm_url}/__chaos", json=settings)
    responses = [get(client, f"{crm_url}/customers/c1") for _ in range(failed + 1)]
    assert responses[-1].json() == {"error": "injected_failure", "message": "injected by chaos"}


def test_chaos_failure_rate_one_fails_everything_but_admin_and_health(
    crm_url: str, client: httpx.Client
) -> None:
    client.post(f"{crm_url}/__chaos", json={"failure_rate": 1})
    assert get(client, f"{crm_url}/customers/c1").status_code == 503
    assert client.get(f"{crm_url}/healthz").json() == {"status": "ok"}
    assert client.get(f"{crm_url}/__chaos").json()["failure_rate"] == 1.0


def slow_pattern(client: httpx.Client, crm_url: str, settings: Mapping[str, Any]) -> list[bool]:
    """Which of 12 sequential requests took at least ``slow_ms`` (plus ``latency_ms``)."""
    client.post(f"{crm_url}/__chaos", json=dict(settings)).raise_for_status()
    threshold = (settings["slow_ms"] + settings.get("latency_ms", 0)) / 1000
    out = []
    for _ in range(12):
        started = time.monotonic()
        assert get(client, f"{crm_url}/customers/c1").status_code == 200
        out.append(time.monotonic() - started >= threshold)
    return out


def test_chaos_slow_share_is_reproducible_from_the_seed(crm_url: str, client: httpx.Client) -> None:
    settings = {"slow_rate": 0.5, "slow_ms": 150, "seed": 11}
    first = slow_pattern(client, crm_url, settings)
    assert first == slow_pattern(client, crm_url, settings)  # re-posting reseeds
    rng = random.Random(11)  # one slow draw per request, in arrival order
    assert first == [rng.random() < 0.5 for _ in range(12)]
    assert True in first and False in first
    # The admin and health routes are never slowed, even with every request slow.
    client.post(f"{crm_url}/__chaos", json={"slow_rate": 1.0, "slow_ms": 400})
    started = time.monotonic()
    client.get(f"{crm_url}/healthz")
    client.get(f"{crm_url}/__stats")
    assert time.monotonic() - started < 0.4
    assert client.get(f"{crm_url}/__stats").json()["requests"] == {"GET /customers/{id}": 24}


def test_chaos_slow_and_failure_draws_follow_one_seeded_sequence() -> None:
    """With both shares on, each request draws slow first, then failure, from one generator."""
    settings = ChaosSettings(
        latency_ms=5, failure_rate=0.3, failure_status=502, seed=42, slow_rate=0.2, slow_ms=200
    )
    control = ServiceControl("both")
    control.set_chaos(settings)
    got = [control.roll() for _ in range(200)]
    rng = random.Random(42)
    want = []
    for _ in range(200):
        slow = rng.random() < 0.2
        failed = rng.random() < 0.3
        want.append(ChaosDraw(205 if slow else 5, slow, 502 if failed else None))
    assert got == want
    replay = random.Random(42)
    assert got == [draw_chaos(settings, replay) for _ in range(200)]
    assert 20 <= sum(d.slow for d in got) <= 60 and 40 <= sum(bool(d.failure_status) for d in got)
    # Slow draws off: the failure sequence is the seed's own, as before slow requests existed.
    control.set_chaos(settings.updated({"slow_rate": 0.0}))
    rng = random.Random(42)
    assert [control.roll_failure() for _ in range(50)] == [
        502 if rng.random() < 0.3 else None for _ in range(50)
    ]
    # Reset puts the construction defaults back, the slow share included.
    control.reset()
    assert control.chaos == ChaosSettings()
    assert {control.roll() for _ in range(20)} == {ChaosDraw()}


def test_chaos_latency_is_applied(crm_url: str, client: httpx.Client) -> None:
    settings = client.post(f"{crm_url}/__chaos", json={"latency_ms": 80}).json()
    assert settings["latency_ms"] == 80
    started = time.monotonic()
    response = get(client, f"{crm_url}/customers/c1")
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed >= 0.080


def test_healthz_needs_no_credentials_and_is_not_counted(
    demo_services: Mapping[str, str], demo_credentials: DemoCredentials
) -> None:
    assert set(demo_services) == {"catalog", "crm", "payments", "shipping"}
    with httpx.Client(trust_env=False, timeout=10) as client:
        for url in demo_services.values():
            assert url.startswith("http://127.0.0.1:")
            client.post(f"{url}/__reset")
            assert client.get(f"{url}/healthz").json() == {"status": "ok"}
            assert client.get(f"{url}/__stats").json()["total"] == 0
        # The shared fixture's services really use the shared fixture's credentials.
        crm_url = demo_services["crm"]
        ok = client.get(
            f"{crm_url}/customers/c1", headers={"X-Api-Key": demo_credentials.crm_api_key}
        )
        assert ok.status_code == 200
        client.post(f"{crm_url}/__reset")
