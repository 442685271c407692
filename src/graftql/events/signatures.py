"""Webhook signature verification, on the raw body bytes, for four schemes.

- ``standard``: Standard Webhooks (https://www.standardwebhooks.com/). Headers
  ``webhook-id``, ``webhook-timestamp``, ``webhook-signature`` (space-separated ``v1,<base64>``);
  signed text ``<id>.<timestamp>.<body>``, HMAC-SHA256 with the ``whsec_`` secret's bytes. The
  HMAC is the ``standardwebhooks`` library's ``Webhook.sign``; the header parsing and the
  timestamp check are ours, so the tolerance is configurable and the clock injectable.
- ``stripe``: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]``; signed text
  ``<t>.<body>``, HMAC-SHA256 hex with the secret as text. The event id is the payload's ``id``.
- ``github``: ``X-Hub-Signature-256: sha256=<hex>`` over the body; no timestamp, so no
  staleness check (GitHub signs none); the event id is ``X-GitHub-Delivery``.
- ``hmac``: a configurable header, algorithm, encoding and signed text.

Several secrets may be valid at once (rotation): a delivery passes if any signature in it
matches any secret. Comparisons are constant-time. Failures raise ``SignatureRejected`` with
the HTTP status to answer (400 for malformed headers, 401 for a missing or wrong signature or
a stale timestamp) and a short reason that names no secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from graftql.config.webhooks import WebhookSourceConfig, standard_secret
from graftql.errors import WebhookError

__all__ = ["SignatureRejected", "Verified", "Verifier"]


class SignatureRejected(WebhookError):
    """A delivery failed verification; ``status`` is the HTTP answer, ``reason`` a short label
    for metrics (``missing``, ``malformed``, ``mismatch``, ``stale``)."""

    def __init__(self, message: str, *, status: int = 401, reason: str = "mismatch") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Verified:
    """What verification established: the sender's event id (None if the scheme has none)
    and the signed timestamp (None for github)."""

    event_id: str | None
    timestamp: float | None


def _malformed(what: str) -> SignatureRejected:
    return SignatureRejected(f"malformed {what}", status=400, reason="malformed")


def _missing(what: str) -> SignatureRejected:
    return SignatureRejected(f"missing {what}", status=401, reason="missing")


_MISMATCH = "no signature matches"


class Verifier:
    """Checks deliveries for one source. ``clock`` returns Unix seconds (tests inject one)."""

    def __init__(
        self, config: WebhookSourceConfig, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self.clock = clock

    def _secrets(self) -> list[str]:
        return [secret.reveal() for secret in self.config.secrets]

    def verify(self, body: bytes, headers: Mapping[str, str]) -> Verified:
        """``headers``: lower-case names. Raises ``SignatureRejected``."""
        scheme = self.config.scheme
        if scheme == "standard":
            return self._standard(body, headers)
        if scheme == "stripe":
            return self._stripe(body, headers)
        if scheme == "github":
            return self._github(body, headers)
        return self._hmac(body, headers)

    def _check_time(self, text: str) -> float:
        try:
            timestamp = int(text.strip())
        except ValueError:
            raise _malformed("timestamp") from None
        if abs(self.clock() - timestamp) > self.config.tolerance:
            raise SignatureRejected("timestamp outside the tolerance", reason="stale")
        return float(timestamp)

    def _standard(self, body: bytes, headers: Mapping[str, str]) -> Verified:
        msg_id = headers.get("webhook-id")
        stamp = headers.get("webhook-timestamp")
        signature = headers.get("webhook-signature")
        if not (msg_id and stamp and signature):
            raise _missing("webhook-id, webhook-timestamp or webhook-signature")
        timestamp = self._check_time(stamp)
        try:
            text = body.decode("utf-8")  # the library signs text; UTF-8 round-trips exactly
            given: list[bytes] = []
            for part in signature.split():
                version, _, value = part.partition(",")
                if version == "v1":
                    given.append(base64.b64decode(value, validate=True))
            # The library's signing, with the signed timestamp as the sender wrote it.
            expected = [
                base64.b64decode(
                    Webhook(standard_secret(secret))
                    .sign(msg_id, datetime.fromtimestamp(timestamp, tz=UTC), text)
                    .partition(",")[2]
                )
                for secret in self._secrets()
            ]
        except (ValueError, binascii.Error):  # bad UTF-8, bad base64
            raise _malformed("webhook-signature or body") from None
        if not given:
            raise _malformed("webhook-signature (no v1 signature)")
        if not _any_equal(given, expected):
            raise SignatureRejected(_MISMATCH)
        return Verified(event_id=msg_id, timestamp=timestamp)

    def _stripe(self, body: bytes, headers: Mapping[str, str]) -> Verified:
        header = headers.get("stripe-signature")
        if not header:
            raise _missing("Stripe-Signature")
        stamp: str | None = None
        given: list[bytes] = []
        for item in header.split(","):
            key, sep, value = item.strip().partition("=")
            if not sep:
                raise _malformed("Stripe-Signature")
            if key == "t":
                stamp = value
            elif key == "v1":
                try:
                    given.append(bytes.fromhex(value))
                except ValueError:
                    raise _malformed("Stripe-Signature") from None
        if stamp is None or not given:
            raise _malformed("Stripe-Signature (needs t= and v1=)")
        timestamp = self._check_time(stamp)
        signed = stamp.strip().encode() + b"." + body
        expected = [_mac(secret.encode(), signed, "sha256") for secret in self._secrets()]
        if not _any_equal(given, expected):
            raise SignatureRejected(_MISMATCH)
        return Verified(event_id=None, timestamp=timestamp)  # the id is in the payload

    def _github(self, body: bytes, headers: Mapping[str, str]) -> Verified:
        header = headers.get("x-hub-signature-256")
        if not header:
            raise _missing("X-Hub-Signature-256")
        algorithm, sep, value = header.partition("=")
        if algorithm != "sha256" or not sep:
            raise _malformed("X-Hub-Signature-256")
        try:
            given = bytes.fromhex(value)
        except ValueError:
            raise _malformed("X-Hub-Signature-256") from None
        expected = [_mac(secret.encode(), body, "sha256") for secret in self._secrets()]
        if not _any_equal([given], expected):
            raise SignatureRejected(_MISMATCH)
        return Verified(event_id=headers.get("x-github-delivery") or None, timestamp=None)

    def _hmac(self, body: bytes, headers: Mapping[str, str]) -> Verified:
        scheme = self.config.hmac
        assert scheme is not None  # the config requires it
        header = headers.get(scheme.header.lower())
        if not header:
            raise _missing(scheme.header)
        if not header.startswith(scheme.prefix):
            raise _malformed(scheme.header)
        value = header[len(scheme.prefix) :].strip()
        try:
            given = bytes.fromhex(value) if scheme.encoding == "hex" else _b64(value)
        except (ValueError, binascii.Error):
            raise _malformed(scheme.header) from None
        timestamp: float | None = None
        signed = body
        if scheme.timestamp_header is not None:
            stamp = headers.get(scheme.timestamp_header.lower())
            if not stamp:
                raise _missing(scheme.timestamp_header)
            timestamp = self._check_time(stamp)
            before, _, after = scheme.signed_payload.partition("{body}")
            signed = (
                before.replace("{timestamp}", stamp.strip()).encode()
                + body
                + after.replace("{timestamp}", stamp.strip()).encode()
            )
        expected = [_mac(s.encode(), signed, scheme.algorithm) for s in self._secrets()]
        if not _any_equal([given], expected):
            raise SignatureRejected(_MISMATCH)
        event_id = headers.get(scheme.id_header.lower()) if scheme.id_header else None
        return Verified(event_id=event_id or None, timestamp=timestamp)


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _mac(key: bytes, data: bytes, algorithm: str) -> bytes:
    return hmac.new(key, data, getattr(hashlib, algorithm)).digest()


def _any_equal(given: list[bytes], expected: list[bytes]) -> bool:
    # Every pair is compared (no early exit), so timing does not tell which secret matched.
    matched = False
    for one in given:
        for other in expected:
            matched |= hmac.compare_digest(one, other)
    return matched
