"""Configuration reload on SIGHUP: new upstream policies and secrets, same process.

With several workers, ``WorkerSupervisor`` (the end of this module) validates the file and
lets uvicorn replace the workers instead. ``graftql serve`` with one worker installs
``ConfigReloader``: ``kill -HUP <pid>`` reads gateway.yaml again (and
every ``file:`` and ``${VAR}`` secret it names), validates it, and applies what can change
while the gateway runs. Connections stay open and calls in flight finish under the policies
they started with; new calls get the new ones.

Reloaded in place: everything under ``upstreams.<name>`` except its ``kind`` and ``url`` —
timeouts, retry, breaker, rate limit, bulkhead, headers, credentials (the secrets are read
again; an OAuth2 token is fetched anew), endpoints, ``required``, ``dedup``, limits. A breaker,
rate limit or bulkhead whose settings did not change keeps its state.

Needs a restart (reported, not applied): ``schema``, the ``server:`` block (host, port, mode,
limits, CORS, ...), ``redis:``, an upstream's ``kind`` or ``url``, and upstreams added or
removed (the schema's resolvers name them). The reload applies the rest and says, in its log
line, which keys wait for a restart.

An invalid file is rejected as a whole: the running configuration is kept and the log line
names each problem's key, as ``graftql check`` would.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel
from uvicorn.supervisors import Multiprocess

from graftql.config import GatewayConfig, Secret, UpstreamConfig
from graftql.errors import ConfigError
from graftql.server.logs import RedactSecrets, secret_values
from graftql.upstreams import Upstreams

__all__ = ["ConfigReloader", "Reload", "WorkerSupervisor", "diff"]

logger = logging.getLogger("graftql.reload")

_ABSENT = object()
# Keys of an upstream that are the upstream itself: changing them needs a restart.
_IDENTITY = ("kind", "url")


def _flatten(value: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(value, Secret):
        # Compared by what it resolves to (a rotated file), never shown.
        out[path] = ("secret", value.reference, hashlib.sha256(value.reveal().encode()).digest())
    elif isinstance(value, BaseModel):
        for name, field in type(value).model_fields.items():
            key = field.alias or name
            _flatten(getattr(value, name), f"{path}.{key}" if path else key, out)
    elif isinstance(value, Mapping):
        if not value:
            out[path] = {}
        for key, item in value.items():
            _flatten(item, f"{path}.{key}" if path else str(key), out)
    elif isinstance(value, list | tuple):
        out[path] = ("list", len(value))  # a longer or shorter list is reported as a whole
        for index, item in enumerate(value):
            _flatten(item, f"{path}[{index}]", out)
    else:
        out[path] = value


def diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The key paths (below ``prefix``) whose values differ, secrets by their resolved value;
    sorted."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    _flatten(old, prefix, before)
    _flatten(new, prefix, after)
    changed = sorted(
        key
        for key in before.keys() | after.keys()
        if before.get(key, _ABSENT) != after.get(key, _ABSENT)
    )
    # A block that appeared, vanished or changed length is named once, not key by key.
    out: list[str] = []
    for key in changed:
        if not out or not key.startswith((f"{out[-1]}.", f"{out[-1]}[")):
            out.append(key)
    return out


class Reload:
    """What one reload did: ``applied`` and ``restart`` key paths, or ``errors``."""

    def __init__(
        self,
        applied: list[str] | None = None,
        restart: list[str] | None = None,
        errors: list[tuple[str, str]] | None = None,
    ) -> None:
        self.applied = applied or []
        self.restart = restart or []
        self.errors = errors or []

    @property
    def rejected(self) -> bool:
        return bool(self.errors)


class ConfigReloader:
    """Reloads the configuration that ``load`` returns into a running gateway's upstreams.

    ``config`` is the running configuration; after a reload it is the effective one (what
    was applied, with the keys that need a restart at their running values).
    """

    def __init__(
        self,
        load: Callable[[], GatewayConfig],
        config: GatewayConfig,
        upstreams: Upstreams,
        *,
        source: str = "gateway.yaml",
    ) -> None:
        self._load = load
        self.config = config
        self._upstreams = upstreams
        self._source = source

    def reload(self) -> Reload:
        try:
            new = self._load()
        except ConfigError as exc:
            outcome = Reload(errors=list(exc.errors))
            problems = _problems(exc)
            logger.error(
                "configuration reload rejected, the running configuration is kept: %s",
                problems,
                extra={"graftql": {"reload": "rejected", "errors": problems}},
            )
            return outcome
        old = self.config
        restart: list[str] = []
        applied: list[str] = []
        effective: dict[str, UpstreamConfig] = {}
        for key, attribute in (("schema", "schema_"), ("server", "server"), ("redis", "redis")):
            restart += diff(getattr(old, attribute), getattr(new, attribute), key)
        for name in sorted(new.upstreams.keys() - old.upstreams.keys()):
            restart.append(f"upstreams.{name} (added)")
        for name in sorted(old.upstreams.keys() - new.upstreams.keys()):
            restart.append(f"upstreams.{name} (removed)")
        for name, running in old.upstreams.items():
            wanted = new.upstreams.get(name)
            if wanted is None:
                effective[name] = running
                continue
            # Kind and URL stay as they run; every other key is taken.
            usable = wanted.model_copy(update={key: getattr(running, key) for key in _IDENTITY})
            restart += [
                f"upstreams.{name}.{key}"
                for key in _IDENTITY
                if getattr(wanted, key) != getattr(running, key)
            ]
            changes = diff(running, usable, f"upstreams.{name}")
            if not changes:
                effective[name] = running
                continue
            try:
                self._upstreams[name].reconfigure(usable, shared=self._upstreams.shared)
            except Exception:  # a bug, not a bad file: keep this upstream as it was
                logger.exception("reloading upstream %s failed; it keeps its settings", name)
                effective[name] = running
                continue
            effective[name] = usable
            applied += changes
        self.config = old.model_copy(update={"upstreams": effective})
        _mask_new_secrets(self.config)
        outcome = Reload(applied=applied, restart=restart)
        message = f"configuration reloaded from {self._source}: " + (
            f"applied {', '.join(applied)}" if applied else "no change to apply"
        )
        if restart:
            message += f"; NOT applied, these need a restart: {', '.join(restart)}"
        logger.log(
            logging.WARNING if restart else logging.INFO,
            "%s",
            message,
            extra={"graftql": {"reload": "applied", "applied": applied, "needs_restart": restart}},
        )
        return outcome

    def install(self) -> bool:
        """Reload on SIGHUP, in the running event loop (which must be the main thread's)."""
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reload)
        except (ValueError, RuntimeError, NotImplementedError, AttributeError) as exc:
            logger.warning("configuration reload on SIGHUP is not available here: %s", exc)
            return False
        return True

    def uninstall(self) -> None:
        try:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        except (ValueError, RuntimeError, NotImplementedError, AttributeError):
            pass


