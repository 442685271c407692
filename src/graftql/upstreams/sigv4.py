"""AWS Signature Version 4 for an upstream's ``aws_sigv4`` auth, signed by botocore.

Why botocore's ``SigV4Auth``: it is AWS's own Python signer, released with every AWS SDK
release, and it gets the awkward parts right that small signers get wrong — the canonical path
URI-encoded twice for every service but S3 (``S3SigV4Auth`` for S3, once, with the payload
hash header), header values trimmed and folded, ``X-Amz-Security-Token`` for temporary
credentials. It is pure Python but not small (about 30 MB with its service models), so it is the
optional ``aws`` extra (``pip install 'graftql[aws]'``) and imported only when an upstream uses
``aws_sigv4``. Lighter signers were considered: ``aws-sdk-signers`` (AWS's standalone one)
needs Python 3.12; ``httpx-auth``'s ``AWS4Auth`` always adds ``x-amz-content-sha256`` and
encodes the path once, so it does not reproduce AWS's published test vectors for non-S3
services.

What is signed is exactly what goes on the wire: the query string is rewritten into AWS's
canonical encoding (``%20``, not ``+``) before signing, and every header already on the request
is signed except ``User-Agent`` (botocore's rule).
"""

from __future__ import annotations

from collections.abc import Generator
from urllib.parse import quote, unquote_plus

import httpx
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from graftql.config import AwsSigV4Auth

__all__ = ["SigV4Signer", "canonical_query"]

# What the signer adds to the request; everything else on it stays as it was.
_ADDED = ("authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256")


def canonical_query(query: bytes) -> bytes:
    """``query`` in SigV4's canonical encoding: each name and value percent-encoded with only
    ``A-Z a-z 0-9 - _ . ~`` left bare, pairs sorted. ``+`` is read as a space (how httpx
    encodes one)."""
    if not query:
        return b""
    pairs = []
    for part in query.decode("ascii").split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append(
            (quote(unquote_plus(name), safe="-_.~"), quote(unquote_plus(value), safe="-_.~"))
        )
    return "&".join(f"{name}={value}" for name, value in sorted(pairs)).encode("ascii")


class SigV4Signer(httpx.Auth):
    """Signs each attempt afresh (a retry gets a new ``X-Amz-Date``); secrets are read per
    request, so a reloaded ``file:`` secret is used at once."""

    requires_request_body = True

    def __init__(self, config: AwsSigV4Auth) -> None:
        self._config = config
        self._kind = S3SigV4Auth if config.service == "s3" else SigV4Auth

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        cfg = self._config
        url = request.url
        query = canonical_query(url.query)
        if query != url.query:
            url = url.copy_with(query=query or None)
            request.url = url
        signed = AWSRequest(
            method=request.method,
            url=str(url),
            headers={k: v for k, v in request.headers.items() if k not in _ADDED},
            data=request.content,
        )
        credentials = ReadOnlyCredentials(
            cfg.access_key_id.reveal(),
            cfg.secret_access_key.reveal(),
            cfg.session_token.reveal() if cfg.session_token is not None else None,
        )
        self._kind(credentials, cfg.service, cfg.region).add_auth(signed)
        for name in _ADDED:
            if name in signed.headers:
                request.headers[name] = signed.headers[name]
        yield request
