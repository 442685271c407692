"""TLS towards an upstream: the client ``SSLContext`` for its ``tls:`` block, and failures that
say what went wrong with the handshake instead of "could not be reached".

Verification is always on. ``ca_bundle`` replaces the system's trusted CAs for that upstream;
``client_cert``/``client_key`` are presented when the upstream asks (mutual TLS).
"""

from __future__ import annotations

import ssl

import httpx

from graftql.config import TlsConfig

__all__ = ["TlsHandshakeFailed", "TlsVerificationFailed", "client_context", "why_unreachable"]


class TlsVerificationFailed(httpx.ConnectError):
    """The upstream's certificate is not trusted (unknown CA, self-signed, wrong host name,
    expired). Nothing was sent."""


class TlsHandshakeFailed(httpx.ConnectError):
    """The TLS handshake failed for another reason (the upstream wants a client certificate,
    no common TLS version). Nothing was sent."""


def client_context(config: TlsConfig | None) -> ssl.SSLContext | None:
    """The context for ``config``; None (the default, verifying context) without one."""
    if config is None:
        return None
    context = ssl.create_default_context(cafile=config.ca_bundle)
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if config.min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    )
    if config.client_cert is not None:
        context.load_cert_chain(config.client_cert, config.client_key, password=lambda: b"")
    return context


def why_unreachable(exc: BaseException) -> str:
    """A suffix for "<upstream> could not be reached" that names a TLS failure (no URL, no
    certificate contents)."""
    if isinstance(exc, TlsVerificationFailed):
        return ": TLS certificate verification failed (the upstream's certificate is not trusted)"
    if isinstance(exc, TlsHandshakeFailed):
        return ": the TLS handshake failed"
    return ""
