"""A shared (de-duplicated) call that is about to retry takes no new joiners."""

from __future__ import annotations

import asyncio

from graftql.config import UpstreamConfig
from graftql.testing import ChaosUpstream, Respond, RetryAfter
from graftql.upstreams import RestUpstream


async def test_callers_arriving_during_a_retry_backoff_start_their_own_call() -> None:
    async with ChaosUpstream() as chaos:
        chaos.route("GET /items").queue(RetryAfter(503, 1)).always(Respond(200, json={"ok": 1}))
        upstream = RestUpstream(
            "svc", UpstreamConfig(kind="rest", url=chaos.url, retry={"attempts": 3})
        )
        first = asyncio.create_task(upstream.get("/items"))
        await chaos.wait_for_requests_async(1)  # the first attempt failed; A waits 1 s
        await asyncio.sleep(0.05)
        # B arrives during A's backoff: it does not wait a second for A's retry.
        assert await asyncio.wait_for(upstream.get("/items"), 0.5) == {"ok": 1}
        assert await first == {"ok": 1}
        await upstream.aclose()
        assert chaos.count("GET /items") == 3  # A's two attempts and B's own call


async def test_callers_that_joined_before_the_failure_share_the_retry() -> None:
    async with ChaosUpstream() as chaos:
        chaos.route("GET /items").queue(RetryAfter(503, 0)).always(Respond(200, json={"ok": 1}))
        upstream = RestUpstream(
            "svc", UpstreamConfig(kind="rest", url=chaos.url, retry={"attempts": 3})
        )
        results = await asyncio.gather(*(upstream.get("/items") for _ in range(5)))
        await upstream.aclose()
        assert results == [{"ok": 1}] * 5
        assert chaos.count("GET /items") == 2  # one shared call: its failure and its retry
