"""server.limits: the counting, the cache that keeps it cheap, and production's error hygiene.

Pure logic runs on parsed documents; the schema-level tests run ``schema.execute`` and
``schema.stream`` (what WebSocket operations use) in process. Over real HTTP and WebSocket:
tests/integration/test_operation_limits.py.
"""

from __future__ import annotations

import logging
import time
from enum import Enum
from typing import Any

import pytest
import strawberry
from graphql import GraphQLSchema, get_introspection_query, parse

from graftql import GatewaySchema
from graftql.config import LimitsConfig, ServerConfig, parse_config
from graftql.demo import schema as demo
from graftql.demo.runner import EXAMPLE_QUERY
from graftql.errors import BadUserInput, ConfigError
from graftql.schema.documents import DocumentChecker, _Cache, _Document
from graftql.schema.limits import SATURATED, Measurements, exceeded, measure

CALLS: list[str] = []


@strawberry.enum
class Color(Enum):
    RED = "RED"


@strawberry.type
class Item:
    id: strawberry.ID
    tags: list[str]

    @strawberry.field
    def children(self, first: int | None = None) -> list[Item]:
        return []


@strawberry.type
class Page:
    items: list[Item]
    total: int


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        CALLS.append("hello")
        return "world"

    @strawberry.field
    def node(self) -> Query:
        CALLS.append("node")
        return Query()

    @strawberry.field
    def item(self) -> Item | None:
        return None

    @strawberry.field
    def items(self, first: int | None = None, limit: int | None = None) -> list[Item]:
        return []

    @strawberry.field
    def page(self, first: int = 5) -> Page:
        return Page(items=[], total=0)

    @strawberry.field
    def color(self, c: Color) -> str:
        return c.value

    @strawberry.field
    def boom(self) -> str | None:
        raise RuntimeError("internal detail: password hunter2")

    @strawberry.field
    def refused(self) -> str | None:
        raise BadUserInput("'first' must be between 1 and 50")


GATEWAY = GatewaySchema(query=Query)
SCHEMA: GraphQLSchema = GATEWAY.build(ServerConfig())._schema


def measured(query: str, *, list_size: int = 10, **variables: Any) -> Measurements:
    document = parse(query)
    operation = next(d for d in document.definitions if d.kind == "operation_definition")
    return measure(
        SCHEMA,
        document,
        operation,  # type: ignore[arg-type]
        list_size=list_size,
        variables=variables,
    )


def build(env: str = "development", **limits: Any) -> strawberry.Schema:
    return GATEWAY.build(ServerConfig(env=env, limits=LimitsConfig(**limits)))


# --- configuration -----------------------------------------------------------------------------


def test_limits_have_safe_defaults_and_null_turns_one_off() -> None:
    limits = parse_config({"schema": "a:b"}).server.limits
    assert limits == LimitsConfig(
        max_document_bytes=100_000,
        max_tokens=5_000,
        max_depth=15,
        max_aliases=30,
        max_root_fields=20,
        max_directives=50,
        max_fields=2_000,
        max_cost=10_000,
        list_size=10,
    )
    config = parse_config({"schema": "a:b", "server": {"limits": {"max_depth": None}}})
    assert config.server.limits.max_depth is None
    assert config.server.limits.max_aliases == 30


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"max_depth": 0}, "server.limits.max_depth: input should be greater than 0"),
        ({"max_cost": -1}, "server.limits.max_cost: input should be greater than 0"),
        ({"list_size": None}, "server.limits.list_size: input should be a valid integer"),
        ({"max_deph": 3}, "server.limits.max_deph: unknown key (did you mean 'max_depth'?)"),
    ],
)
def test_bad_limits_name_the_key(limits: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"schema": "a:b", "server": {"limits": limits}})
    assert str(caught.value) == message


# --- counting ----------------------------------------------------------------------------------


def test_depth_counts_fields_through_fragments() -> None:
    assert measured("{ hello }").depth == 1
    assert measured("{ node { node { hello } } }").depth == 3
    query = """{ ...F } fragment F on Query { node { ...G } }
        fragment G on Query { node { ... on Query { hello } } }"""
    assert measured(query).depth == 3


def test_aliases_in_a_fragment_count_at_every_spread() -> None:
    aliases = " ".join(f"a{i}: hello" for i in range(40))
    query = f"{{ ...A ...A ...A ...A ...A }} fragment A on Query {{ {aliases} }}"
    found = measured(query)
    assert (found.aliases, found.root_fields, found.fields) == (200, 200, 200)


def test_root_fields_are_the_top_level_through_fragments() -> None:
    query = "{ hello node { hello hello } ... on Query { item { id } } ...F } "
    query += "fragment F on Query { hello }"
    assert measured(query).root_fields == 4


