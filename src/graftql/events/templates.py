"""Topic, entity and tag templates: ``payment.{data.customerId}`` filled from a payload."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["field", "fill_template"]

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def field(payload: Any, path: str) -> Any:
    """The value at a dotted ``path`` (``data.id``); the payload itself for ""; None when a
    step is missing."""
    value = payload
    if not path:
        return value
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def fill_template(
    template: str, payload: Any, extra: Mapping[str, str] | None = None
) -> str | None:
    """``template`` with each {name} from ``extra`` or the payload; None if one is missing,
    empty, or not a string or number."""
    extra = extra or {}
    missing = False

    def one(match: re.Match[str]) -> str:
        nonlocal missing
        name = match.group(1)
        value = extra[name] if name in extra else field(payload, name)
        if isinstance(value, bool) or not isinstance(value, str | int | float) or value == "":
            missing = True
            return ""
        return str(value)

    result = _PLACEHOLDER.sub(one, template)
    return None if missing else result
