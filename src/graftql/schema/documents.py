"""``CheckedDocuments``: parse, enforce ``server.limits`` and validate, with one cache for all.

It replaces strawberry's ``ParserCache`` and ``ValidationCache``, for three reasons:

- **Limits before validation.** graphql-core's validation is itself work an attacker can
  cause (overlapping-fields checks grow with the square of a selection's size), so an
  operation over a limit is refused before it is validated, and never runs.
- **No bypass, little cost.** The cache keeps, per query text, the parsed document, its
  measurements and its validation errors. The byte limit is checked on every request before
  the cache is consulted; a cached document is measured once, and its numbers are compared
  with the limits on every request (a few integer comparisons). The measurements depend on
  variables only where ``first``/``last``/``limit`` is a variable; those are cached per value.
  Keying by the text also spares strawberry's ``ValidationCache`` habit of hashing the whole
  document tree on every request.
- **Every transport.** A document that cannot be parsed (or is over the byte or token limit)
  is reported at validation, not by raising from ``on_parse``: strawberry's streaming path,
  which serves WebSocket operations, lets an exception from an ``on_parse`` hook escape.

The cache is bounded by entries and by the total length of the texts it holds (a parsed
document takes about 100 times its text's size in memory).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    NameNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
    validate,
)
from graphql import OperationType as AstOperationType
from graphql.language.parser import MAX_NESTING_DEPTH
from strawberry.extensions import SchemaExtension
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from graftql.config import LimitsConfig
from graftql.schema.limits import (
    Measurements,
    OperationLimitExceeded,
    exceeded,
    list_size_of,
    measure,
    size_variables,
)

__all__ = ["CheckedDocuments", "DocumentChecker", "stand_in"]

# Sized for the distinct documents a real client fleet sends; beyond it the oldest are parsed
# again. The text budget bounds memory when the documents are large.
_MAX_ENTRIES = 1024
_MAX_CACHED_CHARS = 2 * 1024 * 1024
# Measurements (one per distinct page size, say) and validation results (one per set of rules)
# kept per document.
_MAX_VARIANTS = 32

_ABSENT = object()

_Rules = tuple[type[ASTValidationRule], ...]


@dataclass(slots=True)
class _Document:
    """A parsed document and what has been worked out about it so far."""

    document: DocumentNode
    size_variables: tuple[str, ...]
    measurements: dict[tuple[Any, ...], Measurements] = field(default_factory=dict)
    validation: dict[_Rules, list[GraphQLError]] = field(default_factory=dict)


class _Cache:
    """An LRU of ``_Document`` by query text, bounded by entries and total text length.
    Thread-safe: ``execute_sync`` may run in worker threads."""

    def __init__(self, max_entries: int, max_chars: int) -> None:
        self._entries: OrderedDict[str, _Document] = OrderedDict()
        self._chars = 0
        self._max_entries = max_entries
        self._max_chars = max_chars
        self._lock = threading.Lock()

    def get(self, query: str) -> _Document | None:
        with self._lock:
            entry = self._entries.get(query)
            if entry is not None:
                self._entries.move_to_end(query)
            return entry

    def put(self, query: str, entry: _Document) -> None:
        if len(query) > self._max_chars // 8:  # one huge document must not flush the rest
            return
        with self._lock:
            if query in self._entries:
                return
            self._entries[query] = entry
            self._chars += len(query)
            while len(self._entries) > self._max_entries or self._chars > self._max_chars:
                oldest, _ = self._entries.popitem(last=False)
                self._chars -= len(oldest)

    def __len__(self) -> int:
        return len(self._entries)


class DocumentChecker:
    """What ``CheckedDocuments`` does, with the state that outlives a request: the limits, the
    cache, and whether validation messages may suggest names. One per built schema."""

    def __init__(self, limits: LimitsConfig, *, hide_suggestions: bool) -> None:
        self.limits = limits
        self.hide_suggestions = hide_suggestions
        self.cache = _Cache(_MAX_ENTRIES, _MAX_CACHED_CHARS)

    def parse(self, query: str) -> _Document | GraphQLError:
        """The query's document (from the cache when possible), or the error that refuses it."""
        limits = self.limits
        maximum = limits.max_document_bytes
        # UTF-8 takes 1 to 4 bytes a character: only encode when the length cannot decide.
        if maximum is not None and len(query) * 4 > maximum:
            size = len(query.encode("utf-8", "surrogatepass"))
            if size > maximum:
                return OperationLimitExceeded(
                    "max_document_bytes",
                    maximum,
                    size,
                    f"the document's size {size} bytes exceeds the limit of {maximum}",
                ).as_graphql_error()
        entry = self.cache.get(query)
        if entry is not None:
            return entry
        try:
            document = parse(query, max_tokens=limits.max_tokens)
        except GraphQLSyntaxError as error:
            return self._parse_error(error)
        entry = _Document(document, size_variables(document))
        self.cache.put(query, entry)
        return entry

    def _parse_error(self, error: GraphQLSyntaxError) -> GraphQLError:
        limits = self.limits
        # graphql-core says which of its limits stopped the parser only in the message;
        # tests/unit/test_operation_limits.py fails if an upgrade changes the wording.
        if limits.max_tokens is not None and "Document contains more than" in error.message:
            return OperationLimitExceeded(
                "max_tokens",
                limits.max_tokens,
                None,
                f"the document's token count exceeds the limit of {limits.max_tokens}",
            ).as_graphql_error()
        if limits.max_depth is not None and "Document is nested too deeply" in error.message:
            return OperationLimitExceeded(
                "max_depth",
                limits.max_depth,
                None,
                f"the document nests more than {MAX_NESTING_DEPTH} levels deep; the operation's "
                f"depth limit is {limits.max_depth}",
            ).as_graphql_error()
        return error

    def check(
        self,
        schema: GraphQLSchema,
        entry: _Document,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        rules: _Rules,
    ) -> list[GraphQLError]:
        """The limit errors of the operation that will run, else the validation errors."""
        found = _operation(entry.document, operation_name)
        if found is not None:
            index, operation = found
            # Only a mapping is a valid variables object; anything else fails coercion later.
            given = variables if isinstance(variables, Mapping) else {}
            key = (
                index,
                *(
                    list_size_of(given[name]) if name in given else _ABSENT
                    for name in entry.size_variables
                ),
            )
            measured = entry.measurements.get(key)
            if measured is None:
                measured = measure(
                    schema,
                    entry.document,
                    operation,
                    list_size=self.limits.list_size,
                    variables=given,
                )
                if len(entry.measurements) < _MAX_VARIANTS:
                    entry.measurements[key] = measured
            errors = exceeded(measured, self.limits)
            if errors:
                return [error.as_graphql_error() for error in errors]
        if not rules:  # validation turned off (strawberry's DisableValidation)
            return []
        cached = entry.validation.get(rules)
        if cached is None:
            cached = validate(
                schema,
                entry.document,
                (*rules, MaybeNullValidationRule, OneOfInputValidationRule),
                hide_suggestions=self.hide_suggestions,
            )
            # A rule made per request (a class per extension instance) must not grow this.
            if len(entry.validation) < _MAX_VARIANTS:
                entry.validation[rules] = cached
        return list(cached)