def test_directives_count_everywhere_and_again_at_every_spread() -> None:
    query = """query Q($a: Boolean = true @deprecated) @live {
        hello @include(if: $a) ...F @skip(if: false) ...F }
        fragment F on Query @frag { hello @a @b }"""
    # operation 1, variable 1, field 1, spreads 1 + 0, and each spread of F: 1 + 2
    assert measured(query).directives == 1 + 1 + 1 + 1 + 2 * 3


def test_exponential_fragment_expansion_is_counted_without_expanding() -> None:
    fragments = "".join(
        f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}\n" for i in range(60)
    )
    query = "{ ...F0 }\n" + fragments + "fragment F60 on Query { hello }"
    started = time.perf_counter()
    found = measured(query)
    assert time.perf_counter() - started < 0.5
    assert found.fields == found.cost == found.root_fields == SATURATED  # 2**60 saturates


def test_fragment_cycles_end_and_count_nothing_more() -> None:
    query = "{ ...A } fragment A on Query { ...B hello } fragment B on Query { ...A hello }"
    assert measured(query).fields == 2
    spreads = " ".join(f"...F{j}" for j in range(40))
    dense = "{ ...F0 } " + " ".join(f"fragment F{i} on Query {{ {spreads} }}" for i in range(40))
    started = time.perf_counter()
    measured(dense)
    assert time.perf_counter() - started < 0.5


def test_a_long_chain_of_fragments_does_not_recurse() -> None:
    chain = "".join(f"fragment F{i} on Query {{ ...F{i + 1} }}\n" for i in range(3000))
    query = "{ ...F0 }\n" + chain + "fragment F3000 on Query { node { hello } }"
    assert measured(query).depth == 2


def test_unknown_fragments_and_fields_count_as_plain_fields() -> None:
    assert measured("{ ...Missing nope { deeper } }").fields == 2


@pytest.mark.parametrize(
    ("query", "variables", "cost"),
    [
        ("{ hello }", {}, 1),
        ("{ items { id tags } }", {}, 1 + 10 * 2),  # no size: list_size
        ("{ items(first: 3) { id } }", {}, 1 + 3),
        ("{ items(first: 3, limit: 7) { id } }", {}, 1 + 7),  # the largest size
        ("query ($n: Int) { items(first: $n) { id } }", {"n": 50}, 1 + 50),
        ("query ($n: Int) { items(first: $n) { id } }", {}, 1 + 10),
        ("query ($n: Int = 4) { items(first: $n) { id } }", {}, 1 + 4),
        ("query ($n: Int = 4) { items(first: $n) { id } }", {"n": None}, 1 + 10),
        ("query ($n: Int) { items(first: $n) { id } }", {"n": "many"}, 1 + 10),
        ("{ items(first: -5) { id } }", {}, 1),
        ("{ items(first: 2) { children(first: 3) { id } } }", {}, 1 + 2 * (1 + 3)),
        # A connection: its size sizes the unsized lists directly inside it.
        ("{ page(first: 2) { total items { id } } }", {}, 1 + 1 + (1 + 2 * 1)),
        # ... and without one, the argument's default in the schema (first: Int! = 5).
        ("{ page { items { id } } }", {}, 1 + (1 + 5 * 1)),
        ("{ page(first: 2) { ...P } } fragment P on Page { items { id } }", {}, 1 + 1 + 2),
    ],
)
def test_cost(query: str, variables: dict[str, Any], cost: int) -> None:
    assert measured(query, **variables).cost == cost


def test_cost_saturates_on_absurd_sizes() -> None:
    query = "{ items(first: 99999999999999999999999) { children(first: 999999999) { id } } }"
    assert measured(query).cost == SATURATED


def test_the_storefront_and_the_introspection_query_fit_the_defaults() -> None:
    storefront = demo.schema.build(ServerConfig())._schema
    defaults = LimitsConfig()
    for query in (
        EXAMPLE_QUERY,
        EXAMPLE_QUERY.replace("first: 5", "first: 50"),  # the demo's largest page
        get_introspection_query(
            descriptions=True,
            specified_by_url=True,
            directive_is_repeatable=True,
            schema_description=True,
            input_value_deprecation=True,
        ),
    ):
        document = parse(query)
        operation = document.definitions[0]
        found = measure(
            storefront,
            document,
            operation,  # type: ignore[arg-type]
            list_size=defaults.list_size,
        )
        assert exceeded(found, defaults) == [], query
    example = parse(EXAMPLE_QUERY)
    found = measure(storefront, example, example.definitions[0], list_size=10)  # type: ignore[arg-type]
    # 5 orders; 10 lines (list_size) of 10 reviews each: docs/security.md shows the sum.
    assert (found.depth, found.fields, found.cost) == (8, 26, 920)


