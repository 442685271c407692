"""The shipping demo upstream over real HTTP: HMAC-signed requests and XML answers.

Timestamp skew is tested against the service's injected clock, never by sleeping.
"""

from __future__ import annotations

import hashlib
import hmac
import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest

from integration.demo_stack import SHIPPING_T0, Stack, stack_fixtures

stack, client, _fresh_services = stack_fixtures(("shipping",))
XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>'


# --- shipping (XML, HMAC-signed) --------------------------------------------------------------


def sign(
    secret: str, timestamp: str, method: str, raw_path: str, raw_query: str, body: bytes
) -> str:
    """The signer, written from the spec independently of the service's verifier."""
    canonical = "\n".join(
        [timestamp, method, raw_path, raw_query, hashlib.sha256(body).hexdigest()]
    )
    return hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def shipping(
    stack: Stack,
    client: httpx.Client,
    target: str,
    *,
    method: str = "GET",
    body: bytes = b"",
    timestamp: float | None = None,
    signed_target: str | None = None,
    signed_body: bytes | None = None,
    overrides: dict[str, str | None] | None = None,
) -> httpx.Response:
    """Send ``target`` (raw path + query, exactly as it goes on the wire) with a signature.

    ``signed_target``/``signed_body`` sign something other than what is sent; ``overrides``
    replaces headers (None removes one).
    """
    request = client.build_request(method, f"{stack.urls['shipping']}{target}", content=body)
    assert request.url.raw_path.decode() == target  # httpx must send the target untouched
    path, _, query = (signed_target or target).partition("?")
    ts = str(int(stack.shipping_clock.now if timestamp is None else timestamp))
    payload = body if signed_body is None else signed_body
    headers: dict[str, str | None] = {
        "X-Key-Id": stack.creds.shipping_key_id,
        "X-Timestamp": ts,
        "X-Signature": sign(stack.creds.shipping_secret, ts, method, path, query, payload),
    }
    headers.update(overrides or {})
    for name, value in headers.items():
        if value is None:
            request.headers.pop(name, None)
        else:
            request.headers[name] = value
    return client.send(request)


def parse_xml(content: bytes) -> ET.Element:
    # Trusted input: the document comes from the demo service this test just started.
    return ET.fromstring(content)  # noqa: S314


def xml_error(response: httpx.Response) -> tuple[str, str]:
    root = parse_xml(response.content)
    assert root.tag == "error"
    return root.findtext("code") or "", root.findtext("message") or ""


def test_shipping_list_xml_shape(stack: Stack, client: httpx.Client) -> None:
    response = shipping(stack, client, "/shipments?order_ids=o8,o7,o1")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/xml; charset=utf-8"
    assert response.text == (
        XML_DECL + "<shipments>"
        "<shipment><order_id>o8</order_id><status>IN_TRANSIT</status>"
        "<tracking_number>1Z999AA10123456848</tracking_number><eta>2026-12-03</eta></shipment>"
        "<shipment><order_id>o1</order_id><status>DELIVERED</status>"
        "<tracking_number>1Z999AA10123456784</tracking_number><eta>2026-01-19</eta></shipment>"
        "</shipments>"
    )


def test_shipping_list_with_one_and_with_zero_results(stack: Stack, client: httpx.Client) -> None:
    one = parse_xml(shipping(stack, client, "/shipments?order_ids=o12").content)
    assert one.tag == "shipments" and [s.findtext("order_id") for s in one] == ["o12"]
    none = shipping(stack, client, "/shipments?order_ids=o15,o99")
    assert none.status_code == 200 and none.text == XML_DECL + "<shipments/>"


def test_shipping_single_shipment_and_404(stack: Stack, client: httpx.Client) -> None:
    single = shipping(stack, client, "/shipments/o19")
    assert parse_xml(single.content).tag == "shipment"
    assert single.text.startswith(XML_DECL + "<shipment><order_id>o19</order_id>")
    missing = shipping(stack, client, "/shipments/o15")
    assert missing.status_code == 404
    assert xml_error(missing) == ("not_found", "no shipment for order o15")


@pytest.mark.parametrize(
    "target", ["/shipments", "/shipments?order_ids=", "/shipments?order_ids=" + "o1," * 101]
)
def test_shipping_bad_ids_are_400(stack: Stack, client: httpx.Client, target: str) -> None:
    response = shipping(stack, client, target)
    assert response.status_code == 400
    assert xml_error(response)[0] == "bad_request"


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"overrides": {"X-Key-Id": None}}, "missing X-Key-Id header"),
        ({"overrides": {"X-Timestamp": None}}, "missing X-Timestamp header"),
        ({"overrides": {"X-Signature": None}}, "missing X-Signature header"),
        ({"overrides": {"X-Key-Id": "someone-else"}}, "unknown key id"),
        ({"overrides": {"X-Signature": "0" * 64}}, "signature mismatch"),
        ({"timestamp": SHIPPING_T0 - 301}, "stale timestamp"),
        ({"timestamp": SHIPPING_T0 + 301}, "stale timestamp"),
        ({"overrides": {"X-Timestamp": "soon"}}, "X-Timestamp must be integer unix seconds"),
        ({"signed_target": "/shipments?order_ids=o2"}, "signature mismatch"),
        # The decoded path is not what was sent: signatures cover the raw path.
        ({"signed_target": "/shipments/o1"}, "signature mismatch"),
    ],
)
def test_shipping_rejects_bad_signatures(
    stack: Stack, client: httpx.Client, kwargs: dict[str, Any], reason: str
) -> None:
    target = "/shipments/o%31" if kwargs.get("signed_target") == "/shipments/o1" else None
    response = shipping(stack, client, target or "/shipments?order_ids=o1", **kwargs)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/xml; charset=utf-8"
    assert xml_error(response) == ("unauthorized", reason)


def test_shipping_accepts_raw_encoded_path_and_skew_at_the_limit(
    stack: Stack, client: httpx.Client
) -> None:
    encoded = shipping(stack, client, "/shipments/o%31")  # the service decodes it to o1
    assert encoded.status_code == 200
    assert parse_xml(encoded.content).findtext("order_id") == "o1"
    for skew in (-300, 300):
        response = shipping(stack, client, "/shipments/o1", timestamp=SHIPPING_T0 + skew)
        assert response.status_code == 200


def test_shipping_signature_covers_the_body(stack: Stack, client: httpx.Client) -> None:
    # No route accepts POST, so a correct signature gets past auth and then a 405.
    ok = shipping(stack, client, "/shipments", method="POST", body=b"<x/>")
    assert ok.status_code == 405
    assert xml_error(ok)[0] == "method_not_allowed"
    tampered = shipping(
        stack, client, "/shipments", method="POST", body=b"<x/>", signed_body=b"<y/>"
    )
    assert tampered.status_code == 401
    assert xml_error(tampered) == ("unauthorized", "signature mismatch")
