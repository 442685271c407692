"""Building REST requests: arguments can never change where a request goes."""

from __future__ import annotations

import httpx
import pytest

from graftql.config import UpstreamConfig
from graftql.errors import BadUserInput, UpstreamBadResponse
from graftql.upstreams import RestUpstream, encode_segment, expand_path


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("c1", "c1"),
        ("../admin", "..%2Fadmin"),
        ("a/b", "a%2Fb"),
        ("a?x=1", "a%3Fx%3D1"),
        ("a#frag", "a%23frag"),
        ("%2e%2e%2f", "%252e%252e%252f"),
        ("http://evil.example/x", "http%3A%2F%2Fevil.example%2Fx"),
        (".", "%2E"),
        ("..", "%2E%2E"),
        ("ünïcode space", "%C3%BCn%C3%AFcode%20space"),
        (42, "42"),
    ],
)
def test_encode_segment(value: str | int, encoded: str) -> None:
    assert encode_segment(value) == encoded


def test_empty_identifier_is_bad_user_input() -> None:
    with pytest.raises(BadUserInput):
        encode_segment("")


def test_expand_path_needs_every_placeholder() -> None:
    assert expand_path("/customers/{id}/orders", {"id": "a/b"}) == "/customers/a%2Fb/orders"
    with pytest.raises(KeyError):
        expand_path("/customers/{id}", {})


@pytest.mark.parametrize("value", ["../admin", "..", "a/../../b", "//evil.example/x", "?x=1"])
def test_request_stays_under_the_configured_base_path(value: str) -> None:
    upstream = RestUpstream("crm", UpstreamConfig(kind="rest", url="http://127.0.0.1:9/api/v1"))
    request = upstream.build_request("GET", "/customers/{id}", {"id": value})
    assert request.url.host == "127.0.0.1" and request.url.port == 9
    path = request.url.raw_path.decode()
    assert path.startswith("/api/v1/customers/")
    assert path.count("/") == 4  # the argument stayed one segment
    assert request.url.query == b""


def _response(content: bytes, content_type: str) -> httpx.Response:
    return httpx.Response(200, content=content, headers={"content-type": content_type})


def _upstream(**xml: list[str]) -> RestUpstream:
    return RestUpstream(
        "shipping", UpstreamConfig(kind="rest", url="http://127.0.0.1:9", xml=xml or {})
    )


def test_decode_json_and_xml_by_content_type() -> None:
    upstream = _upstream(force_list=["shipment"])
    assert upstream.decode(_response(b'{"a": 1}', "application/json; charset=utf-8")) == {"a": 1}
    assert upstream.decode(_response(b'{"a": 1}', "application/problem+json")) == {"a": 1}
    xml = b"<shipments><shipment><id>1</id></shipment></shipments>"
    assert upstream.decode(_response(xml, "application/xml")) == {
        "shipments": {"shipment": [{"id": "1"}]}
    }
    assert upstream.decode(_response(b"", "application/json")) is None


def test_xml_entities_are_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><r>&b;</r>'
    )
    with pytest.raises(UpstreamBadResponse, match="XML that does not parse"):
        _upstream().decode(_response(bomb, "text/xml"))
    external = b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    with pytest.raises(UpstreamBadResponse):
        _upstream().decode(_response(external, "application/xml"))


@pytest.mark.parametrize(
    ("content", "content_type", "message"),
    [
        (b"{not json", "application/json", "crm answered with JSON that does not parse"),
        (b"<a><b></a>", "application/xml", "crm answered with XML that does not parse"),
        (b"\x00\x01", "application/octet-stream", "unsupported content type"),
    ],
)
def test_undecodable_bodies_are_bad_responses(
    content: bytes, content_type: str, message: str
) -> None:
    upstream = RestUpstream("crm", UpstreamConfig(kind="rest", url="http://127.0.0.1:9"))
    with pytest.raises(UpstreamBadResponse, match=message) as caught:
        upstream.decode(_response(content, content_type))
    assert caught.value.extensions == {"code": "UPSTREAM_BAD_RESPONSE", "upstream": "crm"}
