"""The executor: strawberry's, with shortcuts where graphql-core's generality costs the most.

Most fields of a gateway's answer are plain attributes of an object a resolver already made:
``id``, ``title``, ``name`` of fifty posts and their authors. graphql-core runs the same
machinery for each of them as for a resolver that calls an upstream: a ``Path`` entry, a
``GraphQLResolveInfo`` (and strawberry an ``Info``), argument lookup, two resolver wrappers, an
awaitable check and the generic completion. For a field with no resolver, no arguments, no
extensions and no permission classes, whose type is a scalar or enum (``String``, ``ID!``...),
none of that can change the answer: the value is ``getattr(source, name)`` (strawberry's
``default_resolver``) serialized by its type.

``LeanExecutionContext`` therefore

- compiles each selection set once per operation into a list of its fields, with the read and
  the serializer of every plain leaf, and ``execute_fields`` reads those leaves inline: no path,
  no info, no method call per leaf;
- awaits a resolver's awaitable directly when no abort signal is set, instead of through
  graphql-core's ``with_abort_signal`` wrapper (one coroutine less per resolved item);
- completes objects without the incremental-delivery layer when their selection has no
  ``@defer``;
- runs the awaited items of a list, and the awaited fields of an object, as tasks joined by one
  counter (``_gather``) instead of ``asyncio.gather``: the same semantics as graphql-core's
  ``gather_with_cancel`` (results in order; the first failure cancels the others, waits for
  them and is raised), with less work per item. Every item still gets its own task, so a
  resolver's ``asyncio.timeout()``, ``TaskGroup`` and context variables stay its own.

``install_direct_resolvers`` (``GatewaySchema.build`` calls it) does the same for fields with a
resolver but nothing strawberry must do around it — no arguments, no field extensions (which
is where permission classes live), no exception handlers, not a subscription: the field calls
the resolver function itself with ``self``/``root``/``parent``/``info`` as it asks, instead of
through strawberry's wrappers (argument conversion, an extension chain, and for ``async``
resolvers two coroutines more per call).

Everything else — and every leaf that ends in an error (an exception, a null for a non-null
type, a value the scalar cannot serialize, an awaitable) — goes to graphql-core's own
``execute_field``, so errors keep their exact message and path. Schema extensions that hook
``resolve`` turn the shortcuts off (they must see every field). tests/unit/test_executor.py runs
a corpus of documents both ways and requires identical results; bench/cpu_per_query.py measures
what it saves (``--stock-executor`` for the before-figure).
"""

from __future__ import annotations

from asyncio import (
    CancelledError,
    Future,
    Task,
    ensure_future,
    gather,
    get_running_loop,
    iscoroutine,
)
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

