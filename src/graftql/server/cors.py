"""Which web pages may talk to the gateway: CORS for HTTP, and the same list for WebSockets.

- **CORS** (``server.cors``): off by default, so a browser lets no page on another origin read
  a response. When set, starlette's ``CORSMiddleware`` answers preflights (``OPTIONS`` with
  ``Access-Control-Request-Method``) from the listed origins, for GET and POST, and adds the
  headers to their responses (``Retry-After`` exposed, for clients over a rate limit). A
  preflight from another origin is 400 without ``Access-Control-Allow-Origin``.
- **WebSocket origins.** A browser sends cookies with a WebSocket handshake from any page, and
  CORS does not apply to WebSockets, so a page elsewhere could use a visitor's session
  (cross-site WebSocket hijacking). strawberry's view refuses, with HTTP 403 before accepting,
  a handshake whose ``Origin`` is neither the gateway's own (host and port of the ``Host``
  header) nor in its ``allowed_origins``: ``websocket_origins`` gives it
  ``server.cors.allow_origins``. A client that sends no ``Origin`` is not a browser and is
  let in.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from graftql.config import CorsConfig

__all__ = ["cors_middleware", "websocket_origins"]


def cors_middleware(config: CorsConfig | None) -> list[Middleware]:
    """The CORS middleware for ``server.cors``, or none when it is not set."""
    if config is None:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=config.allow_origins,
            allow_methods=["GET", "POST"],
            allow_headers=config.allow_headers,
            allow_credentials=config.allow_credentials,
            expose_headers=["Retry-After"],
            max_age=config.max_age,
        )
    ]


def websocket_origins(config: CorsConfig | None) -> tuple[str, ...]:
    """The other origins whose pages may open a WebSocket: CORS's (none when it is off)."""
    return tuple(config.allow_origins) if config is not None else ()
