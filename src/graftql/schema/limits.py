"""Measuring an operation before it runs, and the error for one that is too large.

``measure`` walks a parsed document once and returns, for one operation, the numbers that
``server.limits`` bounds: depth, aliases, root fields, directives, fields and the estimated
cost, all counted *through* fragment spreads as if every spread were expanded. It never
expands them: each fragment is measured once, in dependency order, and a spread adds its
fragment's numbers. So a document whose expansion is exponential (``fragment A { ...B ...B }``,
``fragment B { ...C ...C }``, ...) is measured in time linear in its size, and every sum
saturates at ``SATURATED`` instead of growing without bound. A spread that closes a fragment
cycle counts nothing here; validation reports the cycle.

The cost estimate (docs/security.md has it with examples):

- every field costs 1, plus the cost of its selection;
- a list field multiplies its selection's cost by its size: the largest of its ``first``,
  ``last`` and ``limit`` arguments (a literal, or a variable's value, or the variable's
  default), else ``list_size``;
- a field that is not a list but has such an argument (a connection:
  ``orders(first: 5) { edges { node { id } } }``) passes its size to the list fields directly
  in its selection that have none of their own (``edges`` counts 5 times, not ``list_size``).

Recursion only follows the nesting of selection sets, which graphql-core's parser bounds
(``MAX_NESTING_DEPTH``), never the chain of fragment spreads, which may be as long as the
token limit allows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
)

from graftql.config import LimitsConfig
from graftql.errors import GraftqlError

__all__ = [
    "SATURATED",
    "Measurements",
    "OperationLimitExceeded",
    "exceeded",
    "list_size_of",
    "measure",
    "size_variables",
]

# Every count stops growing here: far above any sane limit, small enough to stay cheap.
SATURATED = 10**15

# The arguments that say how long a list will be.
_SIZE_ARGUMENTS = frozenset({"first", "last", "limit"})


class OperationLimitExceeded(GraftqlError):
    """An operation is larger than a ``server.limits`` key allows; it was not run.

    ``limit`` is the key (``max_depth``), ``maximum`` its configured value and ``measured``
    what the operation has (``None`` when parsing stopped before it could be counted).
    """

    code = "OPERATION_LIMIT_EXCEEDED"

    def __init__(self, limit: str, maximum: int, measured: int | None, message: str) -> None:
        super().__init__(message)
        self.limit = limit
        self.maximum = maximum
        self.measured = measured

    @property
    def extensions(self) -> dict[str, Any]:
        extensions: dict[str, Any] = {"code": self.code, "limit": self.limit, "max": self.maximum}
        if self.measured is not None:
            extensions["measured"] = self.measured
        return extensions

    def as_graphql_error(self) -> GraphQLError:
        return GraphQLError(self.message, original_error=self)


@dataclass(frozen=True, slots=True)
class Measurements:
    """One operation's numbers, fragments counted at every spread."""

    depth: int
    aliases: int
    root_fields: int
    directives: int
    fields: int
    cost: int


# What each measurement is called in a message, by the limit that bounds it.
_MEASURED: dict[str, tuple[str, str]] = {
    "max_depth": ("depth", "the operation's depth"),
    "max_aliases": ("aliases", "the operation's alias count"),
    "max_root_fields": ("root_fields", "the operation's root field count"),
    "max_directives": ("directives", "the operation's directive count"),
    "max_fields": ("fields", "the operation's field count (fragments expanded)"),
    "max_cost": ("cost", "the operation's estimated cost"),
}


def exceeded(measured: Measurements, limits: LimitsConfig) -> list[OperationLimitExceeded]:
    """Every limit the operation is over, in the order of ``server.limits``' keys."""
    errors = []
    for limit, (attribute, subject) in _MEASURED.items():
        maximum = getattr(limits, limit)
        value = getattr(measured, attribute)
        if maximum is not None and value > maximum:
            shown = f"at least {value}" if value >= SATURATED else str(value)
            errors.append(
                OperationLimitExceeded(
                    limit, maximum, value, f"{subject} {shown} exceeds the limit of {maximum}"
                )
            )
    return errors


