"""A JSON Web Key Set for ``server.auth``: fetched from a URL or read from a file, cached for
``jwks_refresh`` seconds, fetched again for an unknown ``kid`` at most once per
``jwks_min_refetch`` seconds (one fetch at a time, however many tokens wait for it), the cached
keys kept when a refresh fails. ``server/identity.py`` decides what a missing key means.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
from jwt.api_jwk import PyJWK

from graftql.config.identity import InboundAuthConfig

__all__ = ["KeySet", "KeysUnavailable", "VerificationKey"]

logger = logging.getLogger("graftql.identity")


class KeysUnavailable(Exception):
    """The key set could not be fetched or read (the reason is logged where it happened)."""


class KeySet:
    """A JWKS from a URL or a file, cached, refreshed, fetched again for an unknown kid."""

    def __init__(
        self, config: InboundAuthConfig, clock: Callable[[], float], client: httpx.AsyncClient
    ) -> None:
        self._config = config
        self._clock = clock
        self._client = client
        self._keys: dict[str | None, VerificationKey] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last attempt, successful or not
        self._failed = False  # the last attempt failed
        self._inflight: asyncio.Task[bool] | None = None
        self.fetches = 0  # attempts, for tests

    async def key_for(self, kid: str | None) -> VerificationKey | None:
        """The key for ``kid``, or None when the set has none (after a fetch, if one was
        allowed). Raises ``KeysUnavailable`` when the gateway cannot decide: no key set could
        be had, or an unknown kid could not be looked up because the provider is down."""
        config = self._config
        fetched = self._fetched_at
        if fetched is None or self._clock() - fetched >= config.jwks_refresh:
            # Due: fetch, unless a fetch failed moments ago (then keep what is cached).
            if self._may_fetch():
                await self._refresh()
            if not self._keys:
                raise KeysUnavailable("no key set")
        key = self._lookup(kid)
        if key is not None:
            return key
        # Perhaps a rotated key: fetch again, unless that was tried very recently.
        if self._may_fetch(after_success=True):
            if not await self._refresh():
                raise KeysUnavailable("the key set could not be fetched again")
            return self._lookup(kid)
        if self._failed:
            raise KeysUnavailable("the last key set fetch failed")
        return None

    def _may_fetch(self, *, after_success: bool = False) -> bool:
        """A fetch is allowed when none was made, or the last one is ``jwks_min_refetch``
        old; a refresh that is due (``after_success`` False) may follow a success at once."""
        attempted = self._attempted_at
        if attempted is None or (not self._failed and not after_success):
            return True
        return self._clock() - attempted >= self._config.jwks_min_refetch

    def _lookup(self, kid: str | None) -> VerificationKey | None:
        if kid is None:
            # A token without "kid" is accepted only when the set leaves no choice.
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _refresh(self) -> bool:
        """One fetch at a time: callers that arrive meanwhile wait for the same one. True when
        it succeeded."""
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._fetch())
            self._inflight.add_done_callback(self._done)
        return await asyncio.shield(self._inflight)

    def _done(self, _task: asyncio.Task[bool]) -> None:
        self._inflight = None

    async def _fetch(self) -> bool:
        self._attempted_at = self._clock()
        self.fetches += 1
        config = self._config
        source = config.jwks_url or f"file {config.jwks_file}"
        try:
            if config.jwks_url is not None:
                response = await self._client.get(config.jwks_url, timeout=config.jwks_timeout)
                if response.status_code != 200:
                    raise KeysUnavailable(f"HTTP {response.status_code}")
                raw = response.content
            else:
                assert config.jwks_file is not None
                raw = await asyncio.to_thread(Path(config.jwks_file).read_bytes)
            keys = _parse_jwks(raw)
        except KeysUnavailable as exc:
            self._failed = True
            logger.warning("JWKS from %s not usable: %s; cached keys kept", source, exc)
            return False
        except Exception as exc:  # unreachable, unreadable: never an error for the client
            self._failed = True
            # The type only: a message could carry a URL with a credential in it.
            logger.warning("JWKS from %s not reachable: %s", source, type(exc).__name__)
            return False
        self._failed = False
        self._keys = keys
        self._fetched_at = self._clock()
        return True


@dataclass(frozen=True, slots=True)
class VerificationKey:
    key: Any  # a cryptography public key
    algorithm: str | None  # the JWK's "alg", when it names one


def _parse_jwks(raw: bytes) -> dict[str | None, VerificationKey]:
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise KeysUnavailable("not JSON") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise KeysUnavailable("no 'keys' list")
    keys: dict[str | None, VerificationKey] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = PyJWK(entry)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue  # a key type this gateway cannot use; the others still can be
        if key.key_type == "oct":
            continue  # a shared secret published in a key set is never a verification key
        declared = entry.get("alg")
        keys[key.key_id] = VerificationKey(key.key, declared if isinstance(declared, str) else None)
    if not keys:
        raise KeysUnavailable("no usable signing key")
    return keys