def _operation(
    document: DocumentNode, name: str | None
) -> tuple[int, OperationDefinitionNode] | None:
    """The operation strawberry will run: the one named, else the first."""
    for index, definition in enumerate(document.definitions):
        if isinstance(definition, OperationDefinitionNode) and (
            name is None or (definition.name is not None and definition.name.value == name)
        ):
            return index, definition
    return None


def stand_in(context: ExecutionContext) -> DocumentNode:
    """A one-field document with the operation name and an operation type the request
    allows: it carries a refused request through strawberry's operation-type check to
    validation, where ``CheckedDocuments`` reports the refusal. It never runs."""
    allowed = set(context.allowed_operations)
    kind = OperationType.QUERY if OperationType.QUERY in allowed else next(iter(allowed))
    name = context.operation_name  # the client's, since there is no document yet
    return DocumentNode(
        definitions=(
            OperationDefinitionNode(
                operation=AstOperationType(kind.value),
                name=NameNode(value=name) if name is not None else None,
                variable_definitions=(),
                directives=(),
                selection_set=SelectionSetNode(
                    selections=(FieldNode(name=NameNode(value="__typename")),)
                ),
            ),
        )
    )


class CheckedDocuments(SchemaExtension):
    """Parse (cached), refuse an operation over ``server.limits``, validate (cached).

    Pass it as a factory around one ``DocumentChecker``:
    ``lambda: CheckedDocuments(checker)``.
    """

    def __init__(self, checker: DocumentChecker) -> None:
        self._checker = checker
        self._entry: _Document | None = None
        self._refused: GraphQLError | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query:
            parsed = self._checker.parse(context.query)
            if isinstance(parsed, GraphQLError):
                self._refused = parsed
                context.graphql_document = stand_in(context)
            else:
                self._entry = parsed
                context.graphql_document = parsed.document
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if self._refused is not None:
            context.pre_execution_errors = [self._refused]
        elif context.pre_execution_errors is None and context.graphql_document is not None:
            entry = self._entry
            if entry is None or entry.document is not context.graphql_document:
                # Another extension supplied the document: check it, without caching.
                document = context.graphql_document
                entry = _Document(document, size_variables(document))
            context.pre_execution_errors = self._checker.check(
                context.schema._schema,
                entry,
                context.operation_name,
                context.variables,
                tuple(context.validation_rules),
            )
        yield
