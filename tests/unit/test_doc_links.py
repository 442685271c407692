"""Every relative link in README.md and docs/*.md lands: the file exists, and an ``#anchor``
names a heading of the target page (GitHub's slugs) or an explicit ``<a id>``.

Also: no page has two headings with the same slug (the second one's anchor gets a ``-1`` that
no link means), and docs/README.md indexes every page.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"(#{1,6})\s+(.*?)\s*#*\s*$")


def _prose_lines(page: Path) -> list[tuple[int, str]]:
    """Lines outside fenced code blocks, with their numbers."""
    lines, fenced = [], False
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation other than
    ``-`` and ``_`` removed, spaces to ``-``
    (``upstreams.<name>.cache`` -> ``upstreamsnamecache``)."""
    parts = heading.split("`")
    # HTML tags are markup outside code spans; inside them `<name>` is text.
    text = "".join(p if i % 2 else re.sub(r"<[^>]+>", "", p) for i, p in enumerate(parts))
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def _headings(page: Path) -> list[tuple[int, str]]:
    found = []
    for number, line in _prose_lines(page):
        match = _HEADING.match(line)
        if match:
            found.append((number, slug(match.group(2))))
    return found


@cache
def anchors(page: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, name in _headings(page):
        count = seen.get(name, 0)
        seen[name] = count + 1
        out.add(name if count == 0 else f"{name}-{count}")
    for _, line in _prose_lines(page):
        out.update(re.findall(r'<a (?:name|id)="([^"]+)"', line))
    return frozenset(out)


def _links(page: Path) -> list[tuple[int, str]]:
    found = []
    for number, line in _prose_lines(page):
        # Inline code may show link syntax without being a link.
        for target in _LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if not re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, mailto:, ...
                found.append((number, target))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_lands(page: Path) -> None:
    broken = []
    for number, target in _links(page):
        path, _, anchor = target.partition("#")
        landing = (page.parent / path).resolve() if path else page
        where = f"{page.relative_to(ROOT)}:{number}: {target}"
        if not landing.exists():
            broken.append(f"{where} (no such file)")
        elif not landing.is_relative_to(ROOT):
            broken.append(f"{where} (outside the repository)")
        elif anchor and landing.suffix == ".md" and anchor not in anchors(landing):
            broken.append(f"{where} (no such heading)")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_two_headings_share_an_anchor(page: Path) -> None:
    first: dict[str, int] = {}
    twice = []
    for number, name in _headings(page):
        if name in first:
            twice.append(f"{page.relative_to(ROOT)}:{number}: #{name} (also line {first[name]})")
        first.setdefault(name, number)
    assert not twice, "\n".join(twice)


@pytest.mark.parametrize("index", ["docs/README.md", "README.md"])
def test_the_indexes_link_every_page(index: str) -> None:
    page = ROOT / index
    linked = {(page.parent / t.partition("#")[0]).resolve() for _, t in _links(page)}
    missing = [p.name for p in PAGES[1:] if p.name != "README.md" and p not in linked]
    assert not missing, f"{index} does not link {missing}"


def test_slugs_follow_github() -> None:
    assert slug("`upstreams.<name>.cache`") == "upstreamsnamecache"
    assert slug("Stale-if-error: the fallback hook") == "stale-if-error-the-fallback-hook"
    assert slug("Clients get 401 (inbound auth)") == "clients-get-401-inbound-auth"
    assert slug("The upstream's own quota") == "the-upstreams-own-quota"


def test_alert_runbooks_land() -> None:
    """Each alert's `runbook` annotation names a troubleshooting section that exists."""
    broken = []
    for rules in sorted((ROOT / "deploy").rglob("*.yml")):
        for target in re.findall(r"runbook:\s*\"?(docs/[^\s\"]+)", rules.read_text()):
            path, _, anchor = target.partition("#")
            page = ROOT / path
            if not page.exists() or (anchor and anchor not in anchors(page)):
                broken.append(f"{rules.relative_to(ROOT)}: {target}")
    assert not broken, "\n".join(broken)
