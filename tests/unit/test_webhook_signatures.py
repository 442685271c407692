"""Webhook signature verification per scheme: published known answers, then every way a
delivery can be wrong. Pure logic with an injected clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from graftql.config.webhooks import WebhookSourceConfig
from graftql.events.signatures import SignatureRejected, Verifier

# Standard Webhooks: the known answer of the reference Python library's own test suite
# (github.com/standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py,
# test_sign_function).
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TIMESTAMP = 1614265330
SW_PAYLOAD = b'{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

# GitHub: the example in "Validating webhook deliveries" (docs.github.com/en/webhooks/
# using-webhooks/validating-webhook-deliveries, "Testing the webhook payload validation").
GH_SECRET = "It's a Secret to Everybody"
GH_PAYLOAD = b"Hello, World!"
GH_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def verifier(scheme: str, *secrets: str, now: float, **extra: Any) -> Verifier:
    env = {f"S{i}": s for i, s in enumerate(secrets)}
    config = WebhookSourceConfig.model_validate(
        {"scheme": scheme, "secrets": [f"${{S{i}}}" for i in range(len(secrets))], **extra},
        context={"environ": env},
    )
    return Verifier(config, clock=lambda: now)


def sw_headers(signature: str = SW_SIGNATURE, **override: str) -> dict[str, str]:
    headers = {
        "webhook-id": SW_ID,
        "webhook-timestamp": str(SW_TIMESTAMP),
        "webhook-signature": signature,
    }
    headers.update(override)
    return {k: v for k, v in headers.items() if v != ""}


def reject(v: Verifier, body: bytes, headers: dict[str, str]) -> SignatureRejected:
    with pytest.raises(SignatureRejected) as caught:
        v.verify(body, headers)
    return caught.value


# -- Standard Webhooks ---------------------------------------------------------------------


def test_standard_known_answer() -> None:
    verified = verifier("standard", SW_SECRET, now=SW_TIMESTAMP + 10).verify(
        SW_PAYLOAD, sw_headers()
    )
    assert verified.event_id == SW_ID
    assert verified.timestamp == SW_TIMESTAMP


def test_standard_one_of_several_signatures_and_rotated_secrets() -> None:
    old = "whsec_" + base64.b64encode(b"the previous secret").decode()
    v = verifier("standard", old, SW_SECRET, now=SW_TIMESTAMP)
    header = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,abc " + SW_SIGNATURE
    assert v.verify(SW_PAYLOAD, sw_headers(header)).event_id == SW_ID


@pytest.mark.parametrize(
    ("body", "headers", "status", "reason"),
    [
        (SW_PAYLOAD.replace(b"4", b"5"), sw_headers(), 401, "mismatch"),  # tampered
        (b'{"test":2432232314}', sw_headers(), 401, "mismatch"),  # re-serialised JSON
        (SW_PAYLOAD, sw_headers(**{"webhook-id": "msg_other"}), 401, "mismatch"),
        (
            SW_PAYLOAD,
            sw_headers("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="),
            401,
            "mismatch",
        ),
        (SW_PAYLOAD, sw_headers(""), 401, "missing"),
        (SW_PAYLOAD, sw_headers(**{"webhook-id": ""}), 401, "missing"),
        (SW_PAYLOAD, sw_headers("v1,not base64!"), 400, "malformed"),
        (SW_PAYLOAD, sw_headers("garbage"), 400, "malformed"),
        (SW_PAYLOAD, sw_headers(**{"webhook-timestamp": "yesterday"}), 400, "malformed"),
        (b"\xff\xfe", sw_headers(), 400, "malformed"),  # not UTF-8
    ],
)
def test_standard_rejections(
    body: bytes, headers: dict[str, str], status: int, reason: str
) -> None:
    error = reject(verifier("standard", SW_SECRET, now=SW_TIMESTAMP), body, headers)
    assert (error.status, error.reason) == (status, reason)


def test_standard_wrong_secret() -> None:
    wrong = "whsec_" + base64.b64encode(b"someone else").decode()
    error = reject(verifier("standard", wrong, now=SW_TIMESTAMP), SW_PAYLOAD, sw_headers())
    assert error.reason == "mismatch"


@pytest.mark.parametrize("skew", [-301, 301])
def test_standard_stale_or_future_timestamp(skew: int) -> None:
    v = verifier("standard", SW_SECRET, now=SW_TIMESTAMP + skew)
    error = reject(v, SW_PAYLOAD, sw_headers())
    assert (error.status, error.reason) == (401, "stale")
    # Within a configured tolerance the same delivery passes.
    wide = verifier("standard", SW_SECRET, now=SW_TIMESTAMP + skew, tolerance=400)
    assert wide.verify(SW_PAYLOAD, sw_headers()).event_id == SW_ID


def test_standard_secret_must_be_base64() -> None:
    with pytest.raises(ValueError, match="Standard Webhooks secret"):
        verifier("standard", "whsec_!!!", now=0)


# -- GitHub ---------------------------------------------------------------------------------


def test_github_known_answer() -> None:
    headers = {"x-hub-signature-256": GH_SIGNATURE, "x-github-delivery": "d-1"}
    verified = verifier("github", GH_SECRET, now=0).verify(GH_PAYLOAD, headers)
    assert verified.event_id == "d-1"


@pytest.mark.parametrize(
    ("body", "signature", "status", "reason"),
    [
        (b"Hello, World?", GH_SIGNATURE, 401, "mismatch"),
        (GH_PAYLOAD, "", 401, "missing"),
        (GH_PAYLOAD, "sha1=757107ea", 400, "malformed"),
        (GH_PAYLOAD, "sha256=xyz", 400, "malformed"),
        (
            GH_PAYLOAD,
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            400,
            "malformed",
        ),
    ],
)
def test_github_rejections(body: bytes, signature: str, status: int, reason: str) -> None:
    headers = {"x-hub-signature-256": signature} if signature else {}
    error = reject(verifier("github", GH_SECRET, now=0), body, headers)
    assert (error.status, error.reason) == (status, reason)


def test_github_rotated_secrets() -> None:
    headers = {"x-hub-signature-256": GH_SIGNATURE}
    assert verifier("github", "new secret", GH_SECRET, now=0).verify(GH_PAYLOAD, headers)
    assert reject(verifier("github", "new secret", now=0), GH_PAYLOAD, headers)


# -- Stripe ---------------------------------------------------------------------------------

STRIPE_SECRET = "whsec_stripe_test_secret"
STRIPE_BODY = json.dumps({"id": "evt_1", "type": "payment_intent.succeeded"}).encode()


def stripe_header(t: int, body: bytes = STRIPE_BODY, secret: str = STRIPE_SECRET) -> str:
    # As Stripe documents it: HMAC-SHA256 of "<t>.<body>", hex, keyed by the secret's text.
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def test_stripe_valid_with_an_extra_v0_and_rotated_secret() -> None:
    header = (
        stripe_header(1700000000)
        + ",v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"
    )
    v = verifier("stripe", "whsec_old", STRIPE_SECRET, now=1700000100)
    assert v.verify(STRIPE_BODY, {"stripe-signature": header}).timestamp == 1700000000


@pytest.mark.parametrize(
    ("header", "status", "reason"),
    [
        (stripe_header(1700000000, body=b"{}"), 401, "mismatch"),
        (stripe_header(1700000000, secret="whsec_wrong"), 401, "mismatch"),
        (stripe_header(1699999000), 401, "stale"),
        ("t=1700000000", 400, "malformed"),
        ("v1=abcd", 400, "malformed"),
        ("t=1700000000,v1=zz", 400, "malformed"),
        ("nonsense", 400, "malformed"),
        ("t=soon,v1=abcd", 400, "malformed"),
    ],
)
def test_stripe_rejections(header: str, status: int, reason: str) -> None:
    v = verifier("stripe", STRIPE_SECRET, now=1700000100)
    error = reject(v, STRIPE_BODY, {"stripe-signature": header})
    assert (error.status, error.reason) == (status, reason)


# -- generic HMAC ---------------------------------------------------------------------------


def test_hmac_with_timestamp_and_base64() -> None:
    scheme = {
        "header": "X-Sig",
        "encoding": "base64",
        "prefix": "v1=",
        "algorithm": "sha512",
        "timestamp_header": "X-Sig-Time",
        "signed_payload": "{timestamp}:{body}",
        "id_header": "X-Event-Id",
    }
    v = verifier("hmac", "k1", now=1000, hmac=scheme)
    mac = hmac.new(b"k1", b"990:" + b"{}", hashlib.sha512).digest()
    headers = {
        "x-sig": "v1=" + base64.b64encode(mac).decode(),
        "x-sig-time": "990",
        "x-event-id": "e-9",
    }
    verified = v.verify(b"{}", headers)
    assert (verified.event_id, verified.timestamp) == ("e-9", 990)
    assert reject(v, b"{ }", headers).reason == "mismatch"
    assert reject(v, b"{}", {**headers, "x-sig-time": "100"}).reason == "stale"
    assert reject(v, b"{}", {**headers, "x-sig": "v2=abc"}).reason == "malformed"
    assert reject(v, b"{}", {"x-sig-time": "990"}).reason == "missing"


def test_hmac_needs_its_block() -> None:
    with pytest.raises(ValueError, match="needs the 'hmac' block"):
        verifier("hmac", "k", now=0)


@pytest.mark.parametrize("scheme", ["standard", "stripe", "github", "hmac"])
def test_random_headers_and_bodies_are_refused_never_crash(scheme: str) -> None:
    """Seeded garbage in every header the schemes read: always SignatureRejected with 400 or
    401, never another exception (which the route would turn into a 500)."""
    import random

    rng = random.Random(f"webhooks-{scheme}")
    alphabet = "v1,=t sha256:abcdef0123456789+/\\x00é\u2028-.;" + "".join(map(chr, range(32, 127)))
    extra = {"hmac": {"timestamp_header": "X-Ts", "signed_payload": "{timestamp}.{body}"}}
    v = verifier(scheme, SW_SECRET, now=SW_TIMESTAMP, **(extra if scheme == "hmac" else {}))
    names = [
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "stripe-signature",
        "x-hub-signature-256",
        "x-signature",
        "x-ts",
    ]
    for _ in range(500):
        headers = {
            name: "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
            for name in names
            if rng.random() < 0.8
        }
        if rng.random() < 0.3:
            headers["webhook-timestamp"] = str(rng.choice([SW_TIMESTAMP, -1, 10**30, 0]))
        body = bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 30)))
        with pytest.raises(SignatureRejected) as caught:
            v.verify(body, headers)
        assert caught.value.status in (400, 401)
