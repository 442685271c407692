"""Building the strawberry schema: the extensions, limits and masking around execution."""

from __future__ import annotations

from graftql.schema.builder import GatewaySchema, is_unexpected_error, load_schema

__all__ = ["GatewaySchema", "is_unexpected_error", "load_schema"]
