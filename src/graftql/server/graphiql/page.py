"""The GraphiQL page, from a CDN (strawberry's page as it is) or from the gateway itself.

Strawberry's page loads React, GraphiQL and its explorer plugin from a CDN, each ``<script>``
and ``<link>`` pinned to a package version with a Subresource Integrity hash. Behind a firewall
the CDN is out of reach and the page stays blank. With ``server.graphiql_assets`` the gateway
serves those same files itself, installed from the npm registry by ``graftql graphiql-assets``
(``install.py``), and the page is strawberry's with every CDN address replaced by the local
one:

- **Which files, which versions.** Read from strawberry's page (``page_assets``), so they are
  always the ones the page was written for; the integrity hashes stay in the page, and the
  same hashes are checked when the files are installed and again when the gateway starts, so
  a browser never meets a file that its check would refuse.
- **Where.** ``/graphiql/assets/<package>@<version>/<path>``: the version is in the address,
  so a file is cached as immutable for a year (its integrity hash is its ETag), and sent
  gzipped to a browser that accepts it. Only the page's own files are served, from memory as
  they were checked at start-up, looked up by their exact address in a table: no path from a
  request ever reaches the file system, so ``..`` and encoded separators lead nowhere.
- **Content-Security-Policy.** The local page gets one that allows only the gateway's own
  origin (``'self'``): its scripts and styles (the page's two inline blocks by their hashes),
  ``fetch`` and WebSocket to ``/graphql``, and ``data:`` images and fonts (the favicon and
  GraphiQL's fonts are embedded in the page and the stylesheet). No other origin can be
  reached from it, nor can it be framed.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from strawberry.http.ides import get_graphql_ide_html

from graftql.errors import ConfigError

__all__ = [
    "ASSETS_PATH",
    "Asset",
    "GraphiQLPage",
    "OfflineGraphiQL",
    "page_assets",
]

ASSETS_PATH: Final = "/graphiql/assets/"
CONFIG_KEY: Final = "server.graphiql_assets"
INSTALL_HINT: Final = "install them with `graftql graphiql-assets --dir {directory}`"

# A <script src=...> or <link href=...> tag; the address is an npm package's file on a CDN:
# https://<cdn>/<package>@<version>/<path>, as unpkg and others publish them.
_TAG = re.compile(r"<(?:script|link)\b[^>]*>", re.IGNORECASE)
_REMOTE = re.compile(
    r"""(?P<attr>\b(?:src|href))="(?P<url>https?://[^/"]+/"""
    r"""(?P<package>(?:@[\w.-]+/)?[\w.-]+)@(?P<version>[\w.+-]+)/(?P<path>[^"?#]+))\""""
)
_INTEGRITY = re.compile(r'\bintegrity="(?P<value>sha(?:256|384|512)-[A-Za-z0-9+/=]+)"')
_ANY_REMOTE = re.compile(r"""\b(?:src|href)=["']?(?:https?:)?//""", re.IGNORECASE)
_INLINE = re.compile(r"<(?P<tag>script|style)(?P<attrs>[^>]*)>(?P<body>.*?)</(?P=tag)>", re.S)
_CONTENT_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class Asset:
    """One file the page loads: ``path`` inside the npm package ``package`` at ``version``,
    whose bytes must hash to ``integrity`` (a Subresource Integrity value, ``sha384-...``)."""

    package: str
    version: str
    path: str
    integrity: str

    @property
    def name(self) -> str:
        """Its place under the assets directory and under ``/graphiql/assets/``."""
        return f"{self.package}@{self.version}/{self.path}"

    def matches(self, content: bytes) -> bool:
        algorithm, _, expected = self.integrity.partition("-")
        digest = hashlib.new(algorithm, content).digest()
        return base64.b64encode(digest).decode() == expected


def page_assets(html: str | None = None) -> list[Asset]:
    """The files strawberry's GraphiQL page (or ``html``) loads from a CDN, in page order."""
    html = get_graphql_ide_html(graphql_ide="graphiql") if html is None else html
    assets: list[Asset] = []
    for tag in _TAG.finditer(html):
        remote = _REMOTE.search(tag.group())
        if remote is None:
            continue
        integrity = _INTEGRITY.search(tag.group())
        if integrity is None:  # every CDN file of the page is pinned; one without is a change
            raise ValueError(f"GraphiQL's page loads {remote['url']} without an integrity hash")
        assets.append(
            Asset(remote["package"], remote["version"], remote["path"], integrity["value"])
        )
    return assets


@dataclass(frozen=True, slots=True)
class GraphiQLPage:
    """The HTML of the page and the headers it is sent with."""

    html: str
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def cdn(cls) -> GraphiQLPage:
        """Strawberry's page as it is: its files come from a CDN."""
        return cls(get_graphql_ide_html(graphql_ide="graphiql"))

    def response(self) -> Response:
        return HTMLResponse(self.html, headers=self.headers)


@dataclass(slots=True)
class _File:
    content: bytes
    content_type: str
    integrity: str
    compressed: bytes | None = None


class OfflineGraphiQL:
    """The page and its files served by the gateway from ``directory`` (``server.
    graphiql_assets``), as ``graftql graphiql-assets`` laid them out."""

    def __init__(self, directory: str | Path, *, html: str | None = None) -> None:
        """Checks that ``directory`` holds every file the page needs, with the bytes its
        integrity hash names; a ``ConfigError`` on ``server.graphiql_assets`` says which is
        missing or different, and how to install them. ``html``: the page to serve
        (default: strawberry's GraphiQL page)."""
        root = Path(directory)
        hint = INSTALL_HINT.format(directory=directory)
        if not root.is_dir():
            raise ConfigError.at(CONFIG_KEY, f"{directory} is not a directory; {hint}")
        html = get_graphql_ide_html(graphql_ide="graphiql") if html is None else html
        try:
            assets = page_assets(html)
            local = _localized(html)
        except ValueError as exc:  # strawberry's page is not what this graftql knows
            raise ConfigError.at(
                CONFIG_KEY, f"{exc}: this graftql cannot serve it offline; unset the key"
            ) from None
        # Served from memory, as checked: a file changed on disk later is never sent.
        self.files: dict[str, _File] = {}
        for asset in assets:
            path = root / asset.name
            try:
                content = path.read_bytes()
            except OSError:
                raise ConfigError.at(
                    CONFIG_KEY, f"{directory} has no {asset.name} (GraphiQL needs it); {hint}"
                ) from None
            if not asset.matches(content):
                raise ConfigError.at(
                    CONFIG_KEY,
                    f"{directory}/{asset.name} is not the file GraphiQL expects (its "
                    f"{asset.integrity.partition('-')[0]} differs); {hint}",
                )
            content_type = _CONTENT_TYPES.get(path.suffix, "application/octet-stream")
            # The integrity hash names the bytes: a strong ETag that every replica agrees on.
            self.files[asset.name] = _File(content, content_type, asset.integrity)
        self.page = GraphiQLPage(local, headers=_page_headers(local))

    @property
    def route(self) -> Route:
        return Route(ASSETS_PATH + "{name:path}", self._serve, methods=["GET", "HEAD"])

    async def _serve(self, request: Request) -> Response:
        # The table of the page's own files is the only way to a path: nothing from the
        # request is joined to the directory.
        found = self.files.get(request.path_params["name"])
        if found is None:
            return JSONResponse(
                {"errors": [{"message": "not found", "extensions": {"code": "NOT_FOUND"}}]},
                status_code=404,
            )
        gzip = _accepts_gzip(request.headers.get("accept-encoding"))
        headers = {
            # The version is in the address: the file behind it never changes.
            "cache-control": "public, max-age=31536000, immutable",
            # One tag per representation: the gzip one is other bytes.
            "etag": f'"{found.integrity}-gzip"' if gzip else f'"{found.integrity}"',
            "vary": "accept-encoding",
            "x-content-type-options": "nosniff",
        }
        if headers["etag"] in _etags(request.headers.get("if-none-match")):
            return Response(status_code=304, headers=headers)
        if not gzip:
            return Response(found.content, media_type=found.content_type, headers=headers)
        if found.compressed is None:  # once per file and process, off the event loop
            found.compressed = await anyio.to_thread.run_sync(_gzip, found.content)
        headers["content-encoding"] = "gzip"
        return Response(found.compressed, media_type=found.content_type, headers=headers)


def _gzip(content: bytes) -> bytes:
    # graphiql.min.js is 3.5 MB, 0.7 MB compressed; ~0.2 s the first time it is asked for.
    return gzip.compress(content, compresslevel=6, mtime=0)


def _accepts_gzip(header: str | None) -> bool:
    """``Accept-Encoding`` allows gzip: by name, else by ``*``, with a q-value above 0."""
    weights: dict[str, float] = {}
    for part in (header or "").split(","):
        name, _, params = part.partition(";")
        q = params.strip().lower()
        try:
            weights[name.strip().lower()] = float(q.removeprefix("q=")) if q else 1.0
        except ValueError:
            weights[name.strip().lower()] = 0.0
    return weights.get("gzip", weights.get("*", 0.0)) > 0


def _etags(header: str | None) -> set[str]:
    """The entity tags of an ``If-None-Match`` header (weak ones compare as strong)."""
    if header is None:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}


