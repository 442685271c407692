"""Which client headers may reach an upstream: the names that never may, and the checks.

Hop-by-hop headers describe one connection, not the request (RFC 9110 section 7.6.1), and
``Host`` / ``Content-Length`` are the gateway's own to set: forwarding any of them from a client
could split or misroute the upstream request. Identity headers (``x-user-id`` ...) are what an
upstream may trust as "the gateway says who this is": a client's own value must never pass.
"""

from __future__ import annotations

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "host",
        "content-length",
    }
)

# Headers upstreams commonly take as the authenticated user; a client's values are dropped.
DEFAULT_IDENTITY_HEADERS = (
    "x-user-id",
    "x-user-roles",
    "x-user-email",
    "x-forwarded-user",
    "x-remote-user",
)


def forwardable(names: list[str]) -> list[str]:
    """``names`` in lower case, without repeats; a hop-by-hop name is an error."""
    out: list[str] = []
    for name in names:
        lower = name.lower()
        if lower in HOP_BY_HOP:
            raise ValueError(
                f"{name!r} is a hop-by-hop or connection header and is never forwarded"
            )
        if lower not in out:
            out.append(lower)
    return out


def identity_problem(names: list[str], identity: list[str]) -> str | None:
    """Why ``names`` may not be forwarded when one is an identity header, else None."""
    taken = [name for name in names if name in identity]
    if not taken:
        return None
    return (
        f"{', '.join(taken)} is an identity header (identity_headers): a client's value is "
        "never forwarded, only one the gateway sets itself"
    )
