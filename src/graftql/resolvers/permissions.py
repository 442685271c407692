"""``PrincipalPermission``: field-level authorization on the operation's principal.

A strawberry permission class whose decision is a function of who asks (the claims that
``server.auth`` validated, ``Context.principal``) and of the object the field belongs to
(``source``). Put it on the fields of a type to protect the type wherever it is reached —
through any field, alias, fragment, interface or union — since a field's permission runs each
time that field is resolved, however the query got there::

    class OwnOrder(PrincipalPermission):
        message = "only the customer who placed this order may read it"

        def allows(self, principal, source):
            return principal.get("sub") == source.customer_id

    @strawberry.type
    class Order:
        total: Money = strawberry.field(permission_classes=[OwnOrder])

An anonymous client gets ``UNAUTHENTICATED``, a signed-in one who is not allowed ``FORBIDDEN``;
either way the field is null with the error on its path (docs/identity.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from strawberry.permission import BasePermission
from strawberry.types import Info

from graftql.errors import Forbidden, Unauthenticated

__all__ = ["PrincipalPermission"]


class PrincipalPermission(BasePermission):
    """Subclass it and write ``allows(principal, source)``; set ``message`` for the refusal.

    One instance serves every request (strawberry makes it once per field), so keep no
    per-request state on ``self``."""

    message = "you may not read this field"

    def allows(self, principal: Mapping[str, Any], source: Any) -> bool:
        raise NotImplementedError

    def has_permission(self, source: Any, info: Info[Any, Any], **kwargs: Any) -> bool:
        principal: Mapping[str, Any] = getattr(info.context, "principal", None) or {}
        if not principal:
            raise Unauthenticated("sign in to read this field")
        return self.allows(principal, source)

    def on_unauthorized(self) -> None:
        raise Forbidden(self.message or "you may not read this field")
