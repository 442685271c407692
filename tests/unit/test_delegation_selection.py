"""``Delegate.load`` works the forwarded selection out once per operation and field, however
many list items resolve that field: graphql-core hands each item a new list of the same field
nodes, so the work must be keyed by the nodes, not by the list."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from graphql import GraphQLObjectType, GraphQLString, SelectionSetNode, parse

import graftql.resolvers.delegation as delegation
from graftql.resolvers.delegation import Delegate


class _Operation:  # stands for the operation's Context: weakly referenced, compared by identity
    pass


def _info(context: Any, nodes: list[Any], parent: str = "OrderLine") -> Any:
    parent_type = GraphQLObjectType(parent, {"x": GraphQLString})  # type: ignore[dict-item]
    raw = SimpleNamespace(field_nodes=list(nodes), parent_type=parent_type)
    return SimpleNamespace(context=context, _raw_info=raw)


async def test_the_selection_is_worked_out_once_per_operation_and_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    document = parse("{ lines { product { name } } other: lines { product { id } } }")
    outer = document.definitions[0].selection_set.selections  # type: ignore[attr-defined]
    product = outer[0].selection_set.selections[0]
    other_product = outer[1].selection_set.selections[0]
    worked_out: list[str] = []

    def counting(info: Any, key: str) -> tuple[SelectionSetNode, str]:
        field = info._raw_info.field_nodes[0]
        worked_out.append(field.selection_set.selections[0].name.value)
        return field.selection_set, key

    monkeypatch.setattr(delegation, "forwarded_selection", counting)

    batches: list[list[Any]] = []

    async def batch(context: Any, nodes: Any, keys: list[Any]) -> list[Any]:
        batches.append(keys)
        return [{"id": key} for _, _, key in keys]

    delegate = Delegate("catalog", "products")
    monkeypatch.setattr(delegate, "_batch", batch)
    operation = _Operation()
    # five items of one list, each with a new list holding the same node, and one other field
    for key in ("p1", "p2", "p3", "p1", "p4"):
        assert await delegate.load(_info(operation, [product]), key) == {"id": key}
    assert await delegate.load(_info(operation, [other_product]), "p9") == {"id": "p9"}
    assert worked_out == ["name", "id"]
    # the same node under another parent type is worked out again; a new operation too
    await delegate.load(_info(operation, [product], parent="Cart"), "p1")
    await delegate.load(_info(_Operation(), [product]), "p1")
    assert worked_out == ["name", "id", "name", "name"]
