"""Each upstream's ``auth:`` block: one model per scheme, chosen by ``type``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from graftql.config._base import _http_url, _Model
from graftql.references import EnvStr, Secret


class BearerAuth(_Model):
    """``Authorization: Bearer <token>`` with a static token."""

    type: Literal["bearer"]
    token: Secret


class ApiKeyAuth(_Model):
    """An API key in a named header or query parameter (exactly one of them)."""

    type: Literal["api_key"]
    value: Secret
    header: str | None = None
    query: str | None = None

    @model_validator(mode="after")
    def _one_place(self) -> ApiKeyAuth:
        if (self.header is None) == (self.query is None):
            raise ValueError("set exactly one of 'header' or 'query'")
        return self


class BasicAuth(_Model):
    """HTTP Basic authentication."""

    type: Literal["basic"]
    username: EnvStr
    password: Secret


class OAuth2ClientCredentials(_Model):
    """OAuth2 client-credentials grant; the token is cached and refreshed before expiry."""

    type: Literal["oauth2_client_credentials"]
    token_url: EnvStr
    client_id: EnvStr
    client_secret: Secret
    scopes: list[str] = Field(default_factory=list)
    audience: str | None = None
    extra_params: dict[str, str] = Field(default_factory=dict)
    refresh_leeway: float = Field(30.0, ge=0, description="seconds before expiry to refresh")

    @field_validator("extra_params")
    @classmethod
    def _no_overrides(cls, value: dict[str, str]) -> dict[str, str]:
        taken = sorted(
            {"grant_type", "scope", "audience", "client_id", "client_secret"} & set(value)
        )
        if taken:
            raise ValueError(f"{', '.join(taken)} cannot be set here; use the dedicated keys")
        return value

    _check_url = field_validator("token_url")(lambda v: _http_url(v))


class HmacAuth(_Model):
    """HMAC request signing: timestamp, method, path, query and body digest are signed."""

    type: Literal["hmac"]
    key_id: EnvStr
    secret: Secret
    algorithm: Literal["sha256", "sha512"] = "sha256"
    key_id_header: str = "X-Key-Id"
    timestamp_header: str = "X-Timestamp"
    signature_header: str = "X-Signature"


AuthConfig = Annotated[
    BearerAuth | ApiKeyAuth | BasicAuth | OAuth2ClientCredentials | HmacAuth,
    Field(discriminator="type"),
]
# Each scheme by the ``type`` a user writes: "did you mean" and error paths look them up here.
AUTH_MODELS: dict[str, type[_Model]] = {
    model.model_fields["type"].annotation.__args__[0]: model  # type: ignore[union-attr]
    for model in (BearerAuth, ApiKeyAuth, BasicAuth, OAuth2ClientCredentials, HmacAuth)
}
