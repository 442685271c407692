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


class _Upstream:
    def __init__(self) -> None:
        self.sent: list[tuple[Any, dict[str, Any]]] = []

    async def execute(self, document: Any, variables: dict[str, Any]) -> Any:
        self.sent.append((document, variables))
        return {
            f"s{i}": [{"id": key} for key in ids]
            for i, ids in enumerate(variables[f"k{i}"] for i in range(len(variables)))
        }


async def test_the_lookup_document_is_printed_once_per_combination_of_selections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    printed: list[str] = []
    real_print = delegation.print_ast

    def counting(node: Any) -> str:
        text = real_print(node)
        printed.append(text)
        return text

    monkeypatch.setattr(delegation, "print_ast", counting)
    upstream = _Upstream()
    context = SimpleNamespace(upstreams=SimpleNamespace(graphql=lambda name: upstream))
    name, price = parse("{ name id }").definitions[0], parse("{ price id }").definitions[0]
    nodes = {"{name id}": name.selection_set, "{price id}": price.selection_set}  # type: ignore[attr-defined]
    delegate = Delegate("catalog", "products")

    one = [("{name id}", "id", "p1"), ("{name id}", "id", "p2")]
    assert await delegate._batch(context, nodes, one) == [{"id": "p1"}, {"id": "p2"}]
    assert await delegate._batch(context, nodes, [("{name id}", "id", "p3")]) == [{"id": "p3"}]
    both = [("{price id}", "id", "p4"), ("{name id}", "id", "p5")]
    assert await delegate._batch(context, nodes, both) == [{"id": "p4"}, {"id": "p5"}]

    documents = [document for document, _ in upstream.sent]
    assert documents[0] == documents[1] == printed[0]  # the same text, printed once
    assert " ".join(documents[0].split()) == (
        "query GraftqlDelegate($k0: [ID!]!) { s0: products(ids: $k0) { name id } }"
    )
    assert len(printed) == 2 and documents[2] == printed[1]
    assert " ".join(documents[2].split()) == (
        "query GraftqlDelegate($k0: [ID!]!, $k1: [ID!]!) "
        "{ s0: products(ids: $k0) { price id } s1: products(ids: $k1) { name id } }"
    )
    assert [variables for _, variables in upstream.sent] == [
        {"k0": ["p1", "p2"]},
        {"k0": ["p3"]},
        {"k0": ["p4"], "k1": ["p5"]},
    ]
