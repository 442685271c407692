"""Known-answer tests for request signing: SigV4 against AWS's published test vectors
(tests/data/aws_sigv4_vectors.json names its source) and HMAC against digests computed with
``openssl dgst`` (an implementation independent of Python's ``hmac``)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from graftql.config import UpstreamConfig
from graftql.upstreams.auth import HmacSigner
from graftql.upstreams.sigv4 import SigV4Signer, canonical_query

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "data" / "aws_sigv4_vectors.json").read_text()
)
_SIGNED_BY_US = {"authorization", "x-amz-date", "x-amz-security-token"}


def parse(text: str) -> tuple[str, str, list[tuple[str, str]]]:
    """A test-suite request: (method, path and query, headers)."""
    head = text.split("\n\n", 1)[0].split("\n")
    method, target, _ = head[0].split(" ")
    headers = [(name, value) for name, _, value in (line.partition(":") for line in head[1:])]
    return method, target, headers


def signer(token: str | None = None) -> SigV4Signer:
    ctx = VECTORS["context"]
    auth: dict[str, Any] = {
        "type": "aws_sigv4",
        "service": ctx["service"],
        "region": ctx["region"],
        "access_key_id": "${AK}",
        "secret_access_key": "${SK}",
    }
    environ = {"AK": ctx["access_key_id"], "SK": ctx["secret_access_key"]}
    if token is not None:
        auth["session_token"] = "${TOK}"
        environ["TOK"] = token
    config = UpstreamConfig.model_validate(
        {"kind": "rest", "url": "https://example.amazonaws.com", "auth": auth},
        context={"environ": environ},
    )
    assert config.auth is not None and config.auth.type == "aws_sigv4"
    return SigV4Signer(config.auth)


@pytest.fixture
def at_vector_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore reads the time through this one function; the vectors were signed at this time.
    when = datetime.datetime(2015, 8, 30, 12, 36, 0)
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda *a, **k: when)


@pytest.mark.usefixtures("at_vector_time")
@pytest.mark.parametrize("name", sorted(VECTORS["vectors"]))
def test_sigv4_reproduces_aws_test_suite(name: str) -> None:
    vector = VECTORS["vectors"][name]
    token = None
    if isinstance(vector, dict):
        token, vector = vector["token"], vector["request"]
    method, target, headers = parse(vector)
    expected = {k.lower(): v for k, v in headers if k.lower() in _SIGNED_BY_US}
    unsigned = [(k, v) for k, v in headers if k.lower() not in _SIGNED_BY_US | {"host"}]
    request = httpx.Request(method, f"https://example.amazonaws.com{target}", headers=unsigned)
    signed = next(signer(token).auth_flow(request))
    assert signed.headers["host"] == "example.amazonaws.com"
    assert {k: signed.headers[k] for k in expected} == expected


@pytest.mark.usefixtures("at_vector_time")
def test_sigv4_signs_again_on_every_attempt() -> None:
    request = httpx.Request("GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1")
    sign = signer()
    first = next(sign.auth_flow(request)).headers["authorization"]
    second = next(sign.auth_flow(request)).headers["authorization"]  # a retry of the same request
    assert first == second and first.endswith(
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
    )


def test_canonical_query_is_what_goes_on_the_wire() -> None:
    assert canonical_query(b"b=2&a=x+y&c=%2B&d") == b"a=x%20y&b=2&c=%2B&d="
    assert canonical_query(b"") == b""


@pytest.mark.parametrize(
    ("algorithm", "digest"),
    [
        ("sha256", "29ddcf0198eff9ed34a3a5e0021a38e16ee4351bd1fc6a917607f6453d47abfd"),
        (
            "sha512",
            "1bc2463a10535724a797cfeed20e14aa53a36d04344c02036d31a1297d2e24b3"
            "6e476fee8c8c012b35b60bc2bbf34ecab4d137b74c85adec766f2eb9554408a0",
        ),
    ],
)
def test_hmac_known_answer(algorithm: str, digest: str) -> None:
    # printf '1700000000\nPOST\n/api/shipments/a%2Fb\nids=o1%2Co2\n<hex digest of body>' \
    #   | openssl dgst -<algorithm> -hmac topsecret
    config = UpstreamConfig.model_validate(
        {
            "kind": "rest",
            "url": "http://127.0.0.1:9/api",
            "auth": {"type": "hmac", "key_id": "k1", "secret": "${S}", "algorithm": algorithm},
        },
        context={"environ": {"S": "topsecret"}},
    )
    assert config.auth is not None and config.auth.type == "hmac"
    request = httpx.Request(
        "POST", "http://127.0.0.1:9/api/shipments/a%2Fb?ids=o1%2Co2", content=b'{"x":1}'
    )
    signed = next(HmacSigner(config.auth, clock=lambda: 1_700_000_000.9).auth_flow(request))
    assert signed.headers["x-signature"] == digest
