"""Logging for a gateway process: JSON lines or text, one line per operation, and secrets
masked in every record.

``configure_logging(config, level)`` is what ``graftql serve`` does (``create_app`` alone
configures nothing): one handler on the root logger, on stderr, for graftql's records and every
library's, uvicorn's access log included. The handler's filters add the request id
(``server/request_id.py``) to every record and mask secrets in every record
(``RedactSecrets``), whoever logged it and however (message, arguments, traceback).

``log_operation`` writes the line per GraphQL operation on the ``graftql.operations`` logger
(INFO): type, name, outcome, duration and what each upstream was asked.

``log_audit_event`` is the audit trail of upstream credentials, on the ``graftql.audit`` logger:
one line per token fetch or refresh, per 401/403 from an upstream, per secret re-read — with
the upstream, the principal (when the operation has one) and the outcome, never a secret.
"""

from __future__ import annotations

import datetime
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from typing import IO, Any
from urllib.parse import quote, quote_plus

import orjson
from pydantic import BaseModel

from graftql.config import GatewayConfig, Secret
from graftql.schema.observe import OperationReport
from graftql.server.request_id import request_id
from graftql.upstreams import events

__all__ = [
    "JsonFormatter",
    "RedactSecrets",
    "RequestIdFilter",
    "TextFormatter",
    "audit_upstream_credentials",
    "configure_logging",
    "log_audit_event",
    "log_operation",
    "secret_values",
]

operations_logger = logging.getLogger("graftql.operations")
audit_logger = logging.getLogger("graftql.audit")

_MASK = "***"
# A secret shorter than this is not searched for: it would mask ordinary words everywhere.
_MIN_SECRET = 4
# A bearer token anywhere, whatever it is for; also percent- or form-encoded in a URL (a
# GraphiQL link with ?headers=..., an access log line).
_BEARER = re.compile(r"(?i)(?<![a-z])(bearer(?:\s+|%20|\+))[A-Za-z0-9\-._~+/]+=*")
# Header-like values masked to the end of the line or quote: "Authorization: Basic ...",
# "'cookie': 'a=b; c=d'", "Set-Cookie: ...".
_WHOLE_VALUE = re.compile(
    r"(?i)(\b(?:proxy-)?authorization|\b(?:set-)?cookie)([\"']?\s*[:=]\s*[\"']?)([^\"'\r\n]+)"
)
# Credentials as key=value or "key": "value": query strings, forms, JSON, dict reprs.
_KEY_VALUE = re.compile(
    r"(?i)(\b(?:x-)?api[-_]?key|\bapikey|\baccess[-_]token|\brefresh[-_]token|\bid[-_]token"
    r"|\bclient[-_]secret|\bpassword|\bpasswd|\bsecret|\btoken)"
    r"([\"']?\s*[:=]\s*[\"']?)([^\"'\s&,;}\]]+)"
)
# user:password@ in a URL.
_USERINFO = re.compile(r"(://[^/\s:@]*:)[^@\s/]+@")
# Text none of the patterns above can match is left alone after this one search: most records.
_MAYBE = re.compile(r"(?i)bearer|authorization|cookie|api[-_]?key|token|secret|passw|://[^/\s:@]*:")


def _keep_mask(match: re.Match[str]) -> str:
    return f"{match.group(1)}{match.group(2)}{_MASK}"


