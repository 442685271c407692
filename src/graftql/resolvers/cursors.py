"""Opaque, signed cursors: what a connection hands out is what it accepts back.

A cursor is the upstream position it stands for (a page number, an offset, an upstream
cursor, a next-page path) as JSON, with an HMAC-SHA256 tag over it and the *scope* it was
issued for (the list it pages through). A cursor that was changed, made up, or issued for
another list is ``BAD_USER_INPUT``; so a client can never steer the gateway to an upstream
position it was not given.

The key is ``server.cursor_secret``, else one random key per process (cursors then stop
working across a restart or between replicas: set the secret when that matters).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from typing import Any

import orjson

from graftql.errors import BadUserInput

__all__ = ["PROCESS_KEY", "CursorSigner"]

PROCESS_KEY = secrets.token_bytes(32)
_TAG_BYTES = 16
_MAX_CURSOR = 2048  # characters; a longer one was not issued here


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorSigner:
    """``encode(scope, state)`` and ``decode(scope, cursor)`` with one key."""

    def __init__(self, key: bytes = PROCESS_KEY) -> None:
        self._key = key

    def _tag(self, scope: str, payload: bytes) -> bytes:
        message = scope.encode() + b"\x00" + payload
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_TAG_BYTES]

    def encode(self, scope: str, state: dict[str, Any]) -> str:
        payload = orjson.dumps(state, option=orjson.OPT_SORT_KEYS)
        return f"{_b64(payload)}.{_b64(self._tag(scope, payload))}"

    def decode(self, scope: str, cursor: str, *, argument: str = "after") -> dict[str, Any]:
        """The state ``cursor`` stands for; ``BadUserInput`` if this API did not issue it for
        ``scope``."""
        refused = BadUserInput(f"'{argument}' is not a cursor this API issued")
        if len(cursor) > _MAX_CURSOR or cursor.count(".") != 1:
            raise refused
        body, _, tag = cursor.partition(".")
        try:
            payload, given = _unb64(body), _unb64(tag)
        except (binascii.Error, ValueError):
            raise refused from None
        if not hmac.compare_digest(given, self._tag(scope, payload)):
            raise refused
        state = orjson.loads(payload)
        if not isinstance(state, dict):
            raise refused
        return state