def test_exceeded_names_each_limit_with_its_numbers() -> None:
    found = Measurements(depth=40, aliases=0, root_fields=1, directives=0, fields=41, cost=41)
    [error] = exceeded(found, LimitsConfig(max_depth=12))
    assert error.message == "the operation's depth 40 exceeds the limit of 12"
    assert error.extensions == {
        "code": "OPERATION_LIMIT_EXCEEDED",
        "limit": "max_depth",
        "max": 12,
        "measured": 40,
    }
    assert exceeded(found, LimitsConfig(max_depth=None)) == []
    huge = Measurements(0, 0, 0, 0, SATURATED, 0)
    [error] = exceeded(huge, LimitsConfig())
    assert error.message.startswith("the operation's field count (fragments expanded) at least")


# --- parsing and the cache ---------------------------------------------------------------------


def checker(**limits: Any) -> DocumentChecker:
    return DocumentChecker(LimitsConfig(**limits), hide_suggestions=False)


def test_document_bytes_are_utf8_bytes_checked_before_parsing() -> None:
    query = "{ hello } # " + "é" * 60  # 72 characters, 132 bytes
    refused = checker(max_document_bytes=100).parse(query)
    assert not isinstance(refused, _Document)
    assert refused.extensions == {
        "code": "OPERATION_LIMIT_EXCEEDED",
        "limit": "max_document_bytes",
        "max": 100,
        "measured": 132,
    }
    assert isinstance(checker(max_document_bytes=132).parse(query), _Document)
    # Over the limit even when cached under a laxer limit elsewhere: checked on every request.
    strict = checker(max_document_bytes=100)
    assert not isinstance(strict.parse(query), _Document)
    assert not isinstance(strict.parse(query), _Document)


def test_token_and_nesting_aborts_of_the_parser_become_limit_errors() -> None:
    # The wording of graphql-core's messages is what tells these apart from syntax errors.
    tokens = checker(max_tokens=100).parse("{ " + "hello " * 15_000 + "}")
    assert not isinstance(tokens, _Document)
    assert tokens.message == "the document's token count exceeds the limit of 100"
    assert tokens.extensions["limit"] == "max_tokens"
    deep = checker().parse("{" + "node{" * 7_000 + "hello" + "}" * 7_001)  # 42 KB
    assert not isinstance(deep, _Document)
    assert deep.extensions == {"code": "OPERATION_LIMIT_EXCEEDED", "limit": "max_depth", "max": 15}
    syntax = checker().parse("{ hello(")
    assert not isinstance(syntax, _Document) and syntax.message.startswith("Syntax Error")
    # Without the limit, the parser's own message stays.
    deep = checker(max_depth=None).parse("{" + "node{" * 300 + "hello" + "}" * 301)
    assert not isinstance(deep, _Document) and "nested too deeply" in deep.message


def test_the_cache_is_bounded_by_entries_and_by_text() -> None:
    cache = _Cache(max_entries=3, max_chars=800)
    entries = {}
    for name in "abcd":
        query = f"{{ {name}: hello }}"
        entries[query] = _Document(parse(query), ())
        cache.put(query, entries[query])
    assert len(cache) == 3 and cache.get("{ a: hello }") is None
    assert cache.get("{ b: hello }") is entries["{ b: hello }"]
    cache.put("{ " + "x" * 150 + " }", _Document(parse("{ x }"), ()))  # over an eighth: not kept
    assert len(cache) == 3
    for i in range(10):
        cache.put("{ " + f"{i}" * 95 + " }", _Document(parse("{ x }"), ()))
    assert len(cache) <= 3 and sum(map(len, cache._entries)) <= 800


async def test_a_cached_document_is_measured_once_and_checked_every_time() -> None:
    schema = build(max_depth=2)
    deep = "{ node { node { hello } } }"
    for _ in range(2):
        result = await schema.execute(deep)
        assert result.errors and result.errors[0].extensions["limit"] == "max_depth"
    CALLS.clear()
    result = await schema.execute("query ($n: Int) { items(first: $n) { id } }", {"n": 5})
    assert result.errors is None
    # The same document with another page size is measured again.
    result = await schema.execute("query ($n: Int) { items(first: $n) { id } }", {"n": 20_000})
    assert result.errors and result.errors[0].extensions["measured"] == 20_001
    assert CALLS == []


async def test_a_refused_operation_runs_no_resolver() -> None:
    schema = build(max_depth=2, max_aliases=3)
    CALLS.clear()
    for query in (
        "{ node { node { hello } } }",
        "{ a: hello b: hello c: hello d: hello }",
        "{ " + "hello " * 6_000 + "}",
        "x" * 200_000,
    ):
        result = await schema.execute(query)
        assert result.data is None
        assert result.errors and result.errors[0].extensions["code"] == "OPERATION_LIMIT_EXCEEDED"
    assert CALLS == []


