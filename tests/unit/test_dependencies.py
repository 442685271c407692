"""gql 4.x imports the `httpx2` fork instead of httpx when it is installed; we use httpx."""

from __future__ import annotations

import importlib.metadata
import importlib.util

import gql.transport.httpx as gql_httpx
import httpx

from graftql.upstreams import base


def test_gql_transport_and_graftql_use_the_same_httpx_module() -> None:
    assert gql_httpx.httpx is httpx
    assert base.httpx is httpx
    # An AsyncClient made by graftql must be the class gql's transport type-checks against.
    assert gql_httpx.httpx.AsyncClient is httpx.AsyncClient


def test_httpx2_is_not_installed() -> None:
    assert importlib.util.find_spec("httpx2") is None
    names = {dist.metadata["Name"].lower() for dist in importlib.metadata.distributions()}
    assert "httpx2" not in names
