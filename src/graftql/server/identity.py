"""Inbound identity: the client's JWT checked, its claims made the operation's principal.

``InboundAuth.authenticate(authorization)`` is called once per HTTP request (``server/http.py``)
and once per WebSocket connection (``server/graphql.py``, from ``connection_init``). It returns
the token's claims, ``{}`` for an anonymous client when ``server.auth.anonymous`` allows it, or
raises ``TokenRejected``:

- **401** ``UNAUTHENTICATED`` with ``WWW-Authenticate: Bearer error="invalid_token"``: the token
  is malformed, expired, not yet valid, for another audience or issuer, signed with an
  algorithm or key the gateway does not accept. The client is told only "invalid" or
  "expired"; the exact reason is in the operator's log (``graftql.audit``, one record per
  rejected token, never the token itself).
- **401** without an error code in ``WWW-Authenticate``: no token, and anonymous access is off.
- **503** ``IDENTITY_UNAVAILABLE``: the keys needed to decide could not be had (the JWKS
  endpoint is down and nothing usable is cached, or a rotated key id could not be fetched).
  The token may well be valid, so the client is not told to drop it; it should retry.

Keys from a JWKS URL or file are kept by ``server/jwks.py``. A WebSocket connection is
authenticated at ``connection_init`` (``websocket_principal``) and closed when its token expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from starlette.websockets import WebSocket, WebSocketState
from strawberry.exceptions import ConnectionRejectionError

from graftql.config.identity import InboundAuthConfig
from graftql.resolvers import Context
from graftql.server.jwks import KeySet, KeysUnavailable

__all__ = [
    "InboundAuth",
    "KeysUnavailable",
    "TokenRejected",
    "audit_logger",
    "mint_token",
    "websocket_principal",
]

audit_logger = logging.getLogger("graftql.audit")

# Three base64url segments; the signature may be empty only for alg "none", refused later.
_COMPACT_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


class TokenRejected(Exception):
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


def _invalid(reason: str, *, expired: bool = False) -> TokenRejected:
    message = "the bearer token has expired" if expired else "the bearer token is invalid"
    return TokenRejected(401, "UNAUTHENTICATED", message, reason)


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
        self.keys: KeySet | None = None
        if config.secret is not None:
            self._static_key = config.secret.reveal().encode()
        elif config.public_key is not None:
            self._static_key = load_pem_public_key(config.public_key.reveal().encode())
        else:
            # Redirects are not followed: the keys come from where the config says.
            self._client = httpx.AsyncClient(follow_redirects=False)
            self.keys = KeySet(config, clock, self._client)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def authenticate(
        self, authorization: str | None, *, transport: str = "http"
    ) -> dict[str, Any]:
        """The claims of a valid token, ``{}`` for an allowed anonymous client; else raises
        ``TokenRejected`` (and writes the audit record)."""
        try:
            return await self._authenticate(authorization)
        except TokenRejected as refused:
            _audit(refused, transport)
            raise

    async def _authenticate(self, authorization: str | None) -> dict[str, Any]:
        if authorization is None or not authorization.strip():
            if self.config.anonymous:
                return {}
            raise TokenRejected(401, "UNAUTHENTICATED", "authentication required", "no token")
        if len(authorization) > self.config.max_token_bytes:
            raise _invalid(f"Authorization header longer than {self.config.max_token_bytes}")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise TokenRejected(
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
            raise TokenRejected(
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


def _audit(refused: TokenRejected, transport: str) -> None:
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


async def websocket_principal(identity: InboundAuth, context: Context) -> dict[str, Any]:
    """The principal of a WebSocket connection, at ``connection_init``: the token from its
    payload (``{"Authorization": "Bearer ..."}``, any case), else the handshake's header.
    Refused: ``ConnectionRejectionError``, which strawberry turns into close code 4403
    (graphql-transport-ws). Accepted: the connection is closed with 4403 when the token
    expires."""
    authorization = context.authorization()
    try:
        if authorization is not None and not isinstance(authorization, str):
            authorization = "<not a string>"  # refused as malformed, never raised on
        claims = await identity.authenticate(authorization, transport="websocket")
    except TokenRejected:
        raise ConnectionRejectionError({"message": "unauthenticated"}) from None
    expires = claims.get("exp")
    if isinstance(context.request, WebSocket) and isinstance(expires, int | float):
        _close_when_expired(context.request, expires + identity.config.leeway)
    return claims


def _close_when_expired(websocket: WebSocket, deadline: float) -> None:
    """The connection ends (4403) when its token does: a principal is not kept past ``exp``.
    Held weakly, so a connection that ended first is not kept alive until then."""
    ref = weakref.ref(websocket)

    async def close() -> None:
        found = ref()
        if found is not None and found.client_state is WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, OSError):  # it went away meanwhile
                await found.close(code=4403, reason="token expired")

    def fire() -> None:
        task = asyncio.ensure_future(close())
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    delay = max(0.0, deadline - time.time())
    asyncio.get_running_loop().call_later(delay, fire)


_closing: set[asyncio.Task[None]] = set()  # strong references while a close runs
