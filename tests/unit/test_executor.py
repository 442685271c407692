"""The lean executor (``graftql.schema.executor``) answers exactly as graphql-core does: the same
data and the same errors (message, path, locations), for every document of a corpus built to hit
each way a field can leave a shortcut: plain leaves that fail, resolvers (sync and async) that
fail or return null for a non-null type, objects of the wrong type, ``is_type_of`` that is
awaited, several awaited fields on one object, and mutations run in series."""

from __future__ import annotations

import asyncio
import enum
from typing import Annotated, Any, NewType, cast

import pytest
import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.permission import BasePermission
from strawberry.schema.config import StrawberryConfig

from graftql.schema.executor import LeanExecutionContext, _gather, install_direct_resolvers


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


class Refuse(BasePermission):
    message = "not for you"

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        return False


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

    @strawberry.field
    async def later_or_none(self) -> str:  # non-null, but None for odd items
        await asyncio.sleep(0)
        return None if self.count % 2 else f"later {self.name}"  # type: ignore[return-value]

    @strawberry.field
    def no_info(self) -> str:
        return f"plain {self.name}"

    @strawberry.field
    def with_root(self, root: Any, info: strawberry.Info) -> str:
        return f"{root.name} at {info.path.key}"

    @strawberry.field
    def with_parent(self, parent: strawberry.Parent[Any]) -> str:
        return f"parent {parent.name}"

    @strawberry.field
    @staticmethod
    def static() -> str:
        return "static"

    @strawberry.field
    async def returns_awaitable(self) -> str:  # strawberry awaits the call, not what it returns
        future = asyncio.get_running_loop().create_future()
        future.set_result(f"awaited {self.name}")
        return cast("str", future)

    @strawberry.field
    def sync_awaitable(self) -> str:
        return cast("str", asyncio.sleep(0, result=f"sync {self.name}"))

    @strawberry.field
    def raises_now(self) -> str | None:
        raise ValueError(f"{self.name} refused")

    @strawberry.field(permission_classes=[Refuse])
    def guarded(self) -> str:
        return "never"

    @strawberry.field
    async def fails(self) -> str | None:
        await asyncio.sleep(0)
        raise ValueError(f"{self.name} failed")

    @strawberry.field
    async def sibling(self) -> Item | None:
        await asyncio.sleep(0)
        return _item(self.count + 10)

    @strawberry.field
    async def required_sibling(self) -> Item:
        await asyncio.sleep(0)
        return _item(self.count + 10, required=None if self.count == 2 else "ok")


@strawberry.type
class Other(Node):
    label: str


@strawberry.type
class Checked:
    """A type whose ``is_type_of`` is awaited (strawberry takes it from the class)."""

    value: str

    @classmethod
    async def is_type_of(cls, obj: Any, _info: Any) -> bool:
        await asyncio.sleep(0)
        return isinstance(obj, Checked) and obj.value != "impostor"


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def first(self) -> Item:
        await asyncio.sleep(0)
        return _item(1)

    @strawberry.mutation
    def second(self) -> Item:
        return _item(2, required=None)


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

    @strawberry.field
    async def async_items(self) -> list[Item]:
        await asyncio.sleep(0)
        return [_item(i) for i in range(1, 4)]

    @strawberry.field
    def strict_items(self) -> list[Item] | None:  # a list of non-null items, itself nullable
        return [_item(i) for i in range(1, 4)]

    @strawberry.field
    def wrong_object(self) -> Item:
        # Item's is_type_of accepts any Node (strawberry), so this is answered, not refused
        return Other(id=strawberry.ID("x"), label="not an item")  # type: ignore[return-value]

    @strawberry.field
    def checked(self) -> list[Checked | None]:
        return [Checked(value="a"), Checked(value="impostor"), Checked(value="b")]


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
    "{ asyncItems { id later l2: later name } }",
    "{ items { noInfo withRoot withParent static syncAwaitable } }",
    "{ items { returnsAwaitable } }",
    "{ items { id raisesNow } }",
    "{ items { id guarded } }",
    "{ items { id laterOrNone } }",
    "{ strictItems { id laterOrNone } }",
    "{ items { id fails name } }",
    "{ items { id sibling { id name sibling { id later } } } }",
    "{ items { id requiredSibling { id required } } }",
    "{ wrongObject { id } }",
    "{ checked { value } }",
    "mutation { first { id name } second { id required } }",
    "mutation { a: first { id later } b: first { id } }",
]


FAILING = {
    "{ items { id raisesNow } }",
    "{ items { id guarded } }",
    "{ items { id laterOrNone } }",
    "{ strictItems { id laterOrNone } }",
    "{ items { id fails name } }",
    "{ items { id requiredSibling { id required } } }",
    "{ checked { value } }",
    "mutation { first { id name } second { id required } }",
    "{ badRequired { id required } }",
    "{ odd { id even } }",
    "{ wrongType { id count } }",
    "{ wrongType { id color } }",
    "{ broken { id name } }",
}


def _schemas(**kwargs: Any) -> tuple[strawberry.Schema, strawberry.Schema]:
    stock = strawberry.Schema(query=Query, mutation=Mutation, config=CONFIG, **kwargs)
    lean = strawberry.Schema(
        query=Query,
        mutation=Mutation,
        config=CONFIG,
        execution_context_class=LeanExecutionContext,
        **kwargs,
    )
    install_direct_resolvers(lean)
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


