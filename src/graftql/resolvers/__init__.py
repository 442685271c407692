"""What resolvers stand on: the per-request Context and the named dataloaders."""

from __future__ import annotations

from graftql.resolvers.context import Context, principal_id
from graftql.resolvers.fallback import Fallback
from graftql.resolvers.loaders import BatchLoadFn, LoaderRegistry, RequestLoaders, by_key
from graftql.resolvers.permissions import PrincipalPermission

__all__ = [
    "BatchLoadFn",
    "Context",
    "Fallback",
    "LoaderRegistry",
    "PrincipalPermission",
    "RequestLoaders",
    "by_key",
    "principal_id",
]
