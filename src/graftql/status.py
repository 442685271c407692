"""``graftql status --url http://...``: a running gateway's ``/readyz``, as a table for a person.

Exit status: 0 ready, 1 not ready (a required upstream is down), 3 no usable answer (nothing
listens there, a timeout, or not a graftql ``/readyz``). Keys the table has no column for (a
backend added by a later feature) are printed too, so the command never hides what ``/readyz``
says. The backends beside the upstreams (``redis``, ``cache``, ``bus``, ``inbox``) and the
``realtime`` note follow the table, one line each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TextIO

import httpx

__all__ = ["EXIT_NOT_READY", "EXIT_NO_ANSWER", "fetch_status", "render_status"]

EXIT_NOT_READY = 1
EXIT_NO_ANSWER = 3

# Columns in order: (heading, key in an upstream's entry).
_COLUMNS = (
    ("UPSTREAM", None),
    ("STATUS", "status"),
    ("REQUIRED", "required"),
    ("KIND", "kind"),
    ("BREAKER", "breaker"),
    ("LATENCY", "latency_ms"),
    ("QUOTA", "quota"),
    ("TOKEN", "token"),
    ("LAST OK", "last_success"),
    ("LAST FAILURE", "last_failure"),
    ("DETAIL", "detail"),
)
_SHOWN = {key for _, key in _COLUMNS if key is not None}


def fetch_status(url: str, timeout: float = 10.0) -> tuple[int, Mapping[str, Any]]:
    """GET ``<url>/readyz``: (HTTP status, body). Raises ``ValueError`` with a sentence for a
    person when there is no usable answer."""
    target = url.rstrip("/") + "/readyz"
    try:
        response = httpx.get(target, timeout=timeout, follow_redirects=False)
    except httpx.TimeoutException:
        raise ValueError(f"{target}: no answer within {timeout:g}s") from None
    except httpx.HTTPError as exc:
        raise ValueError(f"{target}: cannot connect ({type(exc).__name__})") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if (
        response.status_code not in (200, 503)
        or not isinstance(body, dict)
        or not isinstance(body.get("upstreams"), dict)
    ):
        raise ValueError(
            f"{target}: HTTP {response.status_code}, not a graftql readiness answer"
        ) from None
    return response.status_code, body


def _cell(key: str | None, value: Any) -> str:
    if value is None:
        return "-"
    if key == "required":
        return "yes" if value else "no"
    if key == "latency_ms" and isinstance(value, int | float):
        return f"{value:.1f} ms"
    if key == "quota" and isinstance(value, Mapping):
        remaining = value.get("remaining")
        text = f"{remaining:g}" if isinstance(remaining, int | float) else "?"
        if isinstance(value.get("limit"), int | float):
            text += f"/{value['limit']:g}"
        if isinstance(value.get("reset_in"), int | float):
            text += f" (reset in {value['reset_in']:g}s)"
        return text
    if key == "token" and isinstance(value, Mapping):
        state = str(value.get("state", "?"))
        if isinstance(value.get("expires_in_s"), int | float):
            return f"{state} ({value['expires_in_s']:.0f}s left)"
        if value.get("error"):
            return f"{state} ({value['error']})"
        return state
    if key in ("last_success", "last_failure") and isinstance(value, Mapping):
        ago = value.get("seconds_ago")
        text = f"{_ago(ago)} ago" if isinstance(ago, int | float) else str(value.get("at", "?"))
        return f"{text} {value['code']}" if value.get("code") else text
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_cell(None, v)}" for k, v in value.items())
    return str(value)


def _ago(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def render_status(url: str, http_status: int, body: Mapping[str, Any], out: TextIO) -> bool:
    """Write the table; True when the gateway is ready."""
    ready = http_status == 200 and body.get("status") == "ready"
    out.write(f"graftql at {url}: {'READY' if ready else 'NOT READY'}\n\n")
    upstreams: Mapping[str, Any] = body.get("upstreams", {})
    rows = [[heading for heading, _ in _COLUMNS]]
    extras: list[str] = []
    for name, entry in upstreams.items():
        entry = entry if isinstance(entry, Mapping) else {}
        rows.append([name, *(_cell(key, entry.get(key)) for _, key in _COLUMNS[1:])])
        more = {k: v for k, v in entry.items() if k not in _SHOWN}
        if more:
            extras.append(f"  {name}: " + ", ".join(f"{k}={_cell(k, v)}" for k, v in more.items()))
    if len(rows) == 1:
        out.write("no upstreams configured\n")
    else:
        widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
        for row in rows:
            cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            out.write("  ".join(cells).rstrip() + "\n")
    if extras:
        out.write("\n" + "\n".join(extras) + "\n")
    others = {k: v for k, v in body.items() if k not in ("status", "upstreams")}
    if others:
        out.write("\n")
        for key, value in others.items():
            out.write(f"{key}: {_cell(key, value)}\n")
    if not ready:
        down = [
            name
            for name, entry in upstreams.items()
            if isinstance(entry, Mapping) and entry.get("status") != "up" and entry.get("required")
        ]
        if down:
            out.write(f"\nnot ready: required upstream(s) down: {', '.join(down)}\n")
    return ready
