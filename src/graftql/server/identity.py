"""Inbound identity: the client's JWT checked, its claims made the operation's principal.

``InboundAuth.authenticate(authorization)`` is called once per HTTP request (``server/http.py``)
and once per WebSocket connection (``server/graphql.py``, from ``connection_init``). It returns
the token's claims, ``{}`` for an anonymous client when ``server.auth.anonymous`` allows it, or
raises ``Unauthenticated``:

- **401** ``UNAUTHENTICATED`` with ``WWW-Authenticate: Bearer error="invalid_token"``: the token
  is malformed, expired, not yet valid, for another audience or issuer, signed with an
  algorithm or key the gateway does not accept. The client is told only "invalid" or
  "expired"; the exact reason is in the operator's log (``graftql.audit``, one record per
  rejected token, never the token itself).
- **401** without an error code in ``WWW-Authenticate``: no token, and anonymous access is off.
- **503** ``IDENTITY_UNAVAILABLE``: the keys needed to decide could not be had (the JWKS
  endpoint is down and nothing usable is cached, or a rotated key id could not be fetched).
  The token may well be valid, so the client is not told to drop it; it should retry.

Keys from a JWKS URL or file are cached for ``jwks_refresh`` seconds; a token whose ``kid`` is
not in the cached set triggers one fetch, at most once per ``jwks_min_refetch`` seconds, however
many such tokens arrive at once (they wait for the same fetch). When a refresh fails, the keys
already cached are kept.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.api_jwk import PyJWK

from graftql.config.identity import InboundAuthConfig

__all__ = ["InboundAuth", "KeysUnavailable", "Unauthenticated", "audit_logger", "mint_token"]

audit_logger = logging.getLogger("graftql.audit")
logger = logging.getLogger("graftql.identity")

# Three base64url segments; the signature may be empty only for alg "none", refused later.
_COMPACT_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


class Unauthenticated(Exception):
    """The request is refused: ``status`` (401 or 503), a client-safe ``message``, the
    response ``headers``; ``reason`` is for the operator's log only."""

    def __init__(self, status: int, code: str, message: str, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.reason = reason
        if status == 401:
            challenge = 'Bearer realm="graftql"'
            if reason != "no token":
                challenge += ', error="invalid_token"'
            self.headers = {"www-authenticate": challenge}
        else:
            self.headers = {"retry-after": "5"}


class KeysUnavailable(Exception):
    """The key set could not be fetched or read (the reason is logged where it happened)."""


def _invalid(reason: str, *, expired: bool = False) -> Unauthenticated:
    message = "the bearer token has expired" if expired else "the bearer token is invalid"
    return Unauthenticated(401, "UNAUTHENTICATED", message, reason)


class _KeySet:
    """A JWKS from a URL or a file, cached, refreshed, fetched again for an unknown kid."""

    def __init__(
        self, config: InboundAuthConfig, clock: Callable[[], float], client: httpx.AsyncClient
    ) -> None:
        self._config = config
        self._clock = clock
        self._client = client
        self._keys: dict[str | None, _Key] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last attempt, successful or not
        self._failed = False  # the last attempt failed
        self._inflight: asyncio.Task[bool] | None = None
        self.fetches = 0  # attempts, for tests

    async def key_for(self, kid: str | None) -> _Key | None:
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

    def _lookup(self, kid: str | None) -> _Key | None:
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
class _Key:
    key: Any  # a cryptography public key
    algorithm: str | None  # the JWK's "alg", when it names one


def _parse_jwks(raw: bytes) -> dict[str | None, _Key]:
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise KeysUnavailable("not JSON") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise KeysUnavailable("no 'keys' list")
    keys: dict[str | None, _Key] = {}
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
        keys[key.key_id] = _Key(key.key, declared if isinstance(declared, str) else None)
    if not keys:
        raise KeysUnavailable("no usable signing key")
    return keys


class InboundAuth:
    """Validates inbound JWTs for ``server.auth`` (see the module docstring)."""

    def __init__(
        self,
        config: InboundAuthConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._algorithms = list(config.algorithms)
        self._static_key: Any = None
        self._client: httpx.AsyncClient | None = None
        self.keys: _KeySet | None = None
        if config.secret is not None:
            self._static_key = config.secret.reveal().encode()
        elif config.public_key is not None:
            self._static_key = load_pem_public_key(config.public_key.reveal().encode())
        else:
            # Redirects are not followed: the keys come from where the config says.
            self._client = httpx.AsyncClient(follow_redirects=False)
            self.keys = _KeySet(config, clock, self._client)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def authenticate(
        self, authorization: str | None, *, transport: str = "http"
    ) -> dict[str, Any]:
        """The claims of a valid token, ``{}`` for an allowed anonymous client; else raises
        ``Unauthenticated`` (and writes the audit record)."""
        try:
            return await self._authenticate(authorization)
        except Unauthenticated as refused:
            _audit(refused, transport)
            raise

    async def _authenticate(self, authorization: str | None) -> dict[str, Any]:
        if authorization is None or not authorization.strip():
            if self.config.anonymous:
                return {}
            raise Unauthenticated(401, "UNAUTHENTICATED", "authentication required", "no token")
        if len(authorization) > self.config.max_token_bytes:
            raise _invalid(f"Authorization header longer than {self.config.max_token_bytes}")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthenticated(
                401,
                "UNAUTHENTICATED",
                "the Authorization header must be 'Bearer <token>'",
                "not a bearer token",
            )
        token = token.strip()
        if not _COMPACT_JWT.fullmatch(token):
            raise _invalid("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _invalid("malformed token header") from None
        algorithm = header.get("alg")
        if algorithm not in self._algorithms:
            # "none", or an algorithm the configuration does not pin: checked before any key is
            # looked up, so a forged header cannot make the gateway fetch keys.
            raise _invalid(f"algorithm {str(algorithm)[:16]!r} not allowed")
        key = await self._key(header)
        return self._decode(token, key)

    async def _key(self, header: Mapping[str, Any]) -> Any:
        if self.keys is None:
            return self._static_key
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _invalid("malformed kid")
        try:
            jwk = await self.keys.key_for(kid)
        except KeysUnavailable:
            raise Unauthenticated(
                503,
                "IDENTITY_UNAVAILABLE",
                "the identity provider's keys are unavailable; try again shortly",
                "key set unavailable",
            ) from None
        if jwk is None:
            raise _invalid("unknown key id" if kid is not None else "no kid and several keys")
        if jwk.algorithm is not None and jwk.algorithm != header.get("alg"):
            raise _invalid(f"token algorithm does not match the key's ({jwk.algorithm})")
        return jwk.key

    def _decode(self, token: str, key: Any) -> dict[str, Any]:
        config = self.config
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=config.audience,
                issuer=config.issuer,
                leeway=config.leeway,
                options={"require": list(config.required_claims), "strict_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise _invalid("expired", expired=True) from None
        except jwt.ImmatureSignatureError:
            raise _invalid("not yet valid (nbf)") from None
        except jwt.InvalidAudienceError:
            raise _invalid("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise _invalid("wrong issuer") from None
        except jwt.InvalidSignatureError:
            raise _invalid("bad signature") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _invalid(f"missing claim {exc.claim!r}") from None
        except jwt.InvalidAlgorithmError:
            raise _invalid("algorithm not allowed") from None
        except jwt.InvalidIssuedAtError:
            raise _invalid("issued in the future (iat)") from None
        except jwt.DecodeError:
            raise _invalid("malformed token") from None
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            # A key of the wrong type for the algorithm (an EC key for RS256), and the like.
            raise _invalid(f"unusable token ({type(exc).__name__})") from None
        if not isinstance(claims, dict):
            raise _invalid("claims are not an object")
        return claims


def _audit(refused: Unauthenticated, transport: str) -> None:
    audit_logger.info(
        "inbound token rejected (%s): %s",
        transport,
        refused.reason,
        extra={
            "graftql": {
                "event": "inbound_token_rejected",
                "reason": refused.reason,
                "status": refused.status,
                "transport": transport,
            }
        },
    )


def mint_token(
    config: InboundAuthConfig,
    claims: Mapping[str, Any],
    *,
    ttl: int = 3600,
    now: float | None = None,
) -> str:
    """A token that a gateway with ``config`` accepts, signed with its shared secret: for the
    demo, tests and local development (``graftql token``). ``iss``, ``aud``, ``iat`` and
    ``exp`` come from the configuration and ``ttl``; ``claims`` add to or replace them.

    Only an HS* gateway can mint: with public keys, tokens come from the identity provider."""
    if config.secret is None:
        raise ValueError(
            "only a gateway with a shared 'secret' (HS256/384/512) can mint tokens; with "
            "public keys, ask the identity provider for one"
        )
    issued = int(time.time() if now is None else now)
    payload: dict[str, Any] = {"iat": issued, "exp": issued + ttl}
    if config.issuer is not None:
        payload["iss"] = config.issuer
    if config.audience:
        payload["aud"] = config.audience[0]
    payload.update(claims)
    return jwt.encode(payload, config.secret.reveal(), algorithm=config.algorithms[0])
