"""``GatewaySchema``: the unified schema as code, turned into a ``strawberry.Schema``.

A schema module describes *what* the gateway serves (types, resolvers, named loaders); the
configuration decides *how* it is served. So the strawberry schema is built by the gateway, with
the extensions that the configuration asks for: parsing, the operation limits and validation
(cached) always; introspection off, unexpected errors masked (with a correlation id) and no
"Did you mean ...?" suggestions in production.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import strawberry
from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    GraphQLCompositeType,
    GraphQLError,
    GraphQLField,
    GraphQLSchema,
    ValidationRule,
)
from graphql.type.introspection import (
    SchemaMetaFieldDef,
    TypeMetaFieldDef,
    TypeNameMetaFieldDef,
)
from starlette.websockets import WebSocket
from strawberry.extensions import AddValidationRules, SchemaExtension
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from graftql.config import ServerConfig
from graftql.errors import ConfigError, GraftqlError
from graftql.resolvers import Context, LoaderRegistry
from graftql.resolvers.delegation import install_upstream_resolvers
from graftql.schema.documents import CheckedDocuments, DocumentChecker
from graftql.schema.executor import LeanExecutionContext, install_direct_resolvers
from graftql.schema.explain import Explain, explain_enabled, listen_for_calls
from graftql.schema.masking import (
    MaskUnexpectedErrors,
    NoSuggestionsExecutionContext,
    is_unexpected_error,
    log_unexpected_error,
)
from graftql.schema.observe import ObserveOperations, OperationReport, count_upstream_calls
from graftql.schema.ratelimit import OperationRateLimited, rate_limit_extensions
from graftql.schema.subscriptions import ObserveSubscriptions, SubscriptionObserver
from graftql.upstreams import caller, deadline

__all__ = ["GatewaySchema", "is_unexpected_error", "load_schema"]

logger = logging.getLogger("graftql.errors")


class _OperationContext(SchemaExtension):
    """Operations on one WebSocket share the connection's Context; give each its own copy
    (fresh loaders) so batches and per-key caches never span operations. Tells the upstream
    layer who the operation runs for (``upstreams.caller``), for forwarding and cache scope."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        if not isinstance(context, Context):
            yield
            return
        if isinstance(context.request, WebSocket):
            context = self.execution_context.context = context.for_operation()
        token = caller.start(context.caller())
        try:
            yield
        finally:
            caller.reset(token)


class _Deadline(SchemaExtension):
    """Every query and mutation gets a deadline (``server.request_timeout``, or the operation's
    entry in ``server.operation_timeouts``), whatever the transport: every upstream call made
    for it inherits what is left. A subscription lives as long as its client wants; its
    upstream calls are bounded by their own timeouts."""

    def __init__(self, server: ServerConfig) -> None:
        self._default = server.request_timeout
        self._per_operation = server.operation_timeouts

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        if context.operation_type is OperationType.SUBSCRIPTION:
            yield
            return
        name = context.operation_name
        seconds = self._per_operation.get(name, self._default) if name else self._default
        token = deadline.start(seconds)
        try:
            yield
        finally:
            deadline.reset(token)


def _trusted_documents(trusted: frozenset[str]) -> type[ASTValidationRule]:
    """A validation rule: the document's text must be one of the trusted documents (by
    sha256). Validation, so that HTTP and WebSocket report it alike, before anything runs."""

    class TrustedDocuments(ASTValidationRule):
        def enter_document(self, node: DocumentNode, *_args: Any) -> None:
            source = node.loc.source.body if node.loc is not None else ""
            if hashlib.sha256(source.encode("utf-8")).hexdigest() not in trusted:
                self.report_error(
                    GraphQLError(
                        "only trusted documents may run here: send the operation's id from "
                        "the manifest",
                        extensions={"code": "OPERATION_NOT_TRUSTED"},
                    )
                )

    return TrustedDocuments


class _Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # A reported condition (an upstream down, a bad argument, an operation over a limit) is
        # one log line, not a stack trace per field; a bug keeps its traceback, with the
        # correlation id that production shows the client instead of the message.
        others = []
        for error in errors:
            original = error.original_error
            if isinstance(original, OperationRateLimited):
                continue  # the limiter reports refusals every 30 s, not one line each
            if isinstance(original, GraftqlError):
                detail = getattr(original, "detail", "")
                logger.warning(
                    "%s%s: %s%s%s",
                    original.code,
                    f" at {'.'.join(map(str, error.path))}" if error.path else "",
                    original.message,
                    # The cause's type only: its message may carry a URL with a query credential.
                    f" ({type(original.__cause__).__name__})" if original.__cause__ else "",
                    f"; upstream said: {detail}" if detail else "",
                )
            elif is_unexpected_error(error):
                log_unexpected_error(error)
            else:  # syntax and validation errors, GraphQLErrors raised on purpose
                others.append(error)
        super().process_errors(others, execution_context)