def _localized(html: str) -> str:
    """``html`` with every CDN address of a package file replaced by the gateway's own."""

    def local(tag: re.Match[str]) -> str:
        return _REMOTE.sub(
            lambda m: f'{m["attr"]}="{ASSETS_PATH}{m["package"]}@{m["version"]}/{m["path"]}"',
            tag.group(),
        )

    page = _TAG.sub(local, html)
    if _ANY_REMOTE.search(page):  # strawberry's page changed: refuse rather than leak
        raise ValueError("GraphiQL's page still loads a file from another origin")
    return page


def _page_headers(html: str) -> dict[str, str]:
    scripts: list[str] = []
    styles: list[str] = []
    for block in _INLINE.finditer(html):
        if block["tag"] == "script" and "src=" in block["attrs"]:
            continue
        digest = base64.b64encode(hashlib.sha256(block["body"].encode()).digest()).decode()
        (scripts if block["tag"] == "script" else styles).append(f"'sha256-{digest}'")
    policy = "; ".join(
        [
            "default-src 'none'",
            "script-src 'self' " + " ".join(scripts),
            "style-src 'self' " + " ".join(styles),
            "connect-src 'self'",  # fetch and WebSocket to /graphql on this origin
            "img-src 'self' data:",  # the favicon is an inline SVG
            "font-src 'self' data:",  # GraphiQL's stylesheet embeds its fonts
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )
    return {
        "content-security-policy": policy,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
    }
