"""The ``server.auth:`` block: who the gateway's clients are (inbound JWT validation).

The client sends ``Authorization: Bearer <JWT>``; the gateway checks its signature with keys it
is configured with, never with anything the token says about itself: the algorithms are pinned
here (``alg: none`` is not one of them), and a shared secret (HS*) and public keys (RS*/ES*)
cannot be mixed, so a token signed with HMAC over a public key (algorithm confusion) can never
verify. docs/identity.md shows each way of giving the keys.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from graftql.config._base import _http_url, _Model
from graftql.references import EnvStr, Secret

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
PUBLIC_KEY_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "PS256"})

Algorithm = Literal["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


class InboundAuthConfig(_Model):
    """The ``server.auth:`` block. Exactly one key source: ``secret`` (HS*), ``public_key``
    (one PEM key), ``jwks_url`` or ``jwks_file`` (a JSON Web Key Set)."""

    # The only algorithms a token may be signed with; the token's own "alg" is checked
    # against this list, never trusted.
    algorithms: list[Algorithm] = Field(min_length=1)
    # HS256/384/512: the shared secret, by reference (${VAR} or file:/path).
    secret: Secret | None = None
    # RS*/ES*/PS*: one public key in PEM, by reference (file:/etc/graftql/jwt.pem).
    public_key: Secret | None = None
    # RS*/ES*/PS*: the identity provider's key set, fetched and cached.
    jwks_url: Annotated[EnvStr, AfterValidator(_http_url)] | None = None
    # ... or read from a file (re-read like the URL is fetched again).
    jwks_file: EnvStr | None = None
    # How long fetched keys are used before they are fetched again.
    jwks_refresh: float = Field(300.0, ge=1, le=86_400, description="seconds")
    # A token with a key id ("kid") not in the cached set makes the gateway fetch the set again
    # (a rotated key), but not more often than this: random kids cannot flood the provider.
    jwks_min_refetch: float = Field(30.0, ge=0, le=3600, description="seconds")
    jwks_timeout: float = Field(5.0, gt=0, le=60, description="seconds")
    # The "iss" the tokens must carry; any issuer when unset.
    issuer: EnvStr | None = None
    # The "aud" the tokens must carry (one of them); when unset, a token with an "aud" is refused.
    audience: list[EnvStr] | None = None
    # Clock skew allowed when checking "exp", "nbf" and "iat".
    leeway: float = Field(30.0, ge=0, le=300, description="seconds")
    # Claims every token must have. "exp" by default: a token that never expires is refused.
    required_claims: list[str] = Field(default_factory=lambda: ["exp"])
    # Requests without a token are served as anonymous (the schema's permissions decide what
    # they may read). A token that is present but invalid is refused either way.
    anonymous: bool = False
    # A longer Authorization value is refused without being parsed.
    max_token_bytes: int = Field(8192, ge=256, le=65_536)

    @model_validator(mode="before")
    @classmethod
    def _one_audience(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("audience"), str):
            return {**data, "audience": [data["audience"]]}
        return data

    @field_validator("jwks_file")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                with open(value, "rb"):
                    pass
            except OSError as exc:
                raise ValueError(f"cannot read {value}: {exc.strerror}") from None
        return value

    @field_validator("public_key")
    @classmethod
    def _pem_public_key(cls, value: Secret | None) -> Secret | None:
        if value is not None:
            from cryptography.hazmat.primitives.serialization import load_pem_public_key

            try:
                load_pem_public_key(value.reveal().encode())
            except (ValueError, TypeError):
                raise ValueError("is not a PEM public key ('-----BEGIN PUBLIC KEY-----')") from None
        return value

    @model_validator(mode="after")
    def _keys_match_algorithms(self) -> InboundAuthConfig:
        sources = [
            name
            for name in ("secret", "public_key", "jwks_url", "jwks_file")
            if getattr(self, name) is not None
        ]
        if len(sources) != 1:
            raise ValueError(
                "give exactly one of 'secret', 'public_key', 'jwks_url', 'jwks_file'"
                + (f" (found {', '.join(sources)})" if sources else "")
            )
        hmac = [a for a in self.algorithms if a in HMAC_ALGORITHMS]
        public = [a for a in self.algorithms if a in PUBLIC_KEY_ALGORITHMS]
        if sources == ["secret"] and public:
            raise ValueError(
                f"'secret' verifies HS256/HS384/HS512 only; {', '.join(public)} need "
                "'public_key', 'jwks_url' or 'jwks_file'"
            )
        if self.secret is not None and hmac:
            # RFC 7518 3.2: a key at least as long as the hash; shorter ones can be guessed.
            needed = max(int(algorithm[2:]) // 8 for algorithm in hmac)
            if len(self.secret.reveal().encode()) < needed:
                raise ValueError(
                    f"'secret' must be at least {needed} bytes for {', '.join(hmac)} "
                    "(RFC 7518); generate one with: openssl rand -base64 48"
                )
        if sources != ["secret"] and hmac:
            raise ValueError(
                f"a shared 'secret' is needed for {', '.join(hmac)}; public keys verify "
                "RS*/ES*/PS* only (mixing them would allow algorithm confusion)"
            )
        return self
