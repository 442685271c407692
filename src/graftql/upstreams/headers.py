"""What of the client's request an upstream gets: allow-listed headers and, for ``forward``
auth, the client's own credential — to that upstream only, written when the request is
prepared.

Writing them into the prepared request (before the in-flight dedup key and any cache key are
taken from it) is what keeps users apart: two callers with different credentials make two
different requests, so they never share an upstream call or a cached answer. The names of the
headers that carry a forwarded credential are also put in the request's
``graftql.forwarded_credentials`` extension, for a cache that must scope by them.

Never forwarded, whatever the configuration says: hop-by-hop headers, ``Host`` and
``Content-Length`` (a config error if listed), and identity headers such as ``x-user-id`` (the
client's value is dropped; only values the gateway sets itself reach an upstream).
"""

from __future__ import annotations

import httpx

from graftql.config import ForwardAuth, UpstreamConfig
from graftql.config.headers import DEFAULT_IDENTITY_HEADERS, HOP_BY_HOP
from graftql.upstreams import caller

__all__ = ["DEFAULT_IDENTITY_HEADERS", "HOP_BY_HOP", "HeaderRules"]


class HeaderRules:
    """One upstream's rules for client headers (``forward_headers`` and ``forward`` auth)."""

    __slots__ = ("_credentials", "_names")

    def __init__(self, config: UpstreamConfig) -> None:
        never = HOP_BY_HOP | set(config.identity_headers)
        credentials = config.auth.headers if isinstance(config.auth, ForwardAuth) else []
        self._credentials = tuple(name for name in credentials if name not in never)
        allowed = [name for name in config.forward_headers if name not in never]
        # Credential headers first: they are the ones that must not be shadowed.
        self._names = tuple(dict.fromkeys([*self._credentials, *allowed]))

    def __bool__(self) -> bool:
        return bool(self._names)

    def apply(self, headers: httpx.Headers) -> tuple[str, ...]:
        """Copy the current caller's allowed headers into ``headers`` (a header the gateway
        already set is kept); returns the names of the forwarded credential headers."""
        if not self._names:
            return ()
        current = caller.current()
        if current is None:  # no operation (start-up, probes): nobody's headers to forward
            return ()
        sent = current.headers
        # Names the client's Connection header lists are hop-by-hop too (RFC 9110 7.6.1).
        connection = sent.get("connection")
        private = {t.strip().lower() for t in connection.split(",")} if connection else ()
        for name in self._names:
            value = sent.get(name)
            if value is not None and name not in headers and name not in private:
                headers[name] = value
        return tuple(name for name in self._credentials if name in sent)
