"""What resolvers stand on: the per-request Context and the named dataloaders."""

from __future__ import annotations

from graftql.resolvers.batch import GraphQLAliases, GraphQLBatch, RestBatch, RestEach
from graftql.resolvers.context import Context, principal_id
from graftql.resolvers.fallback import Fallback
from graftql.resolvers.loaders import BatchLoadFn, LoaderRegistry, RequestLoaders, by_key

__all__ = [
    "BatchLoadFn",
    "Context",
    "Fallback",
    "GraphQLAliases",
    "GraphQLBatch",
    "LoaderRegistry",
    "RequestLoaders",
    "RestBatch",
    "RestEach",
    "by_key",
    "principal_id",
]
