"""GraphiQL: strawberry's page from a CDN, or served by the gateway with its files from npm
(``server.graphiql_assets``; ``graftql graphiql-assets`` installs them)."""

from __future__ import annotations

from graftql.server.graphiql.page import (
    ASSETS_PATH,
    Asset,
    GraphiQLPage,
    OfflineGraphiQL,
    page_assets,
)

__all__ = ["ASSETS_PATH", "Asset", "GraphiQLPage", "OfflineGraphiQL", "page_assets"]
