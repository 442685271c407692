"""REST upstreams: requests built from path templates, answers decoded from JSON or XML.

Host, scheme and base path come only from configuration. Every argument placed into a path
template is percent-encoded as exactly one path segment, so ``../admin``, ``a/b``, ``?x=1``,
``#frag`` or a full URL in an argument cannot change where a request goes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote
from xml.parsers.expat import ExpatError

import httpx
import orjson
import xmltodict

from graftql.config import UpstreamConfig
from graftql.errors import BadUserInput, UpstreamBadResponse
from graftql.upstreams.base import Upstream, join_path
from graftql.upstreams.shared import SharedState

__all__ = ["RestUpstream", "encode_segment", "expand_path"]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

QueryValue = str | int | float | bool | None | Sequence[str | int | float | bool]


def encode_segment(value: str | int) -> str:
    """Percent-encode ``value`` as one path segment (RFC 3986 unreserved characters stay).

    ``.`` and ``..`` are encoded too: left bare, clients and servers would resolve them as
    "this" and "parent" directory.
    """
    text = str(value)
    if text == "":
        raise BadUserInput("an empty value cannot be used as an identifier")
    if text in (".", ".."):
        return "%2E" * len(text)
    return quote(text, safe="")


def expand_path(template: str, params: Mapping[str, str | int]) -> str:
    """Fill ``{name}`` placeholders of a path template with encoded segments."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            raise KeyError(f"path template {template!r} needs a value for {{{name}}}")
        return encode_segment(params[name])

    return _PLACEHOLDER.sub(replace, template)


class RestUpstream(Upstream):
    """A REST service answering JSON or XML.

    ``get("/customers/{id}", id="c1")`` calls ``<url>/customers/c1`` and returns the decoded
    body; non-2xx answers raise the matching ``UpstreamError``.
    """

    kind = "rest"

    _reloaded = (*Upstream._reloaded, "_force_list")

    def __init__(
        self,
        name: str,
        config: UpstreamConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        shared: SharedState | None = None,
    ) -> None:
        super().__init__(name, config, transport=transport, shared=shared)
        self._force_list = tuple(config.xml.force_list)
        self._namespaces = {uri: prefix or None for uri, prefix in config.xml.namespaces.items()}
        self._base_path = self.url.raw_path.partition(b"?")[0]
        self._base_query = dict(self.url.params)

    def build_request(
        self,
        method: str,
        path: str,
        path_params: Mapping[str, str | int] | None = None,
        *,
        params: Mapping[str, QueryValue] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Request:
        # The template is code, the values are client input: only the values get encoded.
        relative = expand_path(path, path_params or {})
        raw_path = join_path(self._base_path, relative)
        query = {k: v for k, v in (params or {}).items() if v is not None}
        if query or self._base_query:
            # What url.copy_merge_params() would make, with one URL parse instead of two
            encoded = str(httpx.QueryParams({**self._base_query, **query}))
            if encoded:
                raw_path += b"?" + encoded.encode("ascii")
        url = self.url.copy_with(raw_path=raw_path)
        policy = (
            self.policy_for(f"{method} /{relative.lstrip('/')}") if self.has_endpoints else None
        )
        return self.prepare(method, url, json_body=json_body, headers=headers, policy=policy)

    async def request(
        self,
        method: str,
        path: str,
        path_params: Mapping[str, str | int] | None = None,
        *,
        params: Mapping[str, QueryValue] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """The decoded body; ``idempotent`` marks a POST that only reads (a batch lookup),
        so it may be retried and shared like a GET."""
        response = await self.request_response(
            method,
            path,
            path_params,
            params=params,
            json_body=json_body,
            headers=headers,
            idempotent=idempotent,
        )
        return self.decode(response)

    async def request_response(
        self,
        method: str,
        path: str,
        path_params: Mapping[str, str | int] | None = None,
        *,
        params: Mapping[str, QueryValue] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """The response itself (read, 2xx), for callers that need its headers (``Link``)."""
        request = self.build_request(
            method, path, path_params, params=params, json_body=json_body, headers=headers
        )
        return await self.send(request, idempotent=idempotent)

    def without_configured_query(self, url: str) -> str:
        """``url`` without the query values the configuration adds (an API key in the URL),
        so that what a client may see (a cursor) never holds them; ``get_url`` adds them."""
        if not self._base_query:
            return url
        path, _, query = url.partition("?")
        params = httpx.QueryParams(query)
        for name in self._base_query:
            params = params.remove(name)
        return path + (f"?{params}" if params else "")

    async def get_url(
        self, url: str, *, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """GET a URL the upstream itself handed out (a ``Link: rel="next"``). It must be on
        the configured origin and under the configured base path; anything else is
        ``UpstreamBadResponse`` and nothing is sent."""
        target = self.url.join(url)
        base = self._base_path.rstrip(b"/") + b"/"
        if (
            (target.scheme, target.host, target.port)
            != (self.url.scheme, self.url.host, self.url.port)
            or not (target.raw_path.partition(b"?")[0] + b"/").startswith(base)
            or b"/../" in target.raw_path + b"/"
        ):
            raise UpstreamBadResponse(
                self.name, f"{self.name} pointed to a URL outside its configured base"
            )
        if self._base_query:  # configured values (an API key) are never kept in a cursor
            target = target.copy_merge_params(self._base_query)
        return await self.send(self.prepare("GET", target, headers=headers))

    async def get(
        self,
        path: str,
        *,
        params: Mapping[str, QueryValue] | None = None,
        headers: Mapping[str, str] | None = None,
        **path_params: str | int,
    ) -> Any:
        return await self.request("GET", path, path_params, params=params, headers=headers)

    def decode(self, response: httpx.Response) -> Any:
        """JSON or XML by Content-Type; ``None`` for an empty body."""
        content = response.content
        if not content:
            return None
        media = response.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            if media == "application/json" or media.endswith("+json"):
                return orjson.loads(content)
            if media in ("application/xml", "text/xml") or media.endswith("+xml"):
                # No entities at all: neither internal expansion (billion laughs) nor external
                # ones (a file or URL read on the gateway). Size: max_response_bytes.
                return xmltodict.parse(
                    content,
                    disable_entities=True,
                    force_list=self._force_list or None,
                    process_namespaces=bool(self._namespaces),
                    namespaces=self._namespaces or None,
                )
        except (ValueError, ExpatError) as exc:  # entity declarations are a ValueError
            kind = "JSON" if "json" in media else "XML"
            raise UpstreamBadResponse(
                self.name, f"{self.name} answered with {kind} that does not parse"
            ) from exc
        if media.startswith("text/"):
            return response.text
        raise UpstreamBadResponse(
            self.name, f"{self.name} answered with unsupported content type {media or 'none'!r}"
        )
