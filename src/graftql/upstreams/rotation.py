"""Secret rotation without a restart: ``file:`` secrets of an upstream's ``auth:`` block and
its static ``headers:`` are read again when the upstream rejects the credentials they made, and
the request is sent once more if a secret changed.

Rotating a key is then: write the new value into the file (the orchestrator's secret mount
does this), and the first 401 from the upstream makes the gateway pick it up. A 401 that a
re-read does not fix is returned as it is: one extra attempt at most, never a loop.

Concurrent rejections share one re-read: each request remembers the generation of the secrets
it was sent with, and re-reads only if nobody has since; a request sent with the old value is
retried with the new one even when another request did the re-read.

Every re-read emits the ``secret_reload`` event (key path, outcome ``changed``, ``unchanged``
or ``failed``) — never a value.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator, Mapping

import httpx
from pydantic import BaseModel

from graftql.config import AwsSigV4Auth, OAuth2ClientCredentials, Secret, UpstreamConfig
from graftql.upstreams import caller
from graftql.upstreams.events import emit

__all__ = ["RotatingAuth", "SecretFiles", "file_secrets", "rotating"]


def file_secrets(config: BaseModel, prefix: str = "auth") -> dict[str, Secret]:
    """Every ``file:`` secret in ``config``, by key path (``auth.token``)."""
    found: dict[str, Secret] = {}
    for name in type(config).model_fields:
        value = getattr(config, name)
        if isinstance(value, Secret) and value.reference.startswith("file:"):
            found[f"{prefix}.{name}"] = value
        elif isinstance(value, BaseModel):
            found.update(file_secrets(value, f"{prefix}.{name}"))
    return found


class SecretFiles:
    """An upstream's ``file:`` secrets and how often they have changed (``generation``)."""

    def __init__(self, upstream: str, secrets: Mapping[str, Secret]) -> None:
        self.upstream = upstream
        self._secrets = dict(secrets)
        self.generation = 0
        self._lock = asyncio.Lock()

    def __bool__(self) -> bool:
        return bool(self._secrets)

    async def renewed_since(self, generation: int) -> bool:
        """Has a secret changed since ``generation``? Re-reads the files unless another
        request already did after that generation."""
        async with self._lock:
            if self.generation == generation and self._reread():
                self.generation += 1
            return self.generation != generation

    def _reread(self) -> bool:
        changed = False
        current = caller.current()
        principal = current.principal if current is not None else None
        for key, secret in self._secrets.items():
            before = secret.reveal()
            try:
                secret.reload()
            except ValueError:  # unreadable or empty now: keep the value we have
                outcome = "failed"
            else:
                outcome = "unchanged" if secret.reveal() == before else "changed"
            changed = changed or outcome == "changed"
            emit("secret_reload", self.upstream, key=key, outcome=outcome, principal=principal)
        return changed


class RotatingAuth(httpx.Auth):
    """Runs ``inner``; when the upstream answers one of ``statuses`` and a re-read changed a
    secret, runs ``inner`` once more on the same request (it reads the new value).

    ``headers`` are the upstream's static header values (``Upstream._headers``) and
    ``header_secrets`` the ``file:`` secrets among them: after a change both the request being
    retried and every later request carry the new values."""

    def __init__(
        self,
        inner: httpx.Auth,
        files: SecretFiles,
        statuses: frozenset[int],
        *,
        headers: httpx.Headers | None = None,
        header_secrets: Mapping[str, Secret] | None = None,
    ) -> None:
        self._inner = inner
        self._files = files
        self._statuses = statuses
        self._headers = headers
        self._header_secrets = dict(header_secrets or {})
        self.requires_request_body = inner.requires_request_body

    @property
    def inner(self) -> httpx.Auth:
        """The credentials this wraps (``/readyz`` reads an OAuth2 token's state there)."""
        return self._inner

    def _rewrite_headers(self, request: httpx.Request) -> None:
        for name, secret in self._header_secrets.items():
            value = secret.reveal()
            request.headers[name] = value
            if self._headers is not None:
                self._headers[name] = value

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        generation = self._files.generation
        response = None
        for attempt in (1, 2):
            flow = self._inner.async_auth_flow(request)
            try:
                outgoing = await flow.__anext__()
                while True:
                    response = yield outgoing
                    try:
                        outgoing = await flow.asend(response)
                    except StopAsyncIteration:
                        break
            finally:
                await flow.aclose()
            assert response is not None  # an auth flow yields the request at least once
            if (
                attempt == 2
                or response.status_code not in self._statuses
                or not await self._files.renewed_since(generation)
            ):
                return
            self._rewrite_headers(request)

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("graftql upstreams are asynchronous")


class _NoAuth(httpx.Auth):
    """No credentials of its own (an upstream whose only secrets are static headers)."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        yield request


def rotating(
    auth: httpx.Auth | None, upstream: str, config: UpstreamConfig, headers: httpx.Headers
) -> httpx.Auth | None:
    """``auth`` wrapped so that the upstream's ``file:`` secrets are re-read after a rejection
    (401, and 403 for AWS, which answers a bad or expired key with 403); ``headers`` are the
    upstream's static headers, updated when one of their secrets changes.

    OAuth2 client credentials re-read their own secret when the token endpoint refuses it (see
    ``OAuth2ClientCredentialsAuth``): only static header secrets are watched here for them."""
    secrets: dict[str, Secret] = {}
    if config.auth is not None and not isinstance(config.auth, OAuth2ClientCredentials):
        secrets.update(file_secrets(config.auth))
    header_secrets = {
        name: value
        for name, value in config.headers.items()
        if isinstance(value, Secret) and value.reference.startswith("file:")
    }
    secrets.update({f"headers.{name}": value for name, value in header_secrets.items()})
    if not secrets:
        return auth
    statuses = frozenset({401, 403}) if isinstance(config.auth, AwsSigV4Auth) else frozenset({401})
    return RotatingAuth(
        auth if auth is not None else _NoAuth(),
        SecretFiles(upstream, secrets),
        statuses,
        headers=headers,
        header_secrets=header_secrets,
    )