class GatewaySchema:
    """The unified schema: strawberry types plus the loaders its resolvers call by name.

    Point ``schema:`` in gateway.yaml at an instance of it (``mypackage.schema:schema``).
    """

    def __init__(
        self,
        query: type,
        mutation: type | None = None,
        subscription: type | None = None,
        *,
        loaders: LoaderRegistry | None = None,
        types: Sequence[type] = (),
        extensions: Sequence[type[SchemaExtension] | Callable[[], SchemaExtension]] = (),
    ) -> None:
        self.query = query
        self.mutation = mutation
        self.subscription = subscription
        self.loaders = loaders if loaders is not None else LoaderRegistry()
        self.types = tuple(types)
        self.extensions = tuple(extensions)

    def build(
        self,
        server: ServerConfig,
        *,
        trusted: frozenset[str] | None = None,
        report: Callable[[OperationReport], None] | None = None,
        outer: Sequence[Callable[[], SchemaExtension]] = (),
        subscriptions: SubscriptionObserver | None = None,
    ) -> strawberry.Schema:
        """The strawberry schema for ``server``'s mode; with ``trusted`` (sha256 hashes), only
        those documents validate; with ``report``, every operation is reported to it when it
        ends (metrics and the log line, ``schema/observe.py``); ``outer`` extensions wrap
        everything, the report too (tracing: the operation's span is current when it is
        logged); with ``subscriptions``, each subscription's start, end and events are counted
        (``schema/subscriptions.py``)."""
        # Factories, not instances: strawberry makes fresh extensions per operation. The
        # document cache lives in the checker, one per built schema, so it survives that.
        production = server.env == "production"
        checker = DocumentChecker(server.limits, hide_suggestions=production)
        extensions: list[Any] = [
            *rate_limit_extensions(server.rate_limit),  # first: a refused operation is not parsed
            lambda: CheckedDocuments(checker),
            _OperationContext,
            lambda: _Deadline(server),
            *self.extensions,
        ]
        if explain_enabled(server):
            listen_for_calls()
            extensions.append(lambda: Explain(server))
        if report is not None:  # outermost: it sees the operations the others refuse too
            count_upstream_calls()
            extensions.insert(0, lambda: ObserveOperations(report))
        if subscriptions is not None:
            extensions.append(lambda: ObserveSubscriptions(subscriptions))
        extensions[:0] = outer
        if trusted is not None:
            rule = _trusted_documents(trusted)
            extensions.append(lambda: AddValidationRules([rule]))
        if not server.introspection_enabled:
            extensions.append(lambda: AddValidationRules([_NoSchemaIntrospection]))
        if production:
            extensions.append(MaskUnexpectedErrors)
        try:
            schema = _Schema(
                query=self.query,
                mutation=self.mutation,
                subscription=self.subscription,
                types=self.types,
                extensions=extensions,
                execution_context_class=(
                    NoSuggestionsExecutionContext if production else LeanExecutionContext
                ),
            )
        except Exception as exc:  # strawberry's own words say which type or field is wrong
            reason = " ".join(str(exc).split())  # one line, as every config error
            raise ConfigError.at("schema", f"strawberry rejected the schema: {reason}") from exc
        install_upstream_resolvers(schema._schema)
        install_direct_resolvers(schema)
        if not server.introspection_enabled:
            schema._schema.__class__ = _HiddenTypesSchema
        return schema


class _NoSchemaIntrospection(ValidationRule):
    """Introspection off: ``__schema`` is refused. ``__type`` is answered ``null`` for every
    name (``_HiddenTypesSchema``), as if no such type existed: it tells nothing, and clients
    and audits that ask ``__type`` with variables (graphql-http's) still get a clean answer."""

    def enter_field(self, node: FieldNode, *_args: Any) -> None:
        if node.name.value == "__schema":
            self.report_error(
                GraphQLError(
                    "GraphQL introspection has been disabled, but the requested query "
                    "contained the field '__schema'.",
                    node,
                )
            )


def _no_type(*_args: Any, **_kwargs: Any) -> None:
    return None


_HIDDEN_TYPE = GraphQLField(TypeMetaFieldDef.type, args=TypeMetaFieldDef.args, resolve=_no_type)


class _HiddenTypesSchema(GraphQLSchema):
    """``get_field`` as graphql-core's, with ``__type`` resolving to ``null`` (a copy rather
    than a call to ``super()``: the executor calls it for every field it resolves)."""

    def get_field(self, parent_type: GraphQLCompositeType, field_name: str) -> GraphQLField | None:
        if field_name == "__schema":
            return SchemaMetaFieldDef if self.query_type is parent_type else None
        if field_name == "__type":
            return _HIDDEN_TYPE if self.query_type is parent_type else None
        if field_name == "__typename":
            return TypeNameMetaFieldDef
        try:
            return parent_type.fields[field_name]  # type: ignore[union-attr,no-any-return]
        except (AttributeError, KeyError):
            return None


def load_schema(reference: str) -> GatewaySchema:
    """Import ``package.module:attribute`` (the ``schema:`` key) and check what it names."""
    module_name, _, attribute = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError.at("schema", f"cannot import {module_name!r}: {exc}") from None
    except Exception as exc:  # the module itself failed: say where, without a traceback
        raise ConfigError.at(
            "schema", f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    found = getattr(module, attribute, None)
    if found is None:
        raise ConfigError.at("schema", f"module {module_name!r} has no attribute {attribute!r}")
    if not isinstance(found, GatewaySchema):
        raise ConfigError.at(
            "schema",
            f"{reference} is a {type(found).__name__}, not a graftql.GatewaySchema "
            "(wrap your strawberry types: GatewaySchema(query=Query, loaders=...))",
        )
    return found
