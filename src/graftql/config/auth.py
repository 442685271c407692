"""Each upstream's ``auth:`` block: one model per scheme, chosen by ``type``."""

from __future__ import annotations

import importlib.util
import os
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from graftql.config._base import _header_name, _http_url, _Model
from graftql.config.headers import forwardable
from graftql.references import EnvStr, Secret, environ_of


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


class AwsSigV4Auth(_Model):
    """AWS Signature Version 4 (botocore's signer, the ``aws`` extra).

    Without ``access_key_id`` and ``secret_access_key`` the credentials come from the
    environment: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and, when it is set,
    ``AWS_SESSION_TOKEN``. Nothing else is consulted (no instance metadata, no profiles).
    """

    type: Literal["aws_sigv4"]
    service: EnvStr = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")
    region: EnvStr = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    access_key_id: Secret
    secret_access_key: Secret
    session_token: Secret | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        given = [key for key in ("access_key_id", "secret_access_key") if key in data]
        if len(given) == 1:
            raise ValueError(
                "set both 'access_key_id' and 'secret_access_key', or neither (then "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY come from the environment)"
            )
        if given:
            return data
        environ = environ_of(info)
        session = (os.environ if environ is None else environ).get("AWS_SESSION_TOKEN")
        return {
            "access_key_id": "${AWS_ACCESS_KEY_ID}",
            "secret_access_key": "${AWS_SECRET_ACCESS_KEY}",
            **({"session_token": "${AWS_SESSION_TOKEN}"} if session else {}),
            **data,
        }

    @model_validator(mode="after")
    def _signer_installed(self) -> AwsSigV4Auth:
        if importlib.util.find_spec("botocore") is None:
            raise ValueError("aws_sigv4 needs botocore: pip install 'graftql[aws]'")
        return self


class ForwardAuth(_Model):
    """The calling client's own credential, passed to this upstream only (``headers``, by
    default just ``Authorization``). Responses fetched with it are scoped to that client."""

    type: Literal["forward"]
    headers: list[str] = Field(default_factory=lambda: ["authorization"], min_length=1)

    @field_validator("headers")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        return forwardable([_header_name(name) for name in value])


AuthConfig = Annotated[
    BearerAuth
    | ApiKeyAuth
    | BasicAuth
    | OAuth2ClientCredentials
    | HmacAuth
    | AwsSigV4Auth
    | ForwardAuth,
    Field(discriminator="type"),
]
# Each scheme by the ``type`` a user writes: "did you mean" and error paths look them up here.
AUTH_MODELS: dict[str, type[_Model]] = {
    model.model_fields["type"].annotation.__args__[0]: model  # type: ignore[union-attr]
    for model in (
        BearerAuth,
        ApiKeyAuth,
        BasicAuth,
        OAuth2ClientCredentials,
        HmacAuth,
        AwsSigV4Auth,
        ForwardAuth,
    )
}
