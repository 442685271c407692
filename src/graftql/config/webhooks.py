"""The ``webhooks:`` block: one route per source, ``POST /webhooks/<name>`` (docs/realtime.md)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from graftql.config._base import _Model, _network
from graftql.references import Secret

__all__ = ["HmacSchemeConfig", "WebhookSourceConfig"]

_TEMPLATE = re.compile(r"\{([^{}]*)\}")
_FIELD = re.compile(r"[A-Za-z_][\w-]*(\.[\w-]+)*")


def _template(value: str) -> str:
    for name in _TEMPLATE.findall(value):
        if not _FIELD.fullmatch(name):
            raise ValueError(f"{{{name}}}: placeholders are payload fields, e.g. {{data.id}}")
    return value


Template = Annotated[str, AfterValidator(_template)]


class HmacSchemeConfig(_Model):
    """``webhooks.<name>.hmac``: a generic HMAC signature, for senders with no standard."""

    header: str = Field("X-Signature", pattern=r"^[A-Za-z0-9-]+$")
    algorithm: Literal["sha256", "sha512", "sha1"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    # Text before the signature in the header, e.g. "sha256=".
    prefix: str = ""
    # A header carrying the Unix time the sender signed at; with it, stale deliveries are
    # refused and the signed text is ``signed_payload``.
    timestamp_header: str | None = Field(None, pattern=r"^[A-Za-z0-9-]+$")
    # What is signed: {timestamp} and {body} (the raw body bytes).
    signed_payload: str = "{body}"
    # A header carrying the sender's event id (for deduplication); else the payload's ``id``.
    id_header: str | None = Field(None, pattern=r"^[A-Za-z0-9-]+$")

    @field_validator("signed_payload")
    @classmethod
    def _payload(cls, value: str) -> str:
        if "{body}" not in value:
            raise ValueError("must contain {body}")
        if set(_TEMPLATE.findall(value)) - {"body", "timestamp"}:
            raise ValueError("only {body} and {timestamp} may be used")
        return value

    @model_validator(mode="after")
    def _timestamp_header(self) -> HmacSchemeConfig:
        if "{timestamp}" in self.signed_payload and self.timestamp_header is None:
            raise ValueError("'signed_payload' uses {timestamp}: set 'timestamp_header'")
        return self


class WebhookSourceConfig(_Model):
    """``webhooks.<name>``: one sender, its signature scheme and where its events go."""

    # standard: Standard Webhooks (webhook-id/-timestamp/-signature); stripe: Stripe-Signature;
    # github: X-Hub-Signature-256; hmac: the ``hmac`` block.
    scheme: Literal["standard", "stripe", "github", "hmac"]
    # Every secret that is currently valid; more than one while a secret is rotated.
    secrets: list[Secret] = Field(min_length=1)
    hmac: HmacSchemeConfig | None = None
    # How far the signed timestamp may be from now, either way (not for github: no timestamp).
    tolerance: float = Field(300.0, gt=0, le=86400, description="seconds")
    # A larger body is refused with 413 before it is read in full.
    max_body_bytes: int = Field(1024 * 1024, ge=1, le=100 * 1024 * 1024)
    # When set, only these peers (addresses or networks) may deliver; 403 for others.
    allow_ips: list[Annotated[str, AfterValidator(_network)]] = Field(default_factory=list)
    # Proxies whose X-Forwarded-For is believed for allow_ips; default: server.rate_limit's.
    trusted_proxies: list[Annotated[str, AfterValidator(_network)]] | None = None
    # The bus topic for each event: {field} placeholders from the JSON payload, plus {source},
    # {type} and {id}.
    topic: Template = "webhook.{source}"
    # Payload field with the event type (github: the X-GitHub-Event header).
    type_field: str = Field("type", pattern=r"^[\w-]+(\.[\w-]+)*$")
    # The entity an event changes, and its version: an event whose version is lower than one
    # already processed for the same entity is not published (docs/realtime.md, "Ordering").
    # Without ``entity`` events are never ordered.
    entity: Template | None = None
    # Payload field holding the version (a number or an ISO-8601 time); default: the signed
    # timestamp (github: the time of receipt).
    version_field: str | None = Field(None, pattern=r"^[\w-]+(\.[\w-]+)*$")
    # Cache tags to invalidate per event (templates like ``topic``).
    invalidate: list[Template] = Field(default_factory=list)

    @model_validator(mode="after")
    def _scheme_settings(self) -> WebhookSourceConfig:
        if self.scheme == "hmac" and self.hmac is None:
            raise ValueError("scheme 'hmac' needs the 'hmac' block")
        if self.scheme != "hmac" and self.hmac is not None:
            raise ValueError("'hmac' is only for scheme 'hmac'")
        if self.scheme == "standard":
            for secret in self.secrets:
                standard_secret(secret.reveal())
        return self


def standard_secret(value: str) -> bytes:
    """A Standard Webhooks secret (``whsec_`` + base64) as key bytes; ValueError if it is not."""
    text = value.removeprefix("whsec_")
    try:
        key = base64.b64decode(text + "==", validate=False)
    except (binascii.Error, ValueError):
        raise ValueError("a Standard Webhooks secret is 'whsec_' followed by base64") from None
    if not key:
        raise ValueError("a Standard Webhooks secret must not be empty")
    return key