@dataclass(slots=True)
class _Stats:
    """A selection set's numbers. Its cost, when its parent passes down a list size ``k``, is
    ``cost + k * sized_cost`` (``sized_cost``: the selections of its unsized list fields)."""

    ZERO: ClassVar[_Stats]

    depth: int = 0
    aliases: int = 0
    top_fields: int = 0  # fields at this level (through inline fragments and spreads)
    directives: int = 0
    fields: int = 0
    cost: int = 0
    sized_cost: int = 0

    def add(self, other: _Stats) -> None:
        """``other`` is spliced in at this level (an inline fragment or a spread)."""
        self.depth = max(self.depth, other.depth)
        self.aliases = _sum(self.aliases, other.aliases)
        self.top_fields = _sum(self.top_fields, other.top_fields)
        self.directives = _sum(self.directives, other.directives)
        self.fields = _sum(self.fields, other.fields)
        self.cost = _sum(self.cost, other.cost)
        self.sized_cost = _sum(self.sized_cost, other.sized_cost)


_Stats.ZERO = _Stats()


def _sum(a: int, b: int) -> int:
    total = a + b
    return total if total < SATURATED else SATURATED


def _product(a: int, b: int) -> int:
    total = a * b
    return total if total < SATURATED else SATURATED


def measure(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    *,
    list_size: int,
    variables: Mapping[str, Any] | None = None,
) -> Measurements:
    """The numbers of ``operation`` (one of ``document``'s), for ``exceeded``.

    ``variables`` only change the cost, and only where a size argument is a variable
    (``size_variables``); without them a variable's default, else ``list_size``, is used.
    """
    return _Measurer(schema, document, operation, list_size, variables).run()


def size_variables(document: DocumentNode) -> tuple[str, ...]:
    """The variables that appear as a ``first``/``last``/``limit`` argument anywhere in the
    document: only their values can change a measurement."""
    found: set[str] = set()
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode):
            for field in _fields(definition.selection_set):
                for argument in field.arguments or ():
                    value = argument.value
                    if argument.name.value in _SIZE_ARGUMENTS and isinstance(value, VariableNode):
                        found.add(value.name.value)
    return tuple(sorted(found))


def _fields(selection_set: SelectionSetNode | None) -> Iterator[FieldNode]:
    """Every field node in a selection set, nested ones included (not through spreads)."""
    stack = [selection_set] if selection_set is not None else []
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FieldNode):
                yield selection
            if isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set:
                stack.append(selection.selection_set)


