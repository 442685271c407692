"""A call whose deadline has passed before it could be sent is refused as a timeout, never as
something else (a rate limit with "no time left" used to win the race)."""

from __future__ import annotations

import httpx
import pytest

from graftql.config import parse_config
from graftql.errors import UpstreamTimeout
from graftql.upstreams import Upstreams, deadline


@pytest.mark.parametrize("rate_limit", [None, {"rate": 100, "burst": 10}])
async def test_a_passed_deadline_before_the_rate_limit_is_a_timeout(
    rate_limit: dict[str, float] | None,
) -> None:
    svc: dict[str, object] = {"kind": "rest", "url": "http://127.0.0.1:9", "retry": {"attempts": 1}}
    if rate_limit is not None:
        svc["rate_limit"] = rate_limit
    upstreams = Upstreams.from_config(parse_config({"schema": "a:b", "upstreams": {"svc": svc}}))
    upstream = upstreams["svc"]
    request = upstream.prepare("POST", httpx.URL("http://127.0.0.1:9/x"), json_body={})
    token = deadline.start(-0.01)  # already over
    try:
        with pytest.raises(UpstreamTimeout) as raised:
            await upstream.send(request)
    finally:
        deadline.reset(token)
        await upstreams.aclose()
    assert raised.value.message == "the request's deadline passed before svc answered"
    assert raised.value.retryable is False
