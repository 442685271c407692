"""``endpoints:``: per-endpoint (REST) and per-operation (GraphQL) policy overrides, over real
HTTP against a chaos upstream."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from graftql.config import UpstreamConfig, parse_config
from graftql.errors import ConfigError, UpstreamTimeout, UpstreamUnavailable
from graftql.testing import ChaosUpstream, Latency, Respond
from graftql.upstreams import GraphQLUpstream, RestUpstream


def rest(url: str, **settings: Any) -> RestUpstream:
    return RestUpstream(
        "svc", UpstreamConfig.model_validate({"kind": "rest", "url": url, **settings})
    )


async def test_an_endpoint_gets_its_own_timeout(chaos: ChaosUpstream) -> None:
    reports = chaos.route("GET /reports/**")
    upstream = rest(
        chaos.url,
        timeout=0.3,
        retry={"attempts": 1},
        endpoints=[{"match": "GET /reports/*", "timeout": 3}],
    )
    reports.queue(Latency(0.6) + Respond(json={"report": 1}))
    assert await upstream.get("/reports/{id}", id="r1") == {"report": 1}
    reports.queue(Latency(0.6) + Respond(json={"report": 2}))
    with pytest.raises(UpstreamTimeout, match=r"^svc did not answer within 0.3s$"):
        await upstream.get("/reports/{id}/pages", id="r1")  # * is one segment only
    await upstream.aclose()


async def test_an_endpoint_retries_differently_within_the_upstreams_budget(
    chaos: ChaosUpstream,
) -> None:
    chaos.route("GET /**", Respond(503, json={}))
    upstream = rest(
        chaos.url,
        retry={"attempts": 3, "base_delay": 0.01},
        endpoints=[{"match": "* /payments/**", "retry": {"attempts": 1}}],
    )
    with pytest.raises(UpstreamUnavailable):
        await upstream.get("/payments/{id}/captures", id="p1")
    assert chaos.total == 1
    with pytest.raises(UpstreamUnavailable):
        await upstream.get("/items")
    assert chaos.total == 4  # 1 + 3: the upstream's own 3 attempts
    await upstream.aclose()


async def test_first_matching_entry_wins_and_segments_stay_encoded(
    chaos: ChaosUpstream,
) -> None:
    chaos.route("GET /**", Respond(503, json={}))
    upstream = rest(
        chaos.url,
        retry={"attempts": 1},
        endpoints=[
            {"match": "GET /items/*", "retry": {"attempts": 2, "base_delay": 0.01}},
            {"match": "GET /items/**", "retry": {"attempts": 3, "base_delay": 0.01}},
        ],
    )
    # A client value with a slash is one encoded segment: "/items/*" applies, not "**".
    with pytest.raises(UpstreamUnavailable):
        await upstream.get("/items/{id}", id="a/b")
    assert [r.path for r in chaos.requests] == ["/items/a%2Fb"] * 2
    await upstream.aclose()


async def test_dedup_can_be_turned_off_for_one_endpoint(chaos: ChaosUpstream) -> None:
    chaos.route("GET /*", Latency(0.2) + Respond(json={}))
    upstream = rest(chaos.url, endpoints=[{"match": "GET /live", "dedup": False}])
    await asyncio.gather(upstream.get("/live"), upstream.get("/live"))
    await asyncio.gather(upstream.get("/items"), upstream.get("/items"))
    await upstream.aclose()
    assert [r.path for r in chaos.requests] == ["/live", "/live", "/items"]


async def test_a_graphql_operation_gets_its_own_policy(chaos: ChaosUpstream) -> None:
    graphql = chaos.route("POST /graphql")
    config = UpstreamConfig.model_validate(
        {
            "kind": "graphql",
            "url": f"{chaos.url}/graphql",
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
    graphql.queue(Latency(0.6) + Respond(json={"data": {"report": "ok"}}))
    assert await upstream.execute("query ReportDaily { report }") == {"report": "ok"}
    graphql.queue(Latency(0.6) + Respond(json={"data": {"other": "late"}}))
    with pytest.raises(UpstreamTimeout):
        await upstream.execute("query Other { other }")
    graphql.queue(Respond(503, json={}), Respond(json={"data": {"refund": True}}))
    assert await upstream.execute("mutation Refund { refund }") == {"refund": True}
    await upstream.aclose()
    keys = [r.headers.get("idempotency-key") for r in chaos.requests[2:]]
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