def _mask_new_secrets(config: GatewayConfig) -> None:
    """Rotated secrets are masked in the logs from now on (the old ones stay masked too)."""
    secrets = secret_values(config)
    for handler in logging.getLogger().handlers:
        for found in handler.filters:
            if isinstance(found, RedactSecrets):
                found.add(secrets)


def _problems(error: ConfigError) -> str:
    return "; ".join(f"{path}: {reason}" if path else reason for path, reason in error.errors)


class WorkerSupervisor(Multiprocess):
    """uvicorn's supervisor of ``--workers N``, whose SIGHUP first validates the file: a
    file that does not load is rejected with one log line and the workers keep running;
    otherwise uvicorn replaces the workers one by one (each new one is ready before an old one
    stops), and they read everything afresh: with several workers a reload applies the whole
    file except ``server.host`` and ``server.port`` (the supervisor's socket)."""

    def __init__(
        self, config: Any, sockets: Any, *, load: Callable[[], GatewayConfig], source: str
    ) -> None:
        super().__init__(config, sockets=sockets)
        self._load = load
        self._source = source

    def handle_hup(self) -> None:
        try:
            self._load()
        except ConfigError as exc:
            problems = _problems(exc)
            logger.error(
                "configuration reload rejected, the workers keep the running configuration: %s",
                problems,
                extra={"graftql": {"reload": "rejected", "errors": problems}},
            )
            return
        logger.info(
            "configuration reloaded from %s: replacing the workers one by one",
            self._source,
            extra={"graftql": {"reload": "restarting_workers"}},
        )
        super().handle_hup()
