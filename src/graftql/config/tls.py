"""An upstream's ``tls:`` block: whom to trust, which certificate to show, which versions.

The files are checked when the configuration loads (they exist, parse, and the key matches the
certificate), so a wrong path stops start-up with the key path instead of failing every call.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

from pydantic import field_validator, model_validator

from graftql.config._base import _Model, key_error
from graftql.references import EnvStr


class TlsConfig(_Model):
    """``ca_bundle``: PEM file of the CAs to trust instead of the system's; ``client_cert`` and
    ``client_key``: PEM files for mutual TLS; ``min_version``: the oldest TLS version accepted.
    Certificate verification is always on."""

    ca_bundle: EnvStr | None = None
    client_cert: EnvStr | None = None
    client_key: EnvStr | None = None
    min_version: Literal["1.2", "1.3"] = "1.2"

    @field_validator("ca_bundle", "client_cert", "client_key")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @model_validator(mode="after")
    def _loads(self) -> TlsConfig:
        if self.client_key is not None and self.client_cert is None:
            raise key_error("TlsConfig", ("client_cert",), "required with 'client_key'", None)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.ca_bundle is not None:
            try:
                context.load_verify_locations(cafile=self.ca_bundle)
            except (ssl.SSLError, ValueError) as exc:
                raise key_error(
                    "TlsConfig", ("ca_bundle",), f"no PEM certificate in it ({exc})", None
                ) from None
        if self.client_cert is not None:
            try:
                context.load_cert_chain(self.client_cert, self.client_key, password=_no_password)
            except ssl.SSLError as exc:
                raise key_error(
                    "TlsConfig",
                    ("client_key" if self.client_key else "client_cert",),
                    "cannot load the certificate and its key (not PEM, an encrypted key, or a "
                    f"key that does not match the certificate: {exc.reason or exc})",
                    None,
                ) from None
        return self


def _no_password() -> bytes:
    return b""  # an encrypted key fails to load instead of prompting on a terminal
