"""aws_sigv4 over a real connection: an upstream that checks SigV4 signatures itself (written
here from AWS's specification, independent of botocore) accepts what the gateway sends — so
what was signed is exactly what went on the wire — and refuses a wrong key."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any
from urllib.parse import quote

import pytest

from graftql.config import UpstreamConfig
from graftql.errors import UpstreamAuthError
from graftql.testing import Call, ChaosUpstream, ReceivedRequest, Respond
from graftql.upstreams import RestUpstream

KEY_ID, SECRET, TOKEN = "AKIDGATEWAY", "gw-s3cr3t/K7MDENG+bPxRfiCY", "session-tok"
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})"
)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def valid_signature(request: ReceivedRequest, secret: str) -> bool:
    """SigV4 as AWS specifies it for a non-S3 service, from the request as received."""
    match = _AUTH.fullmatch(request.headers.get("authorization", ""))
    if match is None or match["key"] != KEY_ID:
        return False
    signed = match["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return False
    canonical = "\n".join(
        [
            request.method,
            quote(request.path, safe="/~"),  # the wire path, URI-encoded once more
            "&".join(sorted(request.query.split("&"))) if request.query else "",
            "".join(f"{name}:{' '.join(request.headers[name].split())}\n" for name in signed),
            match["signed"],
            hashlib.sha256(request.body).hexdigest(),
        ]
    )
    scope = f"{match['date']}/{match['region']}/{match['service']}/aws4_request"
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            request.headers["x-amz-date"],
            scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = f"AWS4{secret}".encode()
    for part in (match["date"], match["region"], match["service"], "aws4_request"):
        key = _hmac(key, part)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, match["signature"])


def aws_service(request: ReceivedRequest) -> Respond:
    if not valid_signature(request, SECRET):
        return Respond(403, json={"message": "The request signature we calculated does not match"})
    return Respond(json={"token": request.headers.get("x-amz-security-token")})


def upstream(url: str, secret: str = SECRET, **auth: Any) -> RestUpstream:
    config = UpstreamConfig.model_validate(
        {
            "kind": "rest",
            "url": f"{url}/prod",
            "auth": {"type": "aws_sigv4", "service": "execute-api", "region": "eu-west-1", **auth},
        },
        context={
            "environ": {
                "AWS_ACCESS_KEY_ID": KEY_ID,
                "AWS_SECRET_ACCESS_KEY": secret,
                "AWS_SESSION_TOKEN": TOKEN,
            }
        },
    )
    return RestUpstream("api", config)


async def test_signed_requests_are_accepted_by_a_verifying_upstream(chaos: ChaosUpstream) -> None:
    chaos.route("/prod/**", Call(aws_service))
    api = upstream(chaos.url)
    # A path segment with reserved characters, a query with spaces and '+', a JSON body.
    got = await api.get(
        "/orders/{id}", id="a/b c", params={"q": "x y+z", "a": 1}, headers={"X-Tenant": "t1"}
    )
    assert got == {"token": TOKEN}  # session token from AWS_SESSION_TOKEN
    assert await api.request("POST", "/orders", json_body={"n": [1, 2]}) == {"token": TOKEN}
    await api.aclose()
    first, second = chaos.requests
    assert first.path == "/prod/orders/a%2Fb%20c"
    assert first.query == "a=1&q=x%20y%2Bz"  # canonical encoding on the wire
    assert "x-tenant" in re.search(r"SignedHeaders=(\S+),", first.headers["authorization"])[1]
    assert second.method == "POST" and second.body == b'{"n":[1,2]}'


async def test_a_wrong_secret_is_refused(chaos: ChaosUpstream) -> None:
    chaos.route("/prod/**", Call(aws_service))
    api = upstream(chaos.url, secret="not-the-secret")
    with pytest.raises(UpstreamAuthError) as caught:
        await api.get("/orders")
    await api.aclose()
    assert caught.value.status == 403 and caught.value.code == "UPSTREAM_AUTH_FAILED"
    assert chaos.count() == 1
