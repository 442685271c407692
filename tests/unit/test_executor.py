"""The plain-leaf shortcut (``graftql.schema.executor``) answers exactly as graphql-core does:
the same data and the same errors (message, path, locations), for every document of a corpus
built to hit each way a field can leave the shortcut."""

from __future__ import annotations

import enum
from typing import Annotated, Any, NewType

import pytest
import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig

from graftql.schema.executor import LeanExecutionContext


@strawberry.enum
class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


def _serialize_even(value: Any) -> int:
    if value % 2:
        raise ValueError(f"{value} is odd")
    return int(value)


Even = NewType("Even", int)
CONFIG = StrawberryConfig(
    scalar_map={Even: strawberry.scalar(name="Even", serialize=_serialize_even, parse_value=int)}
)


class Broken:
    @property
    def boom(self) -> str:
        raise RuntimeError("attribute exploded")


@strawberry.interface
class Node:
    id: strawberry.ID


@strawberry.type
class Item(Node):
    name: str
    nickname: str | None
    required: str  # sometimes None on purpose: a non-null violation
    color: Color
    even: Even
    count: int
    ratio: float
    flag: bool
    tags: list[str]

    @strawberry.field
    def upper(self, suffix: str = "") -> str:
        return self.name.upper() + suffix

    @strawberry.field
    async def later(self) -> str:
        return f"later {self.name}"


@strawberry.type
class Other(Node):
    label: str


Thing = Annotated[Item | Other, strawberry.union("Thing")]


def _item(i: int, **overrides: Any) -> Item:
    values: dict[str, Any] = {
        "id": strawberry.ID(str(i)),
        "name": f"item{i}",
        "nickname": None if i % 2 else f"nick{i}",
        "required": f"r{i}",
        "color": Color.RED if i % 2 else Color.BLUE,
        "even": i * 2,
        "count": i,
        "ratio": i / 3,
        "flag": bool(i % 2),
        "tags": [f"t{i}", "x"],
    }
    values.update(overrides)
    return Item(**values)


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return [_item(i) for i in range(1, 6)]

    @strawberry.field
    def bad_required(self) -> list[Item]:
        return [_item(1), _item(2, required=None), _item(3)]

    @strawberry.field
    def odd(self) -> Item:
        return _item(1, even=3)

    @strawberry.field
    def wrong_type(self) -> Item:
        return _item(1, count="not a number", color="green")

    @strawberry.field
    def broken(self) -> Item:
        item = _item(1)
        item.__class__ = type("BrokenItem", (Item,), {"name": property(Broken.boom.fget)})
        return item

    @strawberry.field
    def things(self) -> list[Thing]:
        return [_item(1), Other(id=strawberry.ID("o"), label="other")]

    @strawberry.field
    def nodes(self) -> list[Node]:
        return [_item(2), Other(id=strawberry.ID("p"), label="p")]


DOCUMENTS = [
    "{ items { id name nickname required color even count ratio flag tags } }",
    "{ items { a: name b: name, name } }",
    '{ items { upper upper2: upper(suffix: "!") later } }',
    "query($yes: Boolean!) { items { name @include(if: $yes) id @skip(if: $yes) } }",
    "{ badRequired { id required } }",
    "{ badRequired { id nickname } }",
    "{ odd { id even } }",
    "{ wrongType { id count } }",
    "{ wrongType { id color } }",
    "{ broken { id name } }",
    "{ things { __typename ... on Item { id name } ... on Other { id label } } }",
    "{ nodes { id __typename ... on Item { color } } }",
    "fragment F on Item { id name } { items { ...F count } }",
]


FAILING = {
    "{ badRequired { id required } }",
    "{ odd { id even } }",
    "{ wrongType { id count } }",
    "{ wrongType { id color } }",
    "{ broken { id name } }",
}


def _schemas(**kwargs: Any) -> tuple[strawberry.Schema, strawberry.Schema]:
    stock = strawberry.Schema(query=Query, config=CONFIG, **kwargs)
    lean = strawberry.Schema(
        query=Query, config=CONFIG, execution_context_class=LeanExecutionContext, **kwargs
    )
    return stock, lean


def _outcome(result: Any) -> tuple[Any, list[tuple[str, Any, Any]]]:
    errors = [(e.message, e.path, e.locations) for e in result.errors or []]
    return result.data, errors


@pytest.mark.parametrize("document", DOCUMENTS)
async def test_the_shortcut_answers_as_graphql_core_does(document: str) -> None:
    stock, lean = _schemas()
    variables = {"yes": True}
    expected = _outcome(await stock.execute(document, variable_values=variables))
    got = _outcome(await lean.execute(document, variable_values=variables))
    assert got == expected
    if document in FAILING:
        assert expected[1], "the corpus entry was meant to produce an error"


class CountResolves(SchemaExtension):
    calls = 0

    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        CountResolves.calls += 1
        return _next(root, info, *args, **kwargs)


async def test_an_extension_that_hooks_resolve_still_sees_every_field() -> None:
    _, lean = _schemas(extensions=[CountResolves])
    CountResolves.calls = 0
    result = await lean.execute("{ items { id name } }")
    assert result.errors is None
    assert CountResolves.calls == 1 + 5 * 2


async def test_plain_leaves_take_the_shortcut(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    original = LeanExecutionContext.build_resolve_info

    def counting(self: Any, field_def: Any, field_nodes: Any, *args: Any) -> Any:
        built.append(field_nodes[0].name.value)
        return original(self, field_def, field_nodes, *args)

    monkeypatch.setattr(LeanExecutionContext, "build_resolve_info", counting)
    _, lean = _schemas()
    result = await lean.execute("{ items { id name upper } }")
    assert result.errors is None
    assert built == ["items"] + ["upper"] * 5  # id and name: no info, no resolver call
