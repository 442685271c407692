"""docs/configuration.md's key tables are generated from the configuration models: the page
must be fresh, every key must have a meaning, and every link inside it must land."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from graftql.config.reference import blocks, main, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_md_is_not_stale() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert render(text) == text, "run: python -m graftql.config.reference"


def test_every_key_of_every_block_has_a_row_with_a_meaning() -> None:
    text = DOC.read_text(encoding="utf-8")
    # A TODO is a key whose meaning nobody wrote (in the page or as the field's description).
    assert "| TODO |" not in text
    for block in blocks():
        assert f"<!-- generated: {block.path} -->" in text, block.path


def test_every_link_to_an_anchor_of_the_page_lands() -> None:
    text = DOC.read_text(encoding="utf-8")
    anchors = {
        re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#{1,4} (.+)$", text, re.MULTILINE)
    }
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links - anchors == set()


SMALL = """# Doc

Hand-written prose stays.

<!-- generated: upstreams.<name>.bulkhead -->
| key | type | default | meaning |
|---|---|---|---|
| `max_queue` | integer | `5` | Written by a person. |
| `gone` | string | none | A key the model no longer has. |
<!-- end generated -->

More prose.
"""


def test_render_fixes_types_and_defaults_keeps_meanings_and_appends_new_blocks() -> None:
    out = render(SMALL)
    assert out.startswith("# Doc\n\nHand-written prose stays.\n")
    assert "More prose." in out
    assert "| `max_queue` | integer, >= 0 | `100` | Written by a person. |" in out
    assert "| `max_concurrent` | integer, >= 1 | required | TODO |" in out  # no meaning yet
    assert "`gone`" not in out
    # Every other block is appended, to be moved into place.
    assert "## Blocks not yet placed" in out
    assert "### `upstreams.<name>.retry`" in out
    assert "| `attempts` | integer, >= 1 and <= 10 | `3` | Tries in all, the first included. |" in (
        out
    )
    assert render(out) == out  # stable


def test_check_exits_1_on_a_stale_page_and_the_command_rewrites_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "configuration.md"
    page.write_text(SMALL)
    assert main([str(page), "--check"]) == 1
    assert "is stale: run python -m graftql.config.reference" in capsys.readouterr().err
    assert page.read_text() == SMALL
    assert main([str(page)]) == 0
    assert main([str(page), "--check"]) == 0
