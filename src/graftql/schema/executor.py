"""The executor: strawberry's, with a shortcut for plain leaf fields.

Most fields of a gateway's answer are plain attributes of an object a resolver already made:
``id``, ``title``, ``name`` of fifty posts and their authors. graphql-core runs the same
machinery for each of them as for a resolver that calls an upstream: it builds a
``GraphQLResolveInfo`` (and strawberry an ``Info``), looks up arguments, calls the resolver
through two wrappers, checks the result for awaitables and completes it through the generic
path. For a field with no resolver, no arguments, no extensions and no permission classes,
whose type is a scalar or enum (``String``, ``ID!``...), none of that can change the answer:
the value is ``getattr(source, name)`` (strawberry's ``default_resolver``) serialized by its
type.

``LeanExecutionContext.execute_field`` takes that shortcut, and hands everything else —
including every case that ends in an error (an exception, a null for a non-null type, a value
the scalar cannot serialize) — to graphql-core's own ``execute_field``, so errors keep their
exact message and path. Schema extensions that hook ``resolve`` turn the shortcut off (they
must see every field). tests/unit/test_executor.py runs a corpus of documents both ways and
requires identical results; bench/cpu_per_query.py measures what it saves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from graphql import GraphQLField, GraphQLLeafType, GraphQLNonNull, GraphQLObjectType, Undefined
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter

__all__ = ["LeanExecutionContext"]

# (python attribute name, the resolver that reads it, the leaf type that serializes it)
_Plan = tuple[str, Callable[[Any, str], Any], GraphQLLeafType]
_NO_PLAN = object()


def _plan(field: GraphQLField) -> _Plan | None:
    """How to read ``field`` without the general machinery, or None when it needs it.
    Kept on the field itself, so it lives and dies with its schema."""
    plan = getattr(field, "_graftql_plan", _NO_PLAN)
    if plan is _NO_PLAN:
        plan = _make_plan(field)
        field._graftql_plan = plan  # type: ignore[attr-defined]
    return cast("_Plan | None", plan)


def _make_plan(field: GraphQLField) -> _Plan | None:
    if not getattr(field.resolve, "_is_default", False) or field.args:
        return None  # a resolver, or strawberry's exception handling, or arguments
    definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if definition is None or not definition.is_basic_field:
        return None
    leaf = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
    if not isinstance(leaf, GraphQLLeafType):
        return None  # objects, lists, abstract types: they need info and sub-selections
    return definition.python_name, definition.default_resolver, leaf


class LeanExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context with the plain-leaf shortcut (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        manager = self.middleware_manager
        # MiddlewareManager keeps None here when no middleware (no extension's resolve hook)
        # is installed; any middleware must see every field, so the shortcut is off.
        self._lean = manager is None or getattr(manager, "_middleware_resolvers", 1) is None

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any = None,
    ) -> Any:
        if self._lean:
            node = field_details_list[0].node
            if not node.arguments and not node.directives:
                field = self.schema.get_field(parent_type, node.name.value)
                plan = _plan(field) if field is not None else None
                if plan is not None:
                    name, read, leaf = plan
                    try:
                        value = read(source, name)
                        if value is not None and not self.is_awaitable(value):
                            coerced = leaf.coerce_output_value(value)
                            if coerced is not None and coerced is not Undefined:
                                return coerced
                    except Exception:  # noqa: S110 - the general path below reports it exactly
                        pass
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )
