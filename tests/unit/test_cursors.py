"""Signed pagination cursors (pure logic): what is issued decodes; anything else is refused."""

from __future__ import annotations

import pytest

from graftql.errors import BadUserInput
from graftql.resolvers.cursors import CursorSigner

STATE = {"r": {"p": 3}, "k": 2, "n": 10}


def test_round_trip() -> None:
    signer = CursorSigner(b"k" * 32)
    cursor = signer.encode("crm /orders id=c1", STATE)
    assert signer.decode("crm /orders id=c1", cursor) == STATE
    assert "=" not in cursor  # URL-safe, unpadded


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c.replace(".", ".A", 1),  # the tag
        lambda c: "e" + c,  # the state
        lambda c: c.split(".")[0],  # no tag
        lambda c: c + ".x",  # two dots
        lambda c: "%%%.%%%",  # not base64
        lambda c: "W10." + c.split(".")[1],  # a JSON list, not an object
        lambda c: c * 100,  # too long
    ],
)
def test_changed_cursors_are_refused(change: object) -> None:
    signer = CursorSigner(b"k" * 32)
    cursor = signer.encode("scope", STATE)
    with pytest.raises(BadUserInput, match="'after' is not a cursor this API issued"):
        signer.decode("scope", change(cursor))  # type: ignore[operator]


def test_cursor_is_bound_to_its_scope_and_key() -> None:
    cursor = CursorSigner(b"k" * 32).encode("crm /orders id=c1", STATE)
    with pytest.raises(BadUserInput):
        CursorSigner(b"k" * 32).decode("crm /orders id=c2", cursor)  # another list
    with pytest.raises(BadUserInput):
        CursorSigner(b"x" * 32).decode("crm /orders id=c1", cursor)  # another key