from graphql import (
    GraphQLField,
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    Undefined,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.execution.executor import collect_iterator_awaitables, invalid_return_type_error
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

if TYPE_CHECKING:
    import strawberry

__all__ = ["LeanExecutionContext", "install_direct_resolvers"]

# (python attribute name, the resolver that reads it, the serializer of its leaf type)
_Leaf = tuple[str, Callable[[Any, str], Any], Callable[[Any], Any]]
# One entry per response key of a selection set: (response key, its fields, the leaf or None)
_Plan = list[tuple[str, FieldDetailsList, "_Leaf | None"]]
_NO_LEAF = object()
# Values the built-in scalars serialize without surprises; anything else (None, an awaitable,
# an enum member, a custom scalar's value) takes the general path first.
_PLAIN = frozenset({str, int, float, bool})


def _leaf(field: GraphQLField) -> _Leaf | None:
    """How to read ``field`` without the general machinery, or None when it needs it.
    Kept on the field itself, so it lives and dies with its schema."""
    leaf = getattr(field, "_graftql_leaf", _NO_LEAF)
    if leaf is _NO_LEAF:
        leaf = _make_leaf(field)
        field._graftql_leaf = leaf  # type: ignore[attr-defined]
    return cast("_Leaf | None", leaf)


def _make_leaf(field: GraphQLField) -> _Leaf | None:
    if not getattr(field.resolve, "_is_default", False) or field.args:
        return None  # a resolver, or strawberry's exception handling, or arguments
    definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if definition is None or not definition.is_basic_field:
        return None
    leaf = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
    if not isinstance(leaf, GraphQLLeafType):
        return None  # objects, lists, abstract types: they need info and sub-selections
    return definition.python_name, definition.default_resolver, leaf.coerce_output_value


def install_direct_resolvers(schema: strawberry.Schema) -> None:
    """Let every field whose resolver needs nothing of strawberry's around it call the
    resolver directly (see the module). Only the ``resolve`` functions of ``schema``'s
    graphql-core schema change; answers and errors stay the same."""
    converter = schema.schema_converter
    if getattr(converter, "_exception_handler_specs", ()):
        return  # strawberry may turn an exception into a union member: its wrapper does that
    info_class = schema.config.info_class
    for named in schema._schema.type_map.values():
        if not isinstance(named, GraphQLObjectType) or named.name.startswith("__"):
            continue
        for field in named.fields.values():
            definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            direct = _direct(definition, info_class) if definition is not None else None
            if direct is not None and getattr(field.resolve, "_is_default", None) is False:
                field.resolve = direct


def _direct(field: Any, info_class: type) -> Callable[..., Any] | None:
    resolver = field.base_resolver
    if (
        resolver is None
        or field.extensions
        or field.arguments
        or field.is_subscription
        or type(field).get_result is not StrawberryField.get_result
        or not callable(resolver.wrapped_func)
    ):
        return None
    function = resolver.wrapped_func
    with_self = resolver.self_parameter is not None
    as_source = [p.name for p in (resolver.root_parameter, resolver.parent_parameter) if p]
    info_name = resolver.info_parameter.name if resolver.info_parameter else None

    if with_self and not as_source and info_name is not None:  # def f(self, info): the usual

        def direct(source: Any, info: GraphQLResolveInfo[Any]) -> Any:
            return function(source, **{info_name: info_class(_raw_info=info, _field=field)})

    else:

        def direct(source: Any, info: GraphQLResolveInfo[Any]) -> Any:
            kwargs: dict[str, Any] = dict.fromkeys(as_source, source)
            if info_name is not None:
                kwargs[info_name] = info_class(_raw_info=info, _field=field)
            return function(source, **kwargs) if with_self else function(**kwargs)

    return direct


async def _gather(awaitables: list[Any]) -> list[Any]:
    """graphql-core's ``gather_with_cancel``: every awaitable runs as a task; the results in
    order, or on the first failure (in time) the others cancelled and settled, then that failure
    raised. A child that is itself cancelled raises CancelledError at once, as with
    ``asyncio.gather``. Cancelling the caller cancels the children."""
    loop = get_running_loop()
    tasks = [
        loop.create_task(awaitable) if iscoroutine(awaitable) else ensure_future(awaitable)
        for awaitable in awaitables
    ]
    if not tasks:
        return []
    joined: Future[Task[Any] | None] = loop.create_future()
    remaining = len(tasks)

    def settled(task: Task[Any]) -> None:
        nonlocal remaining
        # exception() marks a failure as seen, also one that comes after the join has ended
        failed = task.cancelled() or task.exception() is not None
        if joined.done():
            return
        if failed:
            joined.set_result(task)  # the first failure
            return
        remaining -= 1
        if not remaining:
            joined.set_result(None)

    for task in tasks:
        task.add_done_callback(settled)
    try:
        failed = await joined
    except CancelledError:
        for task in tasks:
            task.cancel()
        raise
    if failed is None:
        return [task.result() for task in tasks]
    if failed.cancelled():
        raise CancelledError
    for task in tasks:
        if not task.done():
            task.cancel()
    await gather(*tasks, return_exceptions=True)
    raise cast("BaseException", failed.exception())


async def _await_into(container: Any, keys: list[Any]) -> Any:
    """``container`` (an object's fields, a list's items) with the awaitables under ``keys``
    replaced by their results: one awaited in place, several joined with ``_gather``."""
    if len(keys) == 1:
        container[keys[0]] = await container[keys[0]]
    else:
        for key, result in zip(keys, await _gather([container[key] for key in keys]), strict=True):
            container[key] = result
    return container


class LeanExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context with the shortcuts described in the module."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        manager = self.middleware_manager
        # MiddlewareManager keeps None here when no middleware (no extension's resolve hook)
        # is installed; any middleware must see every field, so the shortcuts are off.
        self._lean = manager is None or getattr(manager, "_middleware_resolvers", 1) is None
        # id(grouped field set) -> (the set, kept alive so its id is not reused; its plan)
        self._plans: dict[int, tuple[GroupedFieldSet, _Plan]] = {}

    def _plan(self, parent_type: GraphQLObjectType, fields: GroupedFieldSet) -> _Plan:
        cached = self._plans.get(id(fields))
        if cached is not None and cached[0] is fields:
            return cached[1]
        plan: _Plan = []
        for response_name, field_details_list in fields.items():
            leaf = None
            node = field_details_list[0].node
            if not node.arguments and not node.directives:
                field = self.schema.get_field(parent_type, node.name.value)
                leaf = _leaf(field) if field is not None else None
            plan.append((response_name, field_details_list, leaf))
        self._plans[id(fields)] = (fields, plan)
        return plan

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        if not self._lean:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        # graphql-core's execute_fields, with plain leaves read inline
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        try:
            for response_name, field_details_list, leaf in self._plan(
                parent_type, grouped_field_set
            ):
                if leaf is not None:
                    try:
                        value = leaf[1](source_value, leaf[0])
                        if type(value) in _PLAIN:
                            coerced = leaf[2](value)
                            if coerced is not None and coerced is not Undefined:
                                results[response_name] = coerced
                                continue
                    except Exception:  # noqa: S110 - the general path below reports it exactly
                        pass
                result = self.execute_field(
                    parent_type,
                    source_value,
                    field_details_list,
                    Path(path, response_name, parent_type.name),
                    position_context,
                )
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise
        return _await_into(results, awaitable_fields) if awaitable_fields else results

    def gather_async_work(self, values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
        return _gather(list(values))

    def complete_iterable_value(
        self,
        item_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        items: Iterable[Any],
        position_context: Any,
    ) -> Any:
        if not self._lean or self.get_stream_usage(field_details_list, path) is not None:
            return super().complete_iterable_value(
                item_type, field_details_list, info, path, items, position_context
            )
        # graphql-core's, without @stream (above), joining the awaited items with _gather
        is_awaitable = self.is_awaitable
        completed: list[Any] = []
        awaited: list[int] = []
        iterator = iter(items)
        try:
            for index, item in enumerate(iterator):
                item_path = path.add_key(index, None)
                if is_awaitable(item):
                    completed.append(
                        self.complete_awaitable_list_item_value(
                            item, item_type, field_details_list, info, item_path, position_context
                        )
                    )
                    awaited.append(index)
                elif self.complete_list_item_value(
                    item,
                    completed,
                    item_type,
                    field_details_list,
                    info,
                    item_path,
                    position_context,
                ):
                    awaited.append(index)
        except Exception:
            pending = [completed[index] for index in awaited]
            pending.extend(collect_iterator_awaitables(iterator, is_awaitable))
            if pending:
                self.settle_in_background(pending)
            raise
        return _await_into(completed, awaited) if awaited else completed

    def complete_value(
        self,
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        # An object (``T`` or ``T!``), the most common value with a selection: straight to its
        # fields, without graphql-core's chain of type tests. complete_object_value never
        # answers None, so ``T!`` needs no null check here.
        if result is not None and result is not Undefined and not isinstance(result, Exception):
            kind = type(return_type)
            if kind is GraphQLNonNull:
                inner = return_type.of_type  # type: ignore[union-attr]
                if type(inner) is GraphQLObjectType:
                    return self.complete_object_value(
                        inner, field_details_list, info, path, result, position_context
                    )
            elif kind is GraphQLObjectType:
                return self.complete_object_value(
                    return_type,  # type: ignore[arg-type]
                    field_details_list,
                    info,
                    path,
                    result,
                    position_context,
                )
        return super().complete_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def complete_object_value(
        self,
        return_type: GraphQLObjectType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        if not self._lean or position_context is not None:
            return super().complete_object_value(
                return_type, field_details_list, info, path, result, position_context
            )
        is_type_of = return_type.is_type_of
        if is_type_of is not None:
            matches = is_type_of(result, info)
            if self.is_awaitable(matches):  # graphql-core's way
                return self._complete_object_later(
                    matches, return_type, field_details_list, path, result
                )
            if not matches:
                raise invalid_return_type_error(return_type, result, field_details_list)
        # graphql-core's collect_and_execute_subfields, without the incremental-delivery layer
        # when the selection has no @defer
        fields, new_defer_usages, _ = self.collect_subfields(return_type, field_details_list)
        if new_defer_usages:
            return self.execute_collected_subfields(
                return_type, result, path, fields, new_defer_usages, None
            )
        return self.execute_fields(return_type, result, path, fields, None)

    async def _complete_object_later(
        self,
        matches: Any,
        return_type: GraphQLObjectType,
        field_details_list: FieldDetailsList,
        path: Path,
        result: Any,
    ) -> Any:
        if not await self.with_abort_signal(matches):
            raise invalid_return_type_error(return_type, result, field_details_list)
        fields = self.collect_and_execute_subfields(
            return_type, field_details_list, path, result, None
        )
        return await fields if self.is_awaitable(fields) else fields

    async def complete_awaitable_value(
        self,
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        # graphql-core's, without the with_abort_signal coroutine when there is no signal
        try:
            signal = self.abort_signal
            resolved = await (result if signal is None else self.with_abort_signal(result))
            completed = self.complete_value(
                return_type, field_details_list, info, path, resolved, position_context
            )
            if self.is_awaitable(completed):
                completed = await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            completed = None
        return completed
