"""The cache's pure rules: its configuration, Cache-Control parsing and freshness arithmetic."""

from __future__ import annotations

from typing import Any

import pytest

from graftql.config import parse_config
from graftql.errors import ConfigError
from graftql.upstreams.cache_store import Entry, directives, lifetime


def config(**top: Any) -> Any:
    return parse_config({"schema": "a:b", **top})


def problems(**top: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as raised:
        config(**top)
    return list(raised.value.errors)


REST = {"kind": "rest", "url": "http://127.0.0.1:1"}


def test_redis_backends_need_the_redis_block() -> None:
    assert problems(
        cache={"backend": "redis"}, upstreams={"a": {**REST, "cache": {"backend": "redis"}}}
    ) == [
        ("cache.backend", "needs the top-level 'redis:' block"),
        ("upstreams.a.cache.backend", "needs the top-level 'redis:' block"),
    ]


def test_the_top_level_backend_is_every_upstreams_default() -> None:
    loaded = config(
        redis={},
        cache={"backend": "redis"},
        upstreams={
            "a": {**REST, "cache": {}},
            "b": {**REST, "cache": {"backend": "memory"}},
            "c": {**REST, "endpoints": [{"match": "GET /x", "cache": {"ttl": 5}}]},
            "d": REST,
        },
    )
    caches = {name: u.cache for name, u in loaded.upstreams.items()}
    assert caches["a"].backend == "redis"
    assert caches["b"].backend == "memory"
    assert caches["c"].backend == "redis" and caches["c"].enabled is False
    assert caches["d"] is None


def test_bad_cache_keys_name_their_path() -> None:
    found = problems(
        upstreams={
            "a": {
                **REST,
                "cache": {"ttl": -1, "scope": "service", "tags": ["no spaces"], "max_age": 1},
            }
        }
    )
    paths = [path for path, _ in found]
    assert paths == [
        "upstreams.a.cache.ttl",
        "upstreams.a.cache.scope",
        "upstreams.a.cache.tags[0]",
        "upstreams.a.cache.max_age",
    ]


def test_cache_control_directives() -> None:
    assert directives('Private, max-age=60, no-cache="set-cookie", s-maxage = 5') == {
        "private": None,
        "max-age": "60",
        "no-cache": "set-cookie",
        "s-maxage": "5",
    }
    assert directives(None) == {}


@pytest.mark.parametrize(
    ("headers", "shared", "expected"),
    [
        ({}, True, 30.0),
        ({"cache-control": "max-age=10"}, True, 10.0),
        ({"cache-control": "max-age=10, s-maxage=99"}, True, 99.0),
        ({"cache-control": "max-age=10, s-maxage=99"}, False, 10.0),
        ({"cache-control": "max-age=10", "age": "4"}, True, 6.0),
        ({"cache-control": "max-age=oops"}, True, 30.0),
        ({"expires": "0"}, True, 0.0),
        (
            {"expires": "Wed, 21 Oct 2026 07:28:10 GMT", "date": "Wed, 21 Oct 2026 07:28:00 GMT"},
            True,
            10.0,
        ),
    ],
)
def test_freshness(headers: dict[str, str], shared: bool, expected: float) -> None:
    control = directives(headers.get("cache-control"))
    assert lifetime(headers, control, shared=shared, default=30.0) == expected


def test_an_entry_survives_the_trip_through_bytes() -> None:
    entry = Entry(
        200, [("content-type", "application/json")], b"{}", 5.0, 10.0, 1.0, 2.0, False, (3, 4)
    )
    entry.etag = '"v1"'
    assert Entry.loads(entry.dumps()) == entry