async def test_the_streaming_path_reports_parse_stage_refusals_too() -> None:
    """WebSocket operations go through ``schema.stream``, which lets an exception from an
    on_parse hook escape; the refusal must arrive as a result instead."""
    schema = build()
    for query, limit in (
        ("x" * 200_000, "max_document_bytes"),
        ("{ " + "hello " * 6_000 + "}", "max_tokens"),
    ):
        results = [result async for result in await schema.stream(query)]
        [result] = results
        assert result.errors and result.errors[0].extensions["limit"] == limit
    results = [result async for result in await schema.stream("{ hello(")]
    assert results[0].errors and results[0].errors[0].message.startswith("Syntax Error")
    results = [
        result
        async for result in await schema.subscribe(
            "subscription S { " + "x " * 6_000 + "}", operation_name="S"
        )
    ]
    assert results[0].errors and results[0].errors[0].extensions["limit"] == "max_tokens"


async def test_validation_still_runs_and_the_limits_come_first() -> None:
    schema = build()
    result = await schema.execute(
        "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }"
    )
    assert result.errors and "Cannot spread fragment 'A' within itself" in result.errors[0].message
    result = await schema.execute("{ nope }")
    assert result.errors and result.errors[0].message.startswith("Cannot query field 'nope'")
    # Over a limit and invalid: the limit is reported, validation is not even run.
    result = await build(max_depth=2).execute("{ node { node { nope } } }")
    assert result.errors and [e.extensions.get("limit") for e in result.errors] == ["max_depth"]


# --- production's error hygiene ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "variables"),
    [("{ helo }", None), ("query ($c: Color!) { color(c: $c) }", {"c": "REDD"})],
)
async def test_suggestions_only_in_development(query: str, variables: dict[str, Any]) -> None:
    development = await build().execute(query, variables)
    assert development.errors and "Did you mean" in development.errors[0].message
    production = await build("production").execute(query, variables)
    assert production.errors and "Did you mean" not in production.errors[0].message
    assert (
        production.errors[0].message.split(" Did you mean")[0]
        == (development.errors[0].message.split(" Did you mean")[0])
    )


async def test_production_masks_a_bug_with_the_correlation_id_of_its_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="strawberry.execution"):
        result = await build("production").execute("{ boom hello }")
    assert result.data == {"boom": None, "hello": "world"}
    assert result.errors is not None
    [error] = result.errors
    assert error.message == "Unexpected error." and error.path == ["boom"]
    assert error.extensions is not None
    correlation_id = error.extensions["correlation_id"]
    assert error.extensions == {"code": "INTERNAL_SERVER_ERROR", "correlation_id": correlation_id}
    assert len(correlation_id) == 16 and "hunter2" not in str(error.formatted)
    [record] = [r for r in caplog.records if r.name == "strawberry.execution"]
    assert correlation_id in record.getMessage() and "boom" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    assert record.correlation_id == correlation_id  # type: ignore[attr-defined]


async def test_each_occurrence_has_its_own_correlation_id() -> None:
    schema = build("production")
    ids = set()
    for _ in range(3):
        result = await schema.execute("{ a: boom b: boom }")
        assert result.errors
        ids |= {e.extensions["correlation_id"] for e in result.errors if e.extensions}
    assert len(ids) == 6


async def test_development_shows_the_bug_and_still_logs_an_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="strawberry.execution"):
        result = await build().execute("{ boom }")
    assert result.errors and "hunter2" in result.errors[0].message
    [record] = [r for r in caplog.records if r.name == "strawberry.execution"]
    assert record.getMessage().startswith("Unexpected error ")


async def test_coded_and_validation_errors_stay_readable_in_production(
    caplog: pytest.LogCaptureFixture,
) -> None:
    schema = build("production", max_depth=2)
    with caplog.at_level(logging.WARNING):
        result = await schema.execute("{ refused }")
        assert result.errors and result.errors[0].message == "'first' must be between 1 and 50"
        assert result.errors[0].extensions == {"code": "BAD_USER_INPUT"}
        result = await schema.execute("{ nope }")
        assert result.errors and result.errors[0].message.startswith("Cannot query field 'nope'")
        result = await schema.execute("{ node { node { hello } } }")
        assert result.errors and result.errors[0].extensions["limit"] == "max_depth"
    warnings = [r.getMessage() for r in caplog.records if r.name == "graftql.errors"]
    assert "OPERATION_LIMIT_EXCEEDED: the operation's depth 3 exceeds the limit of 2" in warnings
