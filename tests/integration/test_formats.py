"""XML upstreams (namespaces, repeated elements, attributes, entities, size cap) and the
declarative mapping, through a real upstream: malformed payloads are UPSTREAM_BAD_RESPONSE
on the field that needed them, never a 500."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
import strawberry

from graftql import Context, GatewaySchema, LoaderRegistry, RestBatch
from graftql.resolvers.mapping import Date, Mapped, MinorUnits, path
from graftql.testing import ChaosUpstream
from graftql.testing.behaviours import Respond
from integration.helpers import graphql, serve


class InvoiceRow(Mapped):
    id: str = path("@id")
    total: MinorUnits = path("total.#text")
    currency: str = path("total.@currency")
    due: Date
    tags: list[str] = path("tags.tag")


@strawberry.type
class Invoice:
    id: strawberry.ID
    total: int
    currency: str
    due: datetime.date
    tags: list[str]

    @classmethod
    def build(cls, raw: Any) -> Invoice:
        row = InvoiceRow.from_upstream("billing", raw)
        return cls(id=row.id, total=row.total, currency=row.currency, due=row.due, tags=row.tags)


loaders = LoaderRegistry()
loaders.add(
    "invoices",
    RestBatch("billing", "/invoices", key="@id", items="invoices.invoice", build=Invoice.build),
)


@strawberry.type
class Query:
    @strawberry.field
    async def invoice(self, info: strawberry.Info[Context, None], id: str) -> Invoice | None:
        invoice: Invoice | None = await info.context.loaders.invoices.load(id)
        return invoice

    @strawberry.field
    def ok(self) -> bool:
        return True


SCHEMA = GatewaySchema(query=Query, loaders=loaders)

# The upstream's own prefix ("b:") is its choice; the configuration names the namespace.
INVOICES = """<?xml version="1.0" encoding="UTF-8"?>
<b:invoices xmlns:b="urn:example:billing">
  <b:invoice id="i1"><b:total currency="EUR">12.30</b:total><b:due>2024-06-01</b:due>
    <b:tags><b:tag>urgent</b:tag><b:tag>q2</b:tag></b:tags></b:invoice>
  <b:invoice id="i2"><b:total currency="JPY">1500</b:total><b:due>2024-07-01T09:00:00Z</b:due>
    <b:tags><b:tag>solo</b:tag></b:tags></b:invoice>
  <b:invoice id="i3"><b:total currency="EUR">12.345</b:total><b:due>2024-06-01</b:due>
    <b:tags/></b:invoice>
</b:invoices>"""

UPSTREAM = {
    "kind": "rest",
    "xml": {"namespaces": {"urn:example:billing": ""}, "force_list": ["tag", "invoice"]},
    "max_response_bytes": 4096,
}
QUERY = """{ a: invoice(id: "i1") { id total currency due tags }
             b: invoice(id: "i2") { total currency due tags }
             c: invoice(id: "i3") { total }
             d: invoice(id: "i4") { total }
             ok }"""


def _xml(body: str) -> Respond:
    return Respond(200, body, content_type="application/xml; charset=utf-8")


def _run(chaos: ChaosUpstream, answer: Respond) -> dict[str, Any]:
    chaos.route("GET /invoices").always(answer)
    with serve(SCHEMA, upstreams={"billing": {**UPSTREAM, "url": chaos.url}}) as gateway:
        return graphql(gateway.url, QUERY)


def test_namespaced_xml_with_attributes_and_repeated_elements(chaos: ChaosUpstream) -> None:
    body = _run(chaos, _xml(INVOICES))
    assert body["data"] == {
        "a": {
            "id": "i1",
            "total": 1230,
            "currency": "EUR",
            "due": "2024-06-01",
            "tags": ["urgent", "q2"],
        },
        "b": {"total": 150000, "currency": "JPY", "due": "2024-07-01", "tags": ["solo"]},
        "c": None,  # 12.345 is not an amount in cents: that invoice alone fails
        "d": None,  # not in the answer
        "ok": True,
    }
    (error,) = body["errors"]
    assert error["path"] == ["c"]
    assert error["extensions"] == {"code": "UPSTREAM_BAD_RESPONSE", "upstream": "billing"}
    assert "12.345" not in error["message"]


BAD_ANSWERS = {
    "not well-formed": _xml("<invoices><invoice id='i1'></invoices>"),
    "internal entities": _xml(
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><invoices>&b;</invoices>'
    ),
    "external entity": _xml(
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        "<invoices>&x;</invoices>"
    ),
    "over the size cap": _xml("<invoices>" + "<pad>x</pad>" * 1000 + "</invoices>"),
    "wrong content type": Respond(200, b"\x00\x01", content_type="application/octet-stream"),
    "items not a list": Respond(200, json={"invoices": {"invoice": "i1"}}),
}


@pytest.mark.parametrize("answer", BAD_ANSWERS.values(), ids=BAD_ANSWERS.keys())
def test_malformed_answers_fail_the_fields_not_the_request(
    chaos: ChaosUpstream, answer: Respond
) -> None:
    body = _run(chaos, answer)
    assert body["data"] == {"a": None, "b": None, "c": None, "d": None, "ok": True}
    assert {e["extensions"]["code"] for e in body["errors"]} == {"UPSTREAM_BAD_RESPONSE"}
    assert "root:" not in str(body)  # nothing of /etc/passwd
