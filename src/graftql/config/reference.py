"""docs/configuration.md's key tables, generated from the configuration models.

``python -m graftql.config.reference`` rewrites every table of docs/configuration.md that sits
between ``<!-- generated: BLOCK -->`` and ``<!-- end generated -->`` markers: one row per key
of that block's model, with the key, its type (constraints included) and its default taken
from the model, so they cannot go stale. The meaning column is the one text a person writes:
an existing row's meaning is kept, a new key's comes from its ``Field(description=...)``, and
a key with neither is left with ``TODO`` (which the docs test rejects). A block the document
has no marker for yet (a new ``cache:`` block, say) is added at the end of the document, under
"Blocks not yet placed", to be moved where it belongs; everything outside the markers is left
as it is. ``--check`` changes nothing and exits 1 when the document is stale.

Where the model's default is ``None`` or the key is required, a default a person wrote
(``on in development, off in production``, ``rate rounded up``) is kept: the model cannot say
what ``None`` means, nor what a validator fills in.
"""

from __future__ import annotations

import argparse
import re
import sys
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from graftql.config.gateway import GatewayConfig
from graftql.references import Secret

__all__ = ["Block", "blocks", "main", "render"]

DOCUMENT = Path("docs/configuration.md")
_BEGIN = re.compile(r"^<!-- generated: (?P<block>.+?) -->$")
_END = "<!-- end generated -->"
_HEADER = "| key | type | default | meaning |\n|---|---|---|---|"
_APPENDIX = "## Blocks not yet placed"
_TODO = "TODO"


@dataclass(frozen=True)
class Block:
    """One mapping of gateway.yaml: ``upstreams.<name>.retry``, ``upstreams.<name>.auth:
    bearer``, ``top level`` for the file itself."""

    path: str
    model: type[BaseModel]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation can hold (a union of auth schemes holds several)."""
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [model for arg in get_args(annotation) for model in _models_in(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _children(annotation: Any) -> Iterator[tuple[str, Any]]:
    """(path suffix, inner annotation) for a field: ``""`` itself, ``.<name>`` for a mapping
    of models, ``[]`` for a list of models."""
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        yield from _children(get_args(annotation)[0])
    elif origin in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(args) > 1 and all(_models_in(arg) for arg in args):
            yield "", annotation  # one block, chosen by its `type`
            return
        for arg in args:
            yield from _children(arg)
    elif origin is dict:
        yield ".<name>", get_args(annotation)[1]
    elif origin is list:
        yield "[]", get_args(annotation)[0]
    else:
        yield "", annotation


def blocks() -> list[Block]:
    """Every block of gateway.yaml, outermost first, in the models' field order."""
    found: list[Block] = []

    def walk(path: str, model: type[BaseModel]) -> None:
        found.append(Block(path, model))
        for name, field in model.model_fields.items():
            key = field.alias or name
            for suffix, inner in _children(field.annotation):
                models = _models_in(inner)
                for child in models:
                    child_path = (
                        f"{key}{suffix}" if path == "top level" else f"{path}.{key}{suffix}"
                    )
                    if len(models) > 1:  # a union chosen by its `type`
                        tag = get_args(child.model_fields["type"].annotation)[0]
                        child_path = f"{child_path}: {tag}"
                    walk(child_path, child)

    walk("top level", GatewayConfig)
    return found


def _anchor(path: str) -> str:
    return "#" + re.sub(r"[^a-z0-9 _-]", "", f"`{path}`".lower()).replace(" ", "-")


def _type_name(annotation: Any, field: FieldInfo | None = None) -> str:
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        inner, *extra = get_args(annotation)
        for item in extra:
            noun = _NOUNS.get(getattr(getattr(item, "func", None), "__name__", ""))
            if noun is not None:
                return noun
        return _type_name(inner) + _constraints(extra)
    if origin in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(_models_in(annotation)) > 1:
            tags = [
                f"`{get_args(m.model_fields['type'].annotation)[0]}`"
                for m in _models_in(annotation)
            ]
            text = f"mapping, `type` one of {', '.join(tags)}"
        else:
            text = " or ".join(_type_name(arg) for arg in args)
        return text + (", or null" if type(None) in get_args(annotation) else "")
    if origin is Literal:
        return " or ".join(f"`{value}`" for value in get_args(annotation))
    if origin is list:
        return f"list of {_plural(_type_name(get_args(annotation)[0]))}"
    if origin is dict:
        key, value = get_args(annotation)
        return f"mapping of {_type_name(key)} to {_type_name(value)}"
    if annotation is Secret:
        return "secret reference"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


# Values checked by a validator of config/_base.py, named for a person.
_NOUNS = {
    "_network": "IP addresses or CIDR networks",
    "_origin": "origins (`scheme://host[:port]`) or `*`",
    "_header_name": "header names or `*`",
}


def _plural(name: str) -> str:
    head, _, tail = name.partition(",")
    plural = {
        "string": "strings",
        "number": "numbers",
        "integer": "integers",
        "mapping": "mappings",
    }.get(head, head)
    return plural + ("," + tail if tail else "")


