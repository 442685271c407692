"""What resolvers stand on: the per-request Context, named dataloaders and their declared
shapes, delegation to GraphQL upstreams, pagination to connections, mapping, bulk calls."""

from __future__ import annotations

from graftql.resolvers.batch import GraphQLAliases, GraphQLBatch, RestBatch, RestEach
from graftql.resolvers.bulk import BulkError, BulkResult, run_bulk
from graftql.resolvers.context import Context, principal_id
from graftql.resolvers.delegation import Delegate, requires, upstream_field
from graftql.resolvers.fallback import Fallback
from graftql.resolvers.loaders import BatchLoadFn, LoaderRegistry, RequestLoaders, by_key
from graftql.resolvers.mapping import Date, Mapped, MinorUnits, path, to_minor_units
from graftql.resolvers.pagination import (
    Connection,
    CursorParam,
    Edge,
    LinkHeader,
    OffsetLimit,
    PageInfo,
    PageNumber,
    RestPages,
)
from graftql.resolvers.permissions import PrincipalPermission

__all__ = [
    "BatchLoadFn",
    "BulkError",
    "BulkResult",
    "Connection",
    "Context",
    "CursorParam",
    "Date",
    "Delegate",
    "Edge",
    "Fallback",
    "GraphQLAliases",
    "GraphQLBatch",
    "LinkHeader",
    "LoaderRegistry",
    "Mapped",
    "MinorUnits",
    "OffsetLimit",
    "PageInfo",
    "PageNumber",
    "PrincipalPermission",
    "RequestLoaders",
    "RestBatch",
    "RestEach",
    "RestPages",
    "by_key",
    "path",
    "principal_id",
    "requires",
    "run_bulk",
    "to_minor_units",
    "upstream_field",
]