def _hooks_resolve(factory: Any) -> bool:
    extension = factory if isinstance(factory, type) else type(factory())
    return extension.resolve is not SchemaExtension.resolve


@pytest.mark.parametrize("env", ["development", "production"])
def test_no_gateway_extension_turns_the_shortcuts_off(env: str) -> None:
    """Every extension the gateway installs, with every option that adds one on, leaves the
    ``resolve`` hook alone: one that hooked it would make every field take the slow path."""
    from graftql.config import ServerConfig
    from graftql.config.server import InboundRateLimitConfig
    from graftql.demo.schema import schema as demo
    from graftql.schema.executor import LeanExecutionContext as Lean
    from graftql.server.tracing import _OperationSpan

    server = ServerConfig(
        env=env,  # type: ignore[arg-type]
        explain="auto",
        rate_limit=InboundRateLimitConfig(rate=10, burst=10),
    )
    built = demo.build(
        server,
        trusted=frozenset({"0" * 64}),
        report=lambda report: None,
        outer=[lambda: _OperationSpan(None)],  # type: ignore[arg-type]
        subscriptions=object(),  # type: ignore[arg-type]
    )
    assert issubclass(built.execution_context_class, Lean)
    assert len(built.extensions) >= 8
    assert [f for f in built.extensions if _hooks_resolve(f)] == []
    assert _hooks_resolve(CountResolves)  # the check can see a hook


async def _incremental(schema: strawberry.Schema, document: str) -> list[Any]:
    result: Any = await schema.execute(document)
    first = result.initial_result
    out: list[Any] = [(first.data, [(e.message, e.path) for e in first.errors or []])]
    async for later in result.subsequent_results:
        out.append(later.formatted)
    return out


@pytest.mark.parametrize(
    "document",
    [
        "{ items { id ... @defer { name later } } }",
        '{ items { id ... @defer(label: "x") { sibling { id later } } fails } }',
        "{ asyncItems { ... @defer { id fails } name } }",
        "{ items { ... @defer { sibling { id ... @defer { later } } } } }",
        "{ items { id sibling { name ... @defer { later sibling { id ... @defer { name } } } } } }",
        "{ asyncItems { id ... @defer { sibling { id later ... @defer { fails } } } } }",
    ],
)
async def test_deferred_fragments_answer_as_graphql_core_does(document: str) -> None:
    """With @defer (strawberry's experimental incremental delivery) the lean executor hands
    the deferred parts to graphql-core: the initial and every later payload are the same."""
    config = StrawberryConfig(
        scalar_map=CONFIG.scalar_map, enable_experimental_incremental_execution=True
    )
    stock = strawberry.Schema(query=Query, config=config)
    lean = strawberry.Schema(
        query=Query, config=config, execution_context_class=LeanExecutionContext
    )
    install_direct_resolvers(lean)
    expected = await _incremental(stock, document)
    assert len(expected) > 1, "the document was meant to defer something"
    assert await _incremental(lean, document) == expected


async def test_gather_answers_in_order() -> None:
    async def after(delay: float, value: str) -> str:
        await asyncio.sleep(delay)
        return value

    ready = asyncio.get_running_loop().create_future()
    ready.set_result("future")
    assert await _gather([after(0.02, "slow"), after(0, "fast"), ready]) == [
        "slow",
        "fast",
        "future",
    ]
    assert await _gather([]) == []


async def test_gather_raises_the_first_failure_after_settling_the_others() -> None:
    events: list[str] = []

    async def fails(delay: float, message: str) -> None:
        await asyncio.sleep(delay)
        events.append(f"raise {message}")
        raise ValueError(message)

    async def slow() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0)  # cleanup that takes a turn of the loop
            events.append("slow cleaned up")
            raise
        return "never"

    with pytest.raises(ValueError, match=r"^first$"):
        await _gather([slow(), fails(0.01, "first"), fails(0.01, "second")])
    # the first failure in time, raised only once the others have settled
    assert events == ["raise first", "slow cleaned up"] or events == [
        "raise first",
        "raise second",
        "slow cleaned up",
    ]


async def test_cancelling_the_caller_cancels_every_child() -> None:
    cancelled: list[int] = []

    async def child(n: int) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(n)
            raise

    caller = asyncio.ensure_future(_gather([child(1), child(2), child(3)]))
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.sleep(0)
    assert sorted(cancelled) == [1, 2, 3]


async def test_a_cancelled_child_cancels_the_gather_as_asyncio_gather_does() -> None:
    loop = asyncio.get_running_loop()
    doomed = loop.create_future()
    sibling = loop.create_future()
    loop.call_later(0.01, doomed.cancel)
    with pytest.raises(asyncio.CancelledError):
        await _gather([doomed, sibling])
    assert not sibling.cancelled()  # asyncio.gather leaves the others running too
    sibling.cancel()


async def test_a_failure_after_the_join_has_ended_is_not_left_unseen() -> None:
    """A child that fails while being cancelled (its cleanup raises) is marked as seen, so
    asyncio does not log 'Task exception was never retrieved' for it later."""
    import gc

    loop = asyncio.get_running_loop()
    unseen: list[Any] = []
    loop.set_exception_handler(lambda _loop, context: unseen.append(context))

    async def cleanup_fails() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise ValueError("cleanup failed") from None

    caller = asyncio.ensure_future(_gather([cleanup_fails(), asyncio.sleep(10)]))
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    for _ in range(3):
        await asyncio.sleep(0)
    gc.collect()
    assert unseen == []