def _constraints(metadata: list[Any]) -> str:
    parts: list[str] = []
    expanded = False
    for item in metadata:
        if isinstance(item, annotated_types.Gt):
            parts.append(f"> {item.gt:g}" if isinstance(item.gt, float) else f"> {item.gt}")
        elif isinstance(item, annotated_types.Ge):
            parts.append(f">= {item.ge}")
        elif isinstance(item, annotated_types.Lt):
            parts.append(f"< {item.lt}")
        elif isinstance(item, annotated_types.Le):
            parts.append(f"<= {item.le}")
        elif isinstance(item, annotated_types.MinLen) and item.min_length:
            parts.append(f"at least {item.min_length}")
        elif isinstance(item, annotated_types.MaxLen):
            parts.append(f"at most {item.max_length}")
        elif getattr(item, "pattern", None):
            parts.append(f"matching `{item.pattern}`")
        elif type(item).__name__ == "BeforeValidator" and getattr(item.func, "__module__", "") == (
            "graftql.references"
        ):
            expanded = True
    text = (", " + " and ".join(parts)) if parts else ""
    return text + (", `${VAR}` expanded" if expanded else "")


def _field_type(field: FieldInfo) -> str:
    text = _type_name(field.annotation)
    constraints = _constraints(list(field.metadata))
    if text.endswith(", or null"):
        text = text.removesuffix(", or null") + constraints + ", or null"
    else:
        text += constraints
    return text.replace("|", "\\|")


def _literal(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, BaseModel):
        return "its keys' defaults"
    if isinstance(value, dict | list) and not value:
        return f"`{'{}' if isinstance(value, dict) else '[]'}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    return f"`{value}`"


def _default(field: FieldInfo) -> tuple[str, bool]:
    """(text, whether a hand-written default may replace it)."""
    if field.is_required():
        return "required", True
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required", True
    else:
        value = field.default
    return _literal(value), value is None


def _cells(line: str) -> list[str]:
    cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())]
    return cells[1:-1] if len(cells) >= 2 else []


def _table(block: Block, written: dict[str, list[str]]) -> str:
    rows = [_HEADER]
    for name, field in block.model.model_fields.items():
        key = field.alias or name
        old = written.get(key)
        default, replaceable = _default(field)
        if replaceable and old is not None and old[2] not in ("", "none", "required"):
            default = old[2]  # what None means (or a computed default), said by a person
        kind = _field_type(field)
        for suffix, inner in _children(field.annotation):
            if _models_in(inner):
                target = key if block.path == "top level" else f"{block.path}.{key}"
                if suffix or len(_models_in(inner)) == 1:
                    kind += f", see [`{target}{suffix}`]({_anchor(target + suffix)})"
                break
        meaning = old[3] if old is not None and old[3] not in ("", _TODO) else None
        if meaning is None:
            meaning = (field.description or _TODO).replace("|", "\\|")
            meaning = meaning[:1].upper() + meaning[1:]
            if meaning != _TODO and not meaning.endswith("."):
                meaning += "."
        rows.append(f"| `{key}` | {kind} | {default} | {meaning} |")
    return "\n".join(rows)


def render(document: str) -> str:
    """``document`` with every generated table rewritten and missing blocks appended."""
    known = {block.path: block for block in blocks()}
    out: list[str] = []
    placed: set[str] = set()
    lines = document.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        begin = _BEGIN.match(line)
        if begin is None:
            out.append(line)
            index += 1
            continue
        path = begin.group("block")
        end = lines.index(_END, index)
        written = {
            cells[0].strip("`"): cells
            for cells in map(_cells, lines[index + 1 : end])
            if len(cells) == 4 and cells[0].startswith("`")
        }
        out.append(line)
        if path in known:
            placed.add(path)
            out.append(_table(known[path], written))
        else:  # a block that no longer exists: say so, keep nothing stale
            out.append(f"*No such block in the configuration models: `{path}`.*")
        out.append(_END)
        index = end + 1
    missing = [path for path in known if path not in placed]
    text = "\n".join(out)
    if missing:
        if _APPENDIX not in text:
            text = text.rstrip("\n") + (
                f"\n\n{_APPENDIX}\n\nGenerated for blocks added to the models since this page was "
                "arranged: move each section where it belongs and write its meanings.\n"
            )
        for path in missing:
            text = text.rstrip("\n") + (
                f"\n\n### `{path}`\n\n<!-- generated: {path} -->\n"
                f"{_table(known[path], {})}\n{_END}\n"
            )
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m graftql.config.reference",
        description="Regenerate the key tables of docs/configuration.md from the models.",
    )
    parser.add_argument("document", nargs="?", type=Path, default=DOCUMENT)
    parser.add_argument("--check", action="store_true", help="exit 1 if the document is stale")
    args = parser.parse_args(argv)
    current = args.document.read_text(encoding="utf-8")
    fresh = render(current)
    if args.check:
        if fresh != current:
            print(
                f"{args.document} is stale: run python -m graftql.config.reference",
                file=sys.stderr,
            )
            return 1
        return 0
    if fresh != current:
        args.document.write_text(fresh, encoding="utf-8")
        print(f"{args.document}: tables regenerated")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
