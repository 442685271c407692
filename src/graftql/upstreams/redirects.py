"""Redirects from an upstream: never followed to another origin, and by default not at all.

The transport follows none itself. With ``follow_redirects: same_origin`` the gateway follows
up to ``MAX_REDIRECTS`` whose target has the same scheme, host and port as the request; the
credentials are applied afresh to the new request (a signature covers its new path). A redirect
to any other origin is answered ``UPSTREAM_BAD_RESPONSE`` without a request being sent there,
so no credential — header, API key in the query, signature — ever leaves the configured origin.
"""

from __future__ import annotations

import httpx

from graftql.errors import UpstreamBadResponse

__all__ = ["MAX_REDIRECTS", "REDIRECT_STATUSES", "follow", "same_origin"]

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Describe the body that a redirect to GET leaves behind.
_BODY_HEADERS = ("content-length", "content-type", "content-encoding", "transfer-encoding")


def same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    """Same scheme, host and port (a default port counts as given)."""
    return (
        a.scheme == b.scheme
        and a.host == b.host
        and (a.port or _DEFAULT_PORTS.get(a.scheme)) == (b.port or _DEFAULT_PORTS.get(b.scheme))
    )


def follow(
    upstream: str, request: httpx.Request, response: httpx.Response, hops: int
) -> httpx.Request:
    """The request that follows ``response`` (a redirect) within the origin of ``request``;
    raises ``UpstreamBadResponse`` for another origin, a missing ``Location`` or too many
    hops."""
    status = response.status_code
    location = response.headers.get("location")
    if not location:
        raise _refused(upstream, f"{upstream} answered a redirect without a location", response)
    try:
        target = request.url.join(location)
    except httpx.InvalidURL:
        raise _refused(
            upstream, f"{upstream} redirected to an invalid location", response
        ) from None
    if not same_origin(request.url, target):
        raise _refused(
            upstream, f"{upstream} redirected to another origin, which is never followed", response
        )
    if hops >= MAX_REDIRECTS:
        raise _refused(upstream, f"{upstream} redirected more than {MAX_REDIRECTS} times", response)
    method, content = request.method, request.content
    headers = request.headers.copy()
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method, content = "GET", b""  # what every HTTP client does (RFC 9110 15.4)
        for name in _BODY_HEADERS:
            headers.pop(name, None)
    return httpx.Request(
        method, target, headers=headers, content=content or None, extensions=request.extensions
    )


def _refused(upstream: str, message: str, response: httpx.Response) -> UpstreamBadResponse:
    error = UpstreamBadResponse(upstream, message, status=response.status_code)
    error.response = response
    return error
