"""What production tells clients about failures: little, and nothing to guess names from.

- ``MaskUnexpectedErrors``: an unexpected error (a bug) reaches the client as
  ``"Unexpected error."`` with ``extensions: {code: INTERNAL_SERVER_ERROR, correlation_id}``;
  the same id is in the log line that carries the traceback (``log_unexpected_error``), so a
  user's report leads to the stack trace.
- ``NoSuggestionsExecutionContext``: errors raised while the variables are coerced (an enum
  value that does not exist) carry no "Did you mean ...?" either; validation messages are
  handled by ``CheckedDocuments`` (``hide_suggestions``).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from graphql import GraphQLError
from graphql.execution import Executor
from strawberry.extensions import MaskErrors

from graftql.errors import GraftqlError
from graftql.schema.executor import LeanExecutionContext

__all__ = [
    "MaskUnexpectedErrors",
    "NoSuggestionsExecutionContext",
    "correlation_id",
    "is_unexpected_error",
    "log_unexpected_error",
]

# Strawberry's own logger for errors in execution: operators who filter on it keep seeing bugs.
_logger = logging.getLogger("strawberry.execution")

_ATTRIBUTE = "_graftql_correlation_id"


def is_unexpected_error(error: GraphQLError) -> bool:
    """A resolver's bug rather than a reported condition: production shows a generic message.

    Syntax and validation errors have no ``original_error``; graftql's own errors and a
    ``GraphQLError`` a resolver raises on purpose carry messages written for clients. Anything
    else may carry internals.
    """
    original = error.original_error
    return original is not None and not isinstance(original, GraftqlError | GraphQLError)


def correlation_id(error: GraphQLError) -> str:
    """The error's id, made on first use: 16 hex digits, unguessable, one per occurrence."""
    found: str | None = getattr(error, _ATTRIBUTE, None)
    if found is None:
        found = secrets.token_hex(8)
        setattr(error, _ATTRIBUTE, found)
    return found


def log_unexpected_error(error: GraphQLError) -> None:
    """One ERROR line with the correlation id, the path and the traceback."""
    identifier = correlation_id(error)
    _logger.error(
        "Unexpected error %s at %s: %s",
        identifier,
        ".".join(map(str, error.path)) if error.path else "(no path)",
        error.message,
        exc_info=error.original_error,
        extra={"correlation_id": identifier},
    )


class MaskUnexpectedErrors(MaskErrors):
    """Production's masking: unexpected errors become ``"Unexpected error."`` with a code and
    the correlation id of their log line; every other error is shown as it is."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=is_unexpected_error)

    def _process_result(self, result: object) -> None:
        # strawberry's check is an isinstance against a runtime-checkable Protocol, ~10 us; a
        # result without errors (nearly every subscription event) needs no check at all.
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        return GraphQLError(
            message=self.error_message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR", "correlation_id": correlation_id(error)},
        )


class NoSuggestionsExecutionContext(LeanExecutionContext):
    """Strawberry's executor, with graphql-core's ``hide_suggestions`` always on."""

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> list[GraphQLError] | Executor[Any]:
        kwargs["hide_suggestions"] = True
        return super().build(*args, **kwargs)