class _Measurer:
    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        list_size: int,
        variables: Mapping[str, Any] | None,
    ) -> None:
        self.schema = schema
        self.operation = operation
        self.list_size = list_size
        self.variables = variables or {}
        self.defaults = {
            definition.variable.name.value: definition.default_value
            for definition in operation.variable_definitions or ()
        }
        self.fragments: dict[str, FragmentDefinitionNode] = {}
        for definition in document.definitions:
            if isinstance(definition, FragmentDefinitionNode):
                # A duplicate name is a validation error; the first one is measured.
                self.fragments.setdefault(definition.name.value, definition)
        self.done: dict[str, _Stats] = {}

    def run(self) -> Measurements:
        operation = self.operation
        for name in self._fragment_order():
            fragment = self.fragments[name]
            stats = self._selection_set(fragment.selection_set, self._type(fragment))
            stats.directives = _sum(stats.directives, len(fragment.directives or ()))
            self.done[name] = stats
        root = self.schema.get_root_type(OperationType(operation.operation))
        stats = self._selection_set(operation.selection_set, root)
        directives = len(operation.directives or ())
        for definition in operation.variable_definitions or ():
            directives += len(definition.directives or ())
        return Measurements(
            depth=stats.depth,
            aliases=stats.aliases,
            root_fields=stats.top_fields,
            directives=_sum(stats.directives, directives),
            fields=stats.fields,
            cost=_sum(stats.cost, _product(self.list_size, stats.sized_cost)),
        )

    def _fragment_order(self) -> list[str]:
        """The fragments the operation reaches, each after the fragments it spreads (an
        iterative depth-first search; a spread back into the current path is a cycle and is
        left out, so such a spread finds no numbers and counts nothing)."""
        order: list[str] = []
        state: dict[str, bool] = {}  # False: on the current path; True: placed in ``order``
        stack: list[tuple[str | None, Iterator[str]]] = [
            (None, _spreads(self.operation.selection_set))
        ]
        while stack:
            name, pending = stack[-1]
            for target in pending:
                if target not in state and target in self.fragments:
                    state[target] = False
                    stack.append((target, _spreads(self.fragments[target].selection_set)))
                    break
            else:
                stack.pop()
                if name is not None:
                    state[name] = True
                    order.append(name)
        return order

    def _type(self, fragment: FragmentDefinitionNode) -> GraphQLNamedType | None:
        return self.schema.get_type(fragment.type_condition.name.value)

    def _selection_set(
        self, selection_set: SelectionSetNode, parent: GraphQLNamedType | None
    ) -> _Stats:
        stats = _Stats()
        for selection in selection_set.selections:
            stats.directives = _sum(stats.directives, len(selection.directives or ()))
            if isinstance(selection, FieldNode):
                self._field(selection, parent, stats)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self.schema.get_type(condition.name.value) if condition else parent
                stats.add(self._selection_set(selection.selection_set, inner))
            elif isinstance(selection, FragmentSpreadNode):
                stats.add(self.done.get(selection.name.value, _Stats.ZERO))
        return stats

    def _field(self, field: FieldNode, parent: GraphQLNamedType | None, stats: _Stats) -> None:
        definition = None
        if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            definition = parent.fields.get(field.name.value)
        child_type = get_named_type(definition.type) if definition else None
        child = (
            self._selection_set(field.selection_set, child_type)
            if field.selection_set
            else _Stats.ZERO
        )
        stats.depth = max(stats.depth, child.depth + 1)
        stats.aliases = _sum(stats.aliases, child.aliases + (field.alias is not None))
        stats.top_fields = _sum(stats.top_fields, 1)
        stats.directives = _sum(stats.directives, child.directives)
        stats.fields = _sum(stats.fields, child.fields + 1)

        field_type = definition.type if definition else None
        if isinstance(field_type, GraphQLNonNull):
            field_type = field_type.of_type
        size = self._size(field, definition)
        if isinstance(field_type, GraphQLList):
            full = _sum(child.cost, _product(self.list_size, child.sized_cost))
            if size is None:  # sized by the parent (a connection), else by list_size
                stats.cost = _sum(stats.cost, 1)
                stats.sized_cost = _sum(stats.sized_cost, full)
            else:
                stats.cost = _sum(stats.cost, _sum(1, _product(size, full)))
        else:
            # A size on a field that is not a list sizes the unsized lists directly inside.
            passed = self.list_size if size is None else size
            full = _sum(child.cost, _product(passed, child.sized_cost))
            stats.cost = _sum(stats.cost, _sum(1, full))

    def _size(self, field: FieldNode, definition: GraphQLField | None) -> int | None:
        """The largest size argument given, else the largest size argument's default in the
        schema, else ``None``."""
        given = [
            self._int(argument.value)
            for argument in field.arguments or ()
            if argument.name.value in _SIZE_ARGUMENTS
        ]
        if not given and definition is not None:
            given = [
                list_size_of(argument.default_value)
                for name, argument in definition.args.items()
                if name in _SIZE_ARGUMENTS
            ]
        sizes = [size for size in given if size is not None]
        return max(sizes) if sizes else None

    def _int(self, node: ValueNode | None) -> int | None:
        if isinstance(node, VariableNode):
            name = node.name.value
            if name in self.variables:
                return list_size_of(self.variables[name])
            node = self.defaults.get(name)
        if isinstance(node, IntValueNode):
            # A literal too long to convert is a size nobody means.
            return min(max(int(node.value), 0), SATURATED) if len(node.value) < 18 else SATURATED
        return None


def list_size_of(value: Any) -> int | None:
    """A size argument's value as a list size; anything but an integer (null, or the wrong
    type, which coercion rejects later) is no size."""
    if isinstance(value, int) and not isinstance(value, bool):
        return min(max(value, 0), SATURATED)
    return None


def _spreads(selection_set: SelectionSetNode) -> Iterator[str]:
    """The names of the fragments a selection set spreads, nested selections included."""
    stack = [selection_set]
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FragmentSpreadNode):
                yield selection.name.value
            elif isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set:
                stack.append(selection.selection_set)
