"""Delegation: a type that mirrors a GraphQL upstream's type is fetched with exactly the
client's selection, batched by key.

Mark the fields the upstream answers with ``upstream_field()``; every other field of the type
is the gateway's own (resolved from another upstream) and never sent upstream::

    @strawberry.type
    class Product:
        id: strawberry.ID = upstream_field()
        name: str = upstream_field()
        price: Money = upstream_field()

        @strawberry.field(metadata=requires("id"))   # gateway-added: needs the id
        async def stock(self, info: Info) -> int: ...

    PRODUCTS = Delegate("catalog", "products", key="id")   # products(ids: [ID!]!): [Product]

    async def product(self, info: Info, id: strawberry.ID) -> Product | None:
        return await PRODUCTS.load(info, id)

What the upstream receives is the client's selection on that field, with aliases kept, named
and inline fragments inlined (a fragment on another type stays an inline fragment on it),
``@skip``/``@include`` applied and variables replaced by their values, minus the gateway's own
fields, plus the key and whatever the gateway's fields ``requires``. Loads in the same tick
become one upstream document: one aliased root field per distinct selection, each with the
keys that asked for it.

The value handed to the type is the upstream's answer (a dict keyed by response key);
``upstream_field`` reads it by the field's response key (its alias), so aliased fields with
different arguments each get their own value. On an object that is not such a dict (built
from a REST upstream), it reads the attribute as any field would.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

import strawberry
from aiodataloader import DataLoader
from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    FragmentSpreadNode,
    GraphQLIncludeDirective,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    NamedTypeNode,
    NameNode,
    OperationDefinitionNode,
    OperationType,
    SelectionNode,
    SelectionSetNode,
    ValueNode,
    VariableDefinitionNode,
    VariableNode,
    ast_from_value,
    get_named_type,
    parse,
    parse_type,
    print_ast,
)
from graphql.execution.values import (
    VariableValues,
    get_argument_values,
    get_directive_values,
)
from strawberry.extensions.field_extension import FieldExtension

from graftql.errors import UpstreamBadResponse
from graftql.resolvers.batch import as_list

if TYPE_CHECKING:
    from graphql import GraphQLResolveInfo

    from graftql.resolvers.context import Context

__all__ = [
    "Delegate",
    "FromUpstream",
    "forwarded_selection",
    "install_upstream_resolvers",
    "requires",
    "upstream_field",
]

_REQUIRES = "graftql.requires"
_KEY_ALIAS = "graftqlKey"
_MAX_DOCUMENTS = 256  # lookup documents kept per Delegate (one per combination of selections)


class FromUpstream(FieldExtension):
    """Reads the field from a delegated answer by its response key (``upstream_field``)."""

    def resolve(self, next_: Callable[..., Any], source: Any, info: Any, **kwargs: Any) -> Any:
        if isinstance(source, Mapping):
            return source.get(info.path.key)
        return next_(source, info, **kwargs)

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Any, **kwargs: Any
    ) -> Any:
        if isinstance(source, Mapping):
            return source.get(info.path.key)
        return await next_(source, info, **kwargs)


def _by_response_key(python_name: str) -> Callable[..., Any]:
    def resolve(source: Any, info: Any, **_arguments: Any) -> Any:
        if isinstance(source, Mapping):
            return source.get(info.path.key)
        return getattr(source, python_name)

    return resolve


def install_upstream_resolvers(schema: GraphQLSchema) -> None:
    """Resolve every ``upstream_field`` of a built schema with a plain function, instead of
    through strawberry's field-extension machinery: the same answer, a fraction of the cost
    (these fields are most of a delegated answer). ``GatewaySchema.build`` calls it."""
    for named in schema.type_map.values():
        if not isinstance(named, GraphQLObjectType) or named.name.startswith("__"):
            continue
        mirrored = False
        for field in named.fields.values():
            definition = _definition(field)
            mirrored = mirrored or (definition is not None and _is_forwarded(field))
            # A field with a resolver (for its arguments) keeps strawberry's path: on an
            # object that is not a delegated answer, its resolver runs.
            if definition is not None and _is_forwarded(field) and not definition.base_resolver:
                field.resolve = _by_response_key(definition.python_name)
        if mirrored and named.is_type_of is not None:
            # In an interface or union, strawberry asks each type whether an object is its
            # own (isinstance): a delegated answer is the upstream's dict, so say yes to it
            # too, unless its __typename (when selected) names another type.
            named.is_type_of = _or_delegated(named.name, named.is_type_of)


def _or_delegated(name: str, is_type_of: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def check(obj: Any, info: Any) -> Any:
        if isinstance(obj, Mapping):
            return obj.get("__typename", name) == name
        return is_type_of(obj, info)

    return check


def upstream_field(**kwargs: Any) -> Any:
    """A field the mirrored GraphQL upstream answers: forwarded when a client selects it."""
    extensions = [*kwargs.pop("extensions", ()), FromUpstream()]
    return strawberry.field(extensions=extensions, **kwargs)


def requires(*fields: str) -> dict[str, Any]:
    """``metadata=`` for a gateway-added field: the upstream fields it needs from its parent,
    as selection text (``"id"``, ``"price { amount }"``), sent whenever the field is selected,
    under their own names (merged into the client's selection of the same field)."""
    nodes: list[FieldNode] = []
    for text in fields:
        operation = parse("{ " + text + " }", no_location=True).definitions[0]
        assert isinstance(operation, OperationDefinitionNode)
        nodes.extend(cast(FieldNode, node) for node in operation.selection_set.selections)
    return {_REQUIRES: tuple(nodes)}


def _merge(selections: list[SelectionNode], required: FieldNode) -> None:
    """Add ``required`` to ``selections`` unless there; merge its sub-fields if it is."""
    for index, node in enumerate(selections):
        if isinstance(node, FieldNode) and _response_key(node) == required.name.value:
            if node.name.value != required.name.value or node.arguments:
                continue  # the name is another field's alias: cannot merge, add nothing
            if required.selection_set is not None and node.selection_set is not None:
                inner = list(node.selection_set.selections)
                for child in required.selection_set.selections:
                    _merge(inner, cast(FieldNode, child))
                selections[index] = FieldNode(
                    alias=None,
                    name=node.name,
                    arguments=(),
                    directives=(),
                    selection_set=SelectionSetNode(selections=tuple(inner)),
                )
            return
    selections.append(required)


def _definition(field: Any) -> Any:
    return field.extensions.get("strawberry-definition") if field.extensions else None


def _is_forwarded(field: Any) -> bool:
    definition = _definition(field)
    return definition is not None and any(
        isinstance(e, FromUpstream) for e in definition.extensions or ()
    )


def _required(field: Any) -> Iterable[FieldNode]:
    definition = _definition(field)
    metadata = getattr(definition, "metadata", None) or {}
    return tuple(metadata.get(_REQUIRES, ()))


class _Selection:
    """Turns the client's selection into the one the upstream receives."""

    def __init__(self, raw: GraphQLResolveInfo[Any]) -> None:
        self.schema = raw.schema
        self.fragments = raw.fragments
        variables: Any = raw.variable_values
        if isinstance(variables, Mapping):  # strawberry hands over the coerced values alone
            variables = VariableValues(sources={}, coerced=dict(variables))
        self.variables: VariableValues = variables

    def _included(self, node: FieldNode | InlineFragmentNode | FragmentSpreadNode) -> bool:
        skip = get_directive_values(GraphQLSkipDirective, node, self.variables)
        if skip is not None and skip.get("if") is True:
            return False
        include = get_directive_values(GraphQLIncludeDirective, node, self.variables)
        return not (include is not None and include.get("if") is False)

    def selections(
        self, nodes: Iterable[SelectionNode], parent: GraphQLNamedType
    ) -> list[SelectionNode]:
        out: list[SelectionNode] = []
        wanted: list[FieldNode] = []
        for node in nodes:
            if not self._included(node):  # type: ignore[arg-type]
                continue
            if isinstance(node, FieldNode):
                field = self._field(node, parent, wanted)
                if field is not None:
                    out.append(field)
            else:
                condition: NamedTypeNode | None
                if isinstance(node, FragmentSpreadNode):
                    fragment = self.fragments[node.name.value]
                    condition, selection_set = fragment.type_condition, fragment.selection_set
                else:
                    inline = cast(InlineFragmentNode, node)
                    condition, selection_set = inline.type_condition, inline.selection_set
                target = self.schema.get_type(condition.name.value) if condition else parent
                inner = self.selections(selection_set.selections, target or parent)
                if target is None or target is parent or condition is None:
                    out.extend(inner)  # a fragment on the type itself: its fields, inlined
                elif inner:
                    out.append(
                        InlineFragmentNode(
                            type_condition=NamedTypeNode(name=NameNode(value=target.name)),
                            directives=(),
                            selection_set=SelectionSetNode(selections=tuple(inner)),
                        )
                    )
        for required in wanted:  # what gateway-added fields need
            _merge(out, required)
        return out

    def _field(
        self, node: FieldNode, parent: GraphQLNamedType, wanted: list[FieldNode]
    ) -> FieldNode | None:
        name = node.name.value
        if name == "__typename":
            return FieldNode(alias=node.alias, name=node.name, arguments=(), directives=())
        fields = getattr(parent, "fields", {})
        field = fields.get(name)
        if field is None:
            return None
        if not _is_forwarded(field):
            wanted.extend(_required(field))
            return None
        arguments = tuple(
            argument
            for argument in (self._argument(arg, field.args) for arg in node.arguments or ())
            if argument is not None
        )
        selection_set = None
        if node.selection_set is not None:
            inner = self.selections(node.selection_set.selections, get_named_type(field.type))
            selection_set = SelectionSetNode(selections=tuple(inner))
        return FieldNode(
            alias=node.alias,
            name=node.name,
            arguments=arguments,
            directives=(),
            selection_set=selection_set,
        )

    def _argument(self, node: ArgumentNode, definitions: Mapping[str, Any]) -> ArgumentNode | None:
        value: ValueNode | None = node.value
        name = node.name.value
        definition = definitions.get(name)
        if definition is not None and _has_variables(node.value):
            # The value the client meant, coerced as the field's argument, as a literal.
            values = get_argument_values(
                cast(Any, _Single(name, definition)),
                cast(Any, _FieldWithArgument(node)),
                self.variables,
            )
            if name not in values:  # a variable the client left out: no argument at all
                return None
            value = ast_from_value(values[name], definition.type)
        if value is None:
            return None
        return ArgumentNode(name=node.name, value=value)


class _Single:
    """A field definition with just one argument, for ``get_argument_values``."""

    def __init__(self, name: str, definition: Any) -> None:
        self.args = {name: definition}


class _FieldWithArgument:
    def __init__(self, argument: ArgumentNode) -> None:
        self.arguments = (argument,)


def _has_variables(value: ValueNode) -> bool:
    if isinstance(value, VariableNode):
        return True
    children = getattr(value, "values", None) or [f.value for f in getattr(value, "fields", ())]
    return any(_has_variables(child) for child in children)


def _response_key(node: FieldNode) -> str:
    return node.alias.value if node.alias else node.name.value


def forwarded_selection(info: Any, key: str) -> tuple[SelectionSetNode, str]:
    """The selection to send upstream for the field ``info`` resolves, and the response key
    under which each item's ``key`` comes back."""
    raw: GraphQLResolveInfo[Any] = info._raw_info
    builder = _Selection(raw)
    parent = get_named_type(raw.return_type)
    nodes = [
        s for node in raw.field_nodes if node.selection_set for s in node.selection_set.selections
    ]
    selections = builder.selections(nodes, parent)
    alias = key
    keyed = [s for s in selections if isinstance(s, FieldNode) and _response_key(s) == key]
    if not any(s.name.value == key and not s.arguments for s in keyed):
        alias = _KEY_ALIAS if keyed else key
        selections.append(
            FieldNode(
                alias=NameNode(value=alias) if alias != key else None,
                name=NameNode(value=key),
                arguments=(),
                directives=(),
            )
        )
    return SelectionSetNode(selections=tuple(selections)), alias


class _OperationState:
    """One operation's loader for a ``Delegate``, the selections its keys asked for (by their
    text), and the selection worked out per field (by its field nodes)."""

    def __init__(self, delegate: Delegate, context: Context) -> None:
        self.nodes: dict[str, SelectionSetNode] = {}
        self.selections: dict[tuple[Any, ...], tuple[Any, str, str]] = {}
        self.loader: DataLoader[Any, Any] = DataLoader(
            functools.partial(delegate._batch, context, self.nodes),
            max_batch_size=delegate.max_batch_size,
        )


class Delegate:
    """Lookups of a mirrored type through a list field by keys: ``products(ids: [ID!]!)``.

    ``load(info, key)`` returns the upstream's object for ``key`` with the client's selection
    (``None`` when the upstream has none). ``max_batch_size`` keys at most per root field.
    """

    def __init__(
        self,
        upstream: str,
        field: str,
        *,
        key: str = "id",
        argument: str = "ids",
        id_type: str = "[ID!]!",
        max_batch_size: int = 100,
    ) -> None:
        self.upstream = upstream
        self.field = field
        self.key = key
        self.argument = argument
        self.id_type = parse_type(id_type)
        self.max_batch_size = max_batch_size
        # The lookup documents by their selections (bounded: emptied when full).
        self._documents: dict[tuple[str, ...], str] = {}
        # One loader per operation (its Context), like every loader.
        self._loaders: weakref.WeakKeyDictionary[Context, _OperationState] = (
            weakref.WeakKeyDictionary()
        )

    async def load(self, info: Any, key: Any) -> Any:
        context: Context = info.context
        state = self._loaders.get(context)
        if state is None:
            state = self._loaders[context] = _OperationState(self, context)
        # Every item of a list resolves the same field nodes (of the cached document; the list
        # holding them is new for each item): work the selection out once per operation.
        raw = info._raw_info
        field_nodes = raw.field_nodes
        ids = (raw.parent_type.name, *map(id, field_nodes))
        known = state.selections.get(ids)
        if known is None:
            selection, alias = forwarded_selection(info, self.key)
            text = print_ast(selection)
            state.nodes.setdefault(text, selection)
            # the nodes are kept with their ids, so that no id is reused by another node
            known = state.selections[ids] = (field_nodes, text, alias)
        return await state.loader.load((known[1], known[2], key))

    def _document(self, selections: list[SelectionSetNode]) -> DocumentNode:
        """``query GraftqlDelegate($k0: [ID!]!, ...) { s0: <field>(<argument>: $k0) {...} }``:
        one aliased lookup per distinct selection."""
        variables: list[VariableDefinitionNode] = []
        fields: list[SelectionNode] = []
        for index, selection in enumerate(selections):
            name = f"k{index}"
            variables.append(
                VariableDefinitionNode(
                    variable=VariableNode(name=NameNode(value=name)),
                    type=self.id_type,
                    directives=(),
                )
            )
            fields.append(
                FieldNode(
                    alias=NameNode(value=f"s{index}"),
                    name=NameNode(value=self.field),
                    arguments=(
                        ArgumentNode(
                            name=NameNode(value=self.argument),
                            value=VariableNode(name=NameNode(value=name)),
                        ),
                    ),
                    directives=(),
                    selection_set=selection,
                )
            )
        return DocumentNode(
            definitions=(
                OperationDefinitionNode(
                    operation=OperationType.QUERY,
                    name=NameNode(value="GraftqlDelegate"),
                    variable_definitions=tuple(variables),
                    directives=(),
                    selection_set=SelectionSetNode(selections=tuple(fields)),
                ),
            )
        )

    async def _batch(
        self,
        context: Context,
        nodes: Mapping[str, SelectionSetNode],
        keys: list[tuple[str, str, Any]],
    ) -> list[Any]:
        groups: dict[tuple[str, str], list[Any]] = {}
        for text, alias, key in keys:
            groups.setdefault((text, alias), []).append(key)
        values = {
            f"k{index}": list(dict.fromkeys(ids)) for index, ids in enumerate(groups.values())
        }
        # The document depends only on the selections, in order: built and printed once, then
        # sent as text (the upstream parses a text once and keeps it).
        selections = tuple(text for text, _ in groups)
        document = self._documents.get(selections)
        if document is None:
            document = print_ast(self._document([nodes[text] for text in selections]))
            if len(self._documents) >= _MAX_DOCUMENTS:
                self._documents.clear()
            self._documents[selections] = document
        data = await context.upstreams.graphql(self.upstream).execute(document, values)
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for index, (group, _) in enumerate(groups.items()):
            items = as_list(
                data.get(f"s{index}") if isinstance(data, Mapping) else None,
                upstream=self.upstream,
                what=self.field,
            )
            by_key: dict[str, Any] = {}
            for item in items:
                if item is None:
                    continue
                if not isinstance(item, Mapping) or group[1] not in item:
                    raise UpstreamBadResponse(
                        self.upstream, f"{self.upstream} answered an item without its key"
                    )
                by_key[str(item[group[1]])] = item
            found[group] = by_key
        return [found[(text, alias)].get(str(key)) for text, alias, key in keys]
