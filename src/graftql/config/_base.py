"""Shared pieces of the configuration models: the strict base model and value checks."""

from __future__ import annotations

import ipaddress
import re

from pydantic import BaseModel, ConfigDict, ValidationError

# Header names whose values are credentials: a literal value for one of them is a config error.
SENSITIVE_HEADER = re.compile(r"authorization|cookie|api[-_]?key|token|secret|password|signature")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=True))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an IP address or network (10.0.0.0/8): {exc}") from None


_ORIGIN = re.compile(
    r"(https?)://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?", re.IGNORECASE
)


def _origin(value: str) -> str:
    """An origin as browsers send it (compared as a string): scheme and host in lower case,
    no default port."""
    if value == "*":
        return value
    match = _ORIGIN.fullmatch(value)
    if match is None or int(match.group(3) or 0) > 65535:
        raise ValueError(
            f"{value!r} is not an origin: scheme://host[:port] with no path, e.g. "
            "'https://app.example.com', or '*'"
        )
    scheme, host, port = match.group(1).lower(), match.group(2).lower(), match.group(3)
    default = {"http": "80", "https": "443"}[scheme]
    return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")


def _header_name(value: str) -> str:
    if value != "*" and not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", value):
        raise ValueError(f"{value!r} is not a header name")
    return value


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s?#]+", value):
        raise ValueError("must be an absolute http:// or https:// URL")
    return value


def key_error(
    model: str, loc: tuple[str | int, ...], message: str, value: object
) -> ValidationError:
    """A validation error for a key below the model being checked (its path is ``loc``)."""
    return ValidationError.from_exception_data(
        model,
        [{"type": "value_error", "loc": loc, "input": value, "ctx": {"error": message}}],
    )
