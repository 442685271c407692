"""``ObserveOperations``: one report per GraphQL operation, for the metrics and the log line.

The extension wraps the whole operation (parsing to the last result; for a subscription, its
whole life) over every transport, so HTTP and WebSocket operations are reported alike, each
exactly once, and hands an ``OperationReport`` to a callback that the server layer supplies.
It knows nothing of Prometheus or logging.

While an operation runs, a process-wide ``attempt`` listener counts the upstream attempts it
causes (``upstreams``: ``{"crm": {"calls": 2, "errors": 1}}``). An attempt is counted for the
operation whose task started it; a call shared by in-flight dedup counts for the operation that
started it, not for those that joined it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from graftql.upstreams import events

__all__ = [
    "ObserveOperations",
    "OperationReport",
    "Outcome",
    "operation_name",
    "operation_outcome",
    "operation_type",
]

Outcome = Literal["ok", "error", "request_error"]

# Per upstream: [calls, errors]. A list, not a dict of dicts: the listener runs per attempt.
_Calls = dict[str, list[int]]
logger = logging.getLogger("graftql.operations")
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,127}")  # a GraphQL name (of a sane length)
_calls: ContextVar[_Calls | None] = ContextVar("graftql_operation_calls", default=None)


@dataclass(slots=True)
class OperationReport:
    """What one operation was and how it went.

    ``type`` is ``query``, ``mutation``, ``subscription``, or ``unknown`` when the document
    was refused before it was parsed, did not parse, or names no operation. ``outcome``:
    ``ok`` (ran, no errors), ``error`` (ran, with errors in the result), ``request_error``
    (nothing ran: the document did not parse or validate, the variables did not coerce, a
    limit or the rate limit refused it).
    ``name`` is the client's ``operationName`` or the operation's own name, if any (None when
    it is not a GraphQL name).
    """

    type: str
    name: str | None
    outcome: Outcome
    seconds: float
    upstreams: dict[str, dict[str, int]] = field(default_factory=dict)


def _count_attempt(event: str, upstream: str, fields: dict[str, Any]) -> None:
    if event != "attempt":
        return
    calls = _calls.get()
    if calls is None:
        return
    counts = calls.get(upstream)
    if counts is None:
        counts = calls[upstream] = [0, 0]
    counts[0] += 1
    if fields.get("outcome") != "ok":
        counts[1] += 1


def count_upstream_calls() -> None:
    """Listen for attempts (once per process, however many schemas are built)."""
    events.unlisten(_count_attempt)
    events.listen(_count_attempt)


class ObserveOperations(SchemaExtension):
    """Times the operation and reports it to ``report`` when it ends.

    Pass it as a factory (strawberry makes extensions per operation), first among the
    schema's extensions, so that it sees every operation, those refused by the others too:
    ``lambda: ObserveOperations(report)``. ``report`` runs in the operation's task, so it can
    read the request's context variables; it must be quick (if it raises, the error is logged).
    """

    def __init__(self, report: Callable[[OperationReport], None]) -> None:
        self._report = report

    def on_operation(self) -> Iterator[None]:
        calls: _Calls = {}
        token = _calls.set(calls)
        started = time.perf_counter()
        outcome: Outcome = "request_error"
        try:
            yield
        except (GeneratorExit, asyncio.CancelledError):
            # A subscription the client ended, or a request whose client went away.
            outcome = "ok" if self._type() == "subscription" else "error"
            raise
        except Exception:
            # Strawberry's own refusals (no operation by that name, a mutation over GET) and
            # an extension that raised: nothing ran.
            outcome = "request_error"
            raise
        else:
            outcome = self._outcome()
        finally:
            try:
                _calls.reset(token)
            except ValueError:  # a subscription closed from another context (at shutdown)
                pass
            report = OperationReport(
                type=self._type(),
                name=self._name(),
                outcome=outcome,
                seconds=time.perf_counter() - started,
                upstreams={
                    name: {"calls": counts[0], "errors": counts[1]}
                    for name, counts in calls.items()
                },
            )
            try:
                self._report(report)
            except Exception:  # observing must never fail the operation
                logger.exception("reporting an operation failed")

    def _name(self) -> str | None:
        return operation_name(self.execution_context)

    def _type(self) -> str:
        return operation_type(self.execution_context)

    def _outcome(self) -> Outcome:
        return operation_outcome(self.execution_context)


def operation_name(context: ExecutionContext) -> str | None:
    """The client's ``operationName`` or the operation's own, when it is a GraphQL name."""
    # The client's operationName may be anything until it matched an operation.
    name = context.operation_name
    return name if name is not None and _NAME.fullmatch(name) else None


def operation_type(context: ExecutionContext) -> str:
    """``query``, ``mutation``, ``subscription``, or ``unknown`` (see ``OperationReport``)."""
    document = context.graphql_document
    # Without a source location it was not parsed from the request: the stand-in that
    # carries a refusal (syntax error, a limit, the rate limit) to validation.
    if document is None or document.loc is None:
        return "unknown"
    try:
        kind: OperationType = context.operation_type
    except Exception:  # no operation by that name, or several and none chosen
        return "unknown"
    return kind.value


def operation_outcome(context: ExecutionContext) -> Outcome:
    """How a finished operation went (see ``OperationReport``)."""
    result = context.result
    # Strawberry keeps the errors of any result here (of every event, for a subscription).
    errors = context.pre_execution_errors or (result.errors if result is not None else None)
    if not errors:
        return "ok"
    # The HTTP transport's test for a 400: no data and no error with a path.
    if (result is None or result.data is None) and all(e.path is None for e in errors):
        return "request_error"
    return "error"
