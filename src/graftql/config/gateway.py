"""The whole of gateway.yaml, and loading it with errors that name the key."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from graftql.config._base import _Model
from graftql.config.auth import AUTH_MODELS
from graftql.config.events import EventsConfig
from graftql.config.server import ServerConfig
from graftql.config.upstream import UpstreamConfig
from graftql.config.webhooks import WebhookSourceConfig
from graftql.errors import ConfigError
from graftql.references import EnvStr, Secret


class RedisConfig(_Model):
    """The ``redis:`` block: the Redis that replicas share state through."""

    url: EnvStr = "redis://127.0.0.1:6379/0"
    password: Secret | None = None
    key_prefix: str = Field("graftql:", pattern=r"^[A-Za-z0-9_.:-]*$")
    # Each Redis command's limit: Redis sits on the path of every upstream call that uses a
    # shared policy, so a slow Redis must not become a slow gateway.
    timeout: float = Field(0.25, gt=0, le=10, description="seconds")

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        match = re.match(r"^(rediss?|unix)://([^@/]*@)?", value)
        if not match:
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        if match.group(2) and ":" in match.group(2):
            raise ValueError(
                "must not contain a password; set 'password' to a secret reference instead"
            )
        return value


class GatewayConfig(_Model):
    """The whole of gateway.yaml."""

    schema_: EnvStr = Field(alias="schema", description="module.path:attribute of the schema")
    server: ServerConfig = Field(default_factory=ServerConfig)
    redis: RedisConfig | None = None
    upstreams: dict[str, UpstreamConfig] = Field(default_factory=dict)
    events: EventsConfig = Field(default_factory=EventsConfig)  # docs/realtime.md
    webhooks: dict[str, WebhookSourceConfig] = Field(default_factory=dict)  # docs/realtime.md

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("schema_")
    @classmethod
    def _schema_ref(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", value):
            raise ValueError("must look like 'package.module:attribute'")
        return value

    @field_validator("upstreams")
    @classmethod
    def _names(cls, value: dict[str, UpstreamConfig]) -> dict[str, UpstreamConfig]:
        for name in value:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ValueError(f"{name!r}: upstream names are lower_snake_case identifiers")
        return value

    @field_validator("webhooks")
    @classmethod
    def _webhook_names(cls, value: dict[str, WebhookSourceConfig]) -> dict[str, Any]:
        for name in value:  # the name is a URL path segment: /webhooks/<name>
            if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
                raise ValueError(f"{name!r}: webhook source names are lower-case identifiers")
        return value

    @model_validator(mode="after")
    def _polled_upstreams(self) -> GatewayConfig:
        for name, source in self.events.polling.items():
            upstream = self.upstreams.get(source.upstream)
            if upstream is None or upstream.kind != "rest":
                raise ValueError(
                    f"events.polling.{name}.upstream: {source.upstream!r} is not a configured "
                    "REST upstream"
                )
        return self

    @model_validator(mode="after")
    def _shared_needs_redis(self) -> GatewayConfig:
        if self.redis is not None:
            return self
        problems: list[dict[str, tuple[str, ...]]] = []
        if self.events.bus.backend == "redis":
            problems.append({"loc": ("events", "bus", "backend")})
        if self.events.inbox.backend == "redis":
            problems.append({"loc": ("events", "inbox", "backend")})
        if self.server.rate_limit is not None and self.server.rate_limit.shared:
            problems.append({"loc": ("server", "rate_limit", "shared")})
        for name, upstream in self.upstreams.items():
            if upstream.breaker.shared:
                problems.append({"loc": ("upstreams", name, "breaker", "shared")})
            if upstream.rate_limit is not None and upstream.rate_limit.shared:
                problems.append({"loc": ("upstreams", name, "rate_limit", "shared")})
        if problems:
            raise ValidationError.from_exception_data(
                "GatewayConfig",
                [
                    {
                        "type": "value_error",
                        "loc": problem["loc"],
                        "input": True,
                        "ctx": {"error": "needs the top-level 'redis:' block"},
                    }
                    for problem in problems
                ],
            )
        return self


def _suggest(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """'did you mean' for an unknown key, by walking the models along the key path."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part) or next(
                (f for f in current.model_fields.values() if f.alias == part), None
            )
            current = field.annotation if field else None
        elif part in AUTH_MODELS:
            current = AUTH_MODELS[part]
        else:
            args = getattr(current, "__args__", ())
            current = next(
                (a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None
            )
    if isinstance(current, type) and issubclass(current, BaseModel):
        names = [f.alias or n for n, f in current.model_fields.items()]
        close = difflib.get_close_matches(str(loc[-1]), names, n=1)
        if close:
            return f" (did you mean '{close[0]}'?)"
    return ""


def _path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for i, part in enumerate(loc):
        if part in AUTH_MODELS and i > 0 and loc[i - 1] == "auth":
            continue  # pydantic puts the union tag in the path; a user never typed it
        parts.append(f"[{part}]" if isinstance(part, int) else str(part))
    return ".".join(parts).replace(".[", "[")


def errors_of(exc: ValidationError) -> list[tuple[str, str]]:
    """Each validation problem as (key path, reason), as ConfigError carries them."""
    out: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            reason = "unknown key" + _suggest(GatewayConfig, loc)
        elif kind == "missing":
            reason = "required key is missing"
        elif kind == "union_tag_invalid":
            reason = f"unknown type {err['input'].get('type')!r}; expected one of " + ", ".join(
                sorted(AUTH_MODELS)
            )
        elif kind == "union_tag_not_found":
            reason = "'type' is required; one of " + ", ".join(sorted(AUTH_MODELS))
        else:
            msg = err["msg"].removeprefix("Value error, ")
            reason = msg[:1].lower() + msg[1:]
        out.append((_path(loc), reason))
    return out


def parse_config(
    data: Any, *, source: str = "gateway.yaml", environ: Mapping[str, str] | None = None
) -> GatewayConfig:
    """Validate an already-parsed YAML document; ``${VAR}`` comes from ``environ``
    (default: the process environment)."""
    if not isinstance(data, dict):
        raise ConfigError.at("", f"{source}: the top level must be a mapping of keys")
    try:
        return GatewayConfig.model_validate(data, context={"environ": environ})
    except ValidationError as exc:
        raise ConfigError(errors_of(exc)) from None


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> GatewayConfig:
    """Read, parse and validate gateway.yaml; every problem raises ``ConfigError``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError.at("", f"{file}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError.at("", f"{file}: cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError.at("", f"{file}: invalid YAML{where}: {problem}") from None
    return parse_config(data, source=str(file), environ=environ)
