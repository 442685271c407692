"""The payments demo upstream over real HTTP: OAuth2 client credentials and cursor paging.

Token expiry is tested by moving the service's injected clock, never by sleeping.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from graftql.demo import data
from integration.demo_stack import PAYMENTS_T0, Stack, stack_fixtures

stack, client, _fresh_services = stack_fixtures(("payments",))


# --- payments (OAuth2 client credentials) -----------------------------------------------------


def issue_token(stack: Stack, client: httpx.Client) -> str:
    response = client.post(
        f"{stack.urls['payments']}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(stack.creds.payments_client_id, stack.creds.payments_client_secret),
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def pay(stack: Stack, client: httpx.Client, path: str, token: str, **params: Any) -> httpx.Response:
    return client.get(
        f"{stack.urls['payments']}{path}",
        params=params or None,
        headers={"Authorization": f"Bearer {token}"},
    )


def test_payments_token_via_basic_and_via_form(stack: Stack, client: httpx.Client) -> None:
    url = f"{stack.urls['payments']}/oauth/token"
    creds = stack.creds
    basic = client.post(
        url,
        data={"grant_type": "client_credentials"},
        auth=(creds.payments_client_id, creds.payments_client_secret),
    )
    form = client.post(
        url,
        data={
            "grant_type": "client_credentials",
            "client_id": creds.payments_client_id,
            "client_secret": creds.payments_client_secret,
            "scope": "payments:read payments:refund",
        },
    )
    assert basic.status_code == form.status_code == 200
    assert basic.headers["cache-control"] == "no-store"
    body = form.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 300)
    assert body["scope"] == "payments:read payments:refund"
    assert body["access_token"] != basic.json()["access_token"]
    stats = client.get(f"{stack.urls['payments']}/__stats").json()
    assert stats["requests"] == {"POST /oauth/token": 2}


@pytest.mark.parametrize(
    ("data", "auth", "status", "error"),
    [
        ({"grant_type": "client_credentials"}, ("ID", "wrong"), 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, ("nobody", "SECRET"), 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, None, 401, "invalid_client"),
        (
            {"grant_type": "client_credentials", "client_id": "ID", "client_secret": "x"},
            None,
            401,
            "invalid_client",
        ),
        ({"grant_type": "password"}, ("ID", "SECRET"), 400, "unsupported_grant_type"),
        ({}, ("ID", "SECRET"), 400, "invalid_request"),
    ],
)
def test_payments_token_errors(
    stack: Stack,
    client: httpx.Client,
    data: dict[str, str],
    auth: tuple[str, str] | None,
    status: int,
    error: str,
) -> None:
    real = {"ID": stack.creds.payments_client_id, "SECRET": stack.creds.payments_client_secret}
    data = {k: real.get(v, v) for k, v in data.items()}
    url = f"{stack.urls['payments']}/oauth/token"
    if auth is None:
        response = client.post(url, data=data)
    else:
        basic = (real.get(auth[0], auth[0]), real.get(auth[1], auth[1]))
        response = client.post(url, data=data, auth=basic)
    assert response.status_code == status
    assert response.json() == {"error": error}


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic abc"])
def test_payments_api_requires_valid_token(
    stack: Stack, client: httpx.Client, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get(f"{stack.urls['payments']}/v1/payments", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json() == {
        "error": {"type": "invalid_request_error", "message": "invalid or expired token"}
    }


def test_payments_token_expires_by_the_injected_clock(stack: Stack, client: httpx.Client) -> None:
    token = issue_token(stack, client)
    stack.payments_clock.now = PAYMENTS_T0 + 299.9
    assert pay(stack, client, "/v1/payments/pay_3HkQ9xWmA1", token).status_code == 200
    stack.payments_clock.now = PAYMENTS_T0 + 300
    expired = pay(stack, client, "/v1/payments/pay_3HkQ9xWmA1", token)
    assert expired.status_code == 401
    assert expired.json()["error"]["message"] == "invalid or expired token"
    assert pay(stack, client, "/v1/payments", issue_token(stack, client)).status_code == 200


def test_payments_get_and_404(stack: Stack, client: httpx.Client) -> None:
    token = issue_token(stack, client)
    payment = pay(stack, client, "/v1/payments/pay_4XfJ8iOzG2", token).json()
    assert payment == {
        "id": "pay_4XfJ8iOzG2",
        "object": "payment",
        "order_id": "o7",
        "status": "refunded",
        "amount": 34900,
        "currency": "EUR",
        "created": data.PAYMENTS_BY_ID["pay_4XfJ8iOzG2"].created,
    }
    missing = pay(stack, client, "/v1/payments/pay_nope", token)
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {"type": "invalid_request_error", "message": "no such payment"}
    }


def walk_payments(stack: Stack, client: httpx.Client, token: str, **params: Any) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(50):  # bounded: a pagination bug must fail the test, not hang it
        page_params = dict(params, **({"starting_after": cursor} if cursor else {}))
        page = pay(stack, client, "/v1/payments", token, **page_params).json()
        assert page["object"] == "list"
        seen += [p["id"] for p in page["data"]]
        if not page["has_more"]:
            return seen
        cursor = page["data"][-1]["id"]
    raise AssertionError("pagination did not terminate")


def test_payments_cursor_walk_loses_and_duplicates_nothing(
    stack: Stack, client: httpx.Client
) -> None:
    token = issue_token(stack, client)
    everything = sorted(p.id for p in data.PAYMENTS)
    assert walk_payments(stack, client, token, limit=4) == everything
    assert walk_payments(stack, client, token, limit=1) == everything
    assert walk_payments(stack, client, token) == everything
    wanted = ["o1", "o2", "o3", "o7", "o12", "o15"]  # o15 is pending: no payment
    expected = sorted(data.PAYMENTS_BY_ORDER_ID[o].id for o in wanted if o != "o15")
    assert walk_payments(stack, client, token, order_ids=",".join(wanted), limit=2) == expected
    repeated = client.get(
        f"{stack.urls['payments']}/v1/payments?order_ids=o1&order_ids=o2,o3&order_ids=o7,o12,o15",
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert [p["id"] for p in repeated["data"]] == expected and repeated["has_more"] is False


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "ten"},
        {"starting_after": "pay_unknown"},
        {"order_ids": ""},
        {"order_ids": ",".join(f"o{i}" for i in range(101))},
    ],
)
def test_payments_bad_list_params_are_400(
    stack: Stack, client: httpx.Client, params: dict[str, str]
) -> None:
    response = pay(stack, client, "/v1/payments", issue_token(stack, client), **params)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
