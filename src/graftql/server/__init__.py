"""The HTTP and WebSocket front of the gateway (Starlette)."""

from __future__ import annotations

from graftql.server.app import create_app

__all__ = ["create_app"]
