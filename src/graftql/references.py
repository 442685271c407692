"""References in gateway.yaml: ``${VAR}``, ``${VAR:-default}`` and ``file:/path``, and the
``Secret`` type that holds a credential given by reference without ever showing it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, GetCoreSchemaHandler, ValidationInfo
from pydantic_core import core_schema

__all__ = ["EnvStr", "Secret", "environ_of", "expand_env", "is_reference"]

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_WHOLE_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}$")


def expand_env(value: Any, environ: Mapping[str, str] | None = None) -> Any:
    """Replace each ``${VAR}`` / ``${VAR:-default}`` in a string; ``$${`` stays a literal ``${``.

    Variables come from ``environ`` (default: the process environment).
    """
    if not isinstance(value, str) or "${" not in value:
        return value
    env = os.environ if environ is None else environ

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = env.get(name)
        if found is None:
            if default is None:
                raise ValueError(f"environment variable {name} is not set")
            return default
        return found

    parts = value.split("$${")
    return "${".join(_REF.sub(replace, part) for part in parts)


def environ_of(info: ValidationInfo) -> Mapping[str, str] | None:
    context = info.context
    return context.get("environ") if isinstance(context, dict) else None


EnvStr = Annotated[str, BeforeValidator(lambda v, info: expand_env(v, environ_of(info)))]


class Secret:
    """A credential given by reference; its value is never shown by ``str`` or ``repr``.

    ``reference`` is what the file said (``${CRM_API_KEY}`` or ``file:/run/secrets/crm``);
    ``reveal()`` returns the value. ``file:`` secrets are read again by ``reload()`` so that a
    rotated key takes effect without a restart.
    """

    __slots__ = ("_value", "reference")

    def __init__(self, reference: str, *, environ: Mapping[str, str] | None = None) -> None:
        self.reference = reference
        self._value = self._resolve(environ)
        if not self._value:
            raise ValueError("the secret is empty")

    def _resolve(self, environ: Mapping[str, str] | None = None) -> str:
        ref = self.reference
        if ref.startswith("file:"):
            path = Path(ref[len("file:") :])
            try:
                return path.read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None
        match = _WHOLE_REF.match(ref)
        if match is None:
            raise ValueError(
                "must be a secret reference (${ENV_VAR}, ${ENV_VAR:-default} or file:/path), "
                "not a literal value"
            )
        result: str = expand_env(ref, environ)
        return result

    def reveal(self) -> str:
        return self._value

    def reload(self) -> None:
        """Resolve the reference again; an unreadable or empty value raises ``ValueError`` and
        keeps the current one (a file caught mid-rotation must not blank the credential)."""
        value = self._resolve()
        if not value:
            raise ValueError("the secret is empty")
        self._value = value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.reference == self.reference

    def __hash__(self) -> int:
        return hash(self.reference)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def validate(value: Any, info: ValidationInfo) -> Secret:
            if isinstance(value, Secret):
                return value
            if not isinstance(value, str):
                raise ValueError("must be a secret reference string")
            return cls(value, environ=environ_of(info))

        return core_schema.with_info_plain_validator_function(
            validate,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda _: "***"),
        )


def is_reference(value: str) -> bool:
    """Is ``value`` a whole secret reference (``${VAR}``, ``${VAR:-x}`` or ``file:/path``)?"""
    return value.startswith("file:") or _WHOLE_REF.match(value) is not None