def secret_values(config: Any) -> set[str]:
    """Every ``Secret`` value in a loaded configuration (any model, mapping or list in it)."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, Secret):
            found.add(value.reveal())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple | set | frozenset):
            for item in value:
                walk(item)

    walk(config)
    return found


class RedactSecrets(logging.Filter):
    """Masks secrets in every record that passes the handler it is added to: the configured
    ``Secret`` values (also percent-encoded), bearer tokens, ``Authorization``, ``Cookie`` and
    ``Set-Cookie`` values, API keys, tokens, passwords and client secrets written as
    ``key=value`` or ``"key": "value"``, and passwords in URLs. The message, its arguments,
    the traceback, the stack and graftql's structured fields are masked; the record is changed
    in place (its ``args`` are merged into ``msg``)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._variants: set[str] = set()
        self._secrets: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Mask these secrets too (a configuration reload brings rotated ones)."""
        for secret in secrets:
            if len(secret) >= _MIN_SECRET:
                self._variants.update((secret, quote(secret, safe=""), quote_plus(secret)))
        # Longest first, so a secret that contains another is masked whole.
        ordered = sorted(self._variants, key=len, reverse=True)
        self._secrets = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    @classmethod
    def from_config(cls, config: GatewayConfig) -> RedactSecrets:
        return cls(secret_values(config))

    def redact(self, text: str) -> str:
        if self._secrets is not None:
            text = self._secrets.sub(_MASK, text)
        if _MAYBE.search(text) is None:
            return text
        text = _BEARER.sub(lambda match: match.group(1) + _MASK, text)
        text = _WHOLE_VALUE.sub(_keep_mask, text)
        text = _KEY_VALUE.sub(_keep_mask, text)
        return _USERINFO.sub(lambda match: f"{match.group(1)}{_MASK}@", text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = _EXCEPTIONS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        fields = getattr(record, "graftql", None)
        if isinstance(fields, dict):
            record.graftql = {
                key: self.redact(value) if isinstance(value, str) else value
                for key, value in fields.items()
            }
        return True


_EXCEPTIONS = logging.Formatter()


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (or None) to every record: the request it was logged for."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
    ``request_id`` when there is one, ``trace_id`` and ``span_id`` when tracing is on and a
    span is current, graftql's structured fields, ``exception`` and ``stack``
    when there are."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid is not None:
            line["request_id"] = rid
        trace_id = getattr(record, "trace_id", None)
        if trace_id is not None:  # tracing on, and a span current (server/tracing.py)
            line["trace_id"] = trace_id
            line["span_id"] = getattr(record, "span_id", None)
        fields = getattr(record, "graftql", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """``2026-11-27 16:56:08,130 INFO graftql.operations: query Order ok 12.3 ms`` followed by
    graftql's structured fields as ``key=value`` and the request id."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        fields = getattr(record, "graftql", None)
        if isinstance(fields, dict):
            shown = (
                f"{key}={value if isinstance(value, str) else orjson.dumps(value).decode()}"
                for key, value in fields.items()
                if key in _TEXT_FIELDS
            )
            text = f"{text} {' '.join(shown)}"
        rid = getattr(record, "request_id", None)
        if rid is not None:
            text = f"{text} request_id={rid}"
        trace_id = getattr(record, "trace_id", None)
        if trace_id is not None:
            text = f"{text} trace_id={trace_id}"
        return text


# What the text line adds to the message (the message already says type, name, outcome, time).
_TEXT_FIELDS = frozenset({"upstreams"})


def configure_logging(
    config: GatewayConfig, level: str = "info", *, stream: IO[str] | None = None
) -> logging.Handler:
    """Send every record to ``stream`` (stderr) in ``server.log_format``, at ``level``, with
    the request id added and secrets masked. Replaces the root logger's handlers."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if config.server.json_logs else TextFormatter())
    handler.addFilter(RequestIdFilter())
    if config.server.tracing.enabled:
        try:
            from graftql.server.tracing import TraceIdFilter
        except ImportError:  # create_app says why tracing cannot start
            pass
        else:
            handler.addFilter(TraceIdFilter())
    handler.addFilter(RedactSecrets.from_config(config))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


def log_operation(report: OperationReport) -> None:
    """The line for one operation, e.g. ``query Order ok 12.3 ms`` with the fields
    ``operation``, ``type``, ``outcome``, ``duration_ms`` and ``upstreams``."""
    if not operations_logger.isEnabledFor(logging.INFO):
        return
    ms = round(report.seconds * 1000, 1)
    operations_logger.info(
        "%s %s %s %.1f ms",
        report.type,
        report.name or "-",
        report.outcome,
        ms,
        extra={
            "graftql": {
                "operation": report.name,
                "type": report.type,
                "outcome": report.outcome,
                "duration_ms": ms,
                "upstreams": report.upstreams,
            }
        },
    )


# The upstream events that make the audit trail (upstreams/events.py), and what each line adds.
_AUDITED: dict[str, tuple[str, ...]] = {
    "token": ("trigger",),  # an OAuth2 token fetch: outcome fetched | failed
    "auth_rejected": ("status", "method"),  # the upstream answered 401 or 403
    "secret_reload": ("key",),  # a file: secret read again: changed | unchanged | failed
}


def log_audit_event(event: str, upstream: str, fields: dict[str, Any]) -> None:
    """An events listener: one ``graftql.audit`` line per credential event, e.g. ``token
    payments fetched trigger=expiring`` with the fields ``audit``, ``upstream``,
    ``outcome``, ``principal`` and the event's own. Failures and rejections are WARNING."""
    extra = _AUDITED.get(event)
    if extra is None:
        return
    outcome = str(fields.get("outcome", "rejected"))
    level = logging.WARNING if outcome in ("failed", "rejected") else logging.INFO
    if not audit_logger.isEnabledFor(level):
        return
    details = " ".join(f"{key}={fields[key]}" for key in extra if fields.get(key) is not None)
    audit_logger.log(
        level,
        "%s %s %s%s",
        event,
        upstream,
        outcome,
        f" {details}" if details else "",
        extra={
            "graftql": {
                "audit": event,
                "upstream": upstream,
                "outcome": outcome,
                "principal": fields.get("principal"),
                **{key: fields.get(key) for key in extra},
            }
        },
    )


def audit_upstream_credentials() -> None:
    """Log the audit events from now on (once per process, however many apps are made)."""
    events.unlisten(log_audit_event)
    events.listen(log_audit_event)
