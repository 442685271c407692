"""``endpoints:``: per-endpoint (REST) and per-operation (GraphQL) policy overrides, over real
HTTP against a scripted upstream."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from graftql.config import UpstreamConfig, parse_config
from graftql.errors import ConfigError, UpstreamTimeout, UpstreamUnavailable
from graftql.upstreams import GraphQLUpstream, RestUpstream
from integration.scripted import ScriptedUpstream


def rest(url: str, **settings: Any) -> RestUpstream:
    return RestUpstream(
        "svc", UpstreamConfig.model_validate({"kind": "rest", "url": url, **settings})
    )


async def test_an_endpoint_gets_its_own_timeout(scripted: tuple[ScriptedUpstream, str]) -> None:
    double, url = scripted
    upstream = rest(
        url,
        timeout=0.3,
        retry={"attempts": 1},
        endpoints=[{"match": "GET /reports/*", "timeout": 3}],
    )
    double.answer(json_body={"report": 1}, delay=0.6)
    assert await upstream.get("/reports/{id}", id="r1") == {"report": 1}
    double.answer(json_body={"report": 2}, delay=0.6)
    with pytest.raises(UpstreamTimeout, match=r"^svc did not answer within 0.3s$"):
        await upstream.get("/reports/{id}/pages", id="r1")  # * is one segment only
    await upstream.aclose()


async def test_an_endpoint_retries_differently_within_the_upstreams_budget(
    scripted: tuple[ScriptedUpstream, str],
) -> None:
    double, url = scripted
    double.default.status = 503
    upstream = rest(
        url,
        retry={"attempts": 3, "base_delay": 0.01},
        endpoints=[{"match": "* /payments/**", "retry": {"attempts": 1}}],
    )
    with pytest.raises(UpstreamUnavailable):
        await upstream.get("/payments/{id}/captures", id="p1")
    assert len(double.received) == 1
    with pytest.raises(UpstreamUnavailable):
        await upstream.get("/items")
    assert len(double.received) == 4  # 1 + 3: the upstream's own 3 attempts
    await upstream.aclose()


async def test_first_matching_entry_wins_and_segments_stay_encoded(
    scripted: tuple[ScriptedUpstream, str],
) -> None:
    double, url = scripted
    double.default.status = 503
    upstream = rest(
        url,
        retry={"attempts": 1},
        endpoints=[
            {"match": "GET /items/*", "retry": {"attempts": 2, "base_delay": 0.01}},
            {"match": "GET /items/**", "retry": {"attempts": 3, "base_delay": 0.01}},
        ],
    )
    # A client value with a slash is one encoded segment: "/items/*" applies, not "**".
    with pytest.raises(UpstreamUnavailable):
        await upstream.get("/items/{id}", id="a/b")
    assert [r.raw_path for r in double.received] == ["/items/a%2Fb"] * 2
    await upstream.aclose()


async def test_dedup_can_be_turned_off_for_one_endpoint(
    scripted: tuple[ScriptedUpstream, str],
) -> None:
    double, url = scripted
    double.default.delay = 0.2
    upstream = rest(url, endpoints=[{"match": "GET /live", "dedup": False}])
    await asyncio.gather(upstream.get("/live"), upstream.get("/live"))
    await asyncio.gather(upstream.get("/items"), upstream.get("/items"))
    await upstream.aclose()
    assert [r.raw_path for r in double.received] == ["/live", "/live", "/items"]


async def test_a_graphql_operation_gets_its_own_policy(
    scripted: tuple[ScriptedUpstream, str],
) -> None:
    double, url = scripted
    config = UpstreamConfig.model_validate(
        {
            "kind": "graphql",
            "url": f"{url}/graphql",
            "timeout": 0.3,
            "retry": {"attempts": 1},
            "endpoints": [
                {"match": "query Report*", "timeout": 3},
                {
                    "match": "mutation Refund",
                    "retry": {
                        "attempts": 2,
                        "base_delay": 0.01,
                        "idempotency_key_header": "Idempotency-Key",
                    },
                },
            ],
        }
    )
    upstream = GraphQLUpstream("pay", config)
    double.answer(json_body={"data": {"report": "ok"}}, delay=0.6)
    assert await upstream.execute("query ReportDaily { report }") == {"report": "ok"}
    double.answer(json_body={"data": {"other": "late"}}, delay=0.6)
    with pytest.raises(UpstreamTimeout):
        await upstream.execute("query Other { other }")
    double.answer(503)
    double.answer(json_body={"data": {"refund": True}})
    assert await upstream.execute("mutation Refund { refund }") == {"refund": True}
    await upstream.aclose()
    keys = [r.headers.get("idempotency-key") for r in double.received[2:]]
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1]


@pytest.mark.parametrize(
    ("upstream", "match", "reason"),
    [
        ("rest", "FETCH /x", "must be 'METHOD /path'"),
        ("rest", "query Name", "a rest upstream matches like 'GET /reports/*'"),
        ("graphql", "GET /graphql", "a graphql upstream matches like 'query Name'"),
    ],
)
def test_a_bad_match_names_the_entry(upstream: str, match: str, reason: str) -> None:
    fine = {"rest": "GET /ok", "graphql": "query Ok"}
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {
                "schema": "m:s",
                "upstreams": {
                    "svc": {
                        "kind": upstream,
                        "url": "http://x",
                        "endpoints": [
                            {"match": fine[upstream]},
                            {"match": match},
                        ],
                    }
                },
            }
        )
    [(path, message)] = caught.value.errors
    assert path == "upstreams.svc.endpoints[1].match"
    assert message.startswith(reason)
