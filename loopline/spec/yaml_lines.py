"""YAML loading that remembers the line of every value, for `FILE:LINE:` messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from loopline.spec.errors import SpecError, SpecProblem

Loc = tuple[str | int, ...]


# libyaml's parser when present (several times faster; Airflow parses every spec each cycle);
# its nodes carry marks too, so line numbers survive.
_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[misc,valid-type]
    """SafeLoader without timestamp magic: dates stay strings, as the spec means them."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class LocatedDocument:
    """A parsed YAML document plus a map from field path to 1-based line number."""

    def __init__(self, data: Any, lines: dict[Loc, int], file: str) -> None:
        self.data = data
        self.lines = lines
        self.file = file

    def line_of(self, loc: Loc) -> int:
        """Line of the deepest known ancestor of `loc` (pydantic locs may point below YAML)."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), 1)

    def problem(self, loc: Loc, message: str) -> SpecProblem:
        return SpecProblem(self.file, self.line_of(loc), format_loc(loc), message)


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _construct(node: yaml.Node, loader: _Loader, loc: Loc, lines: dict[Loc, int]) -> Any:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in result:
                raise SpecError([SpecProblem(loader.name, key_node.start_mark.line + 1,
                                             format_loc((*loc, key)), "duplicate key")])
            result[key] = _construct(value_node, loader, (*loc, key), lines)
            lines[(*loc, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, loader, (*loc, i), lines) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_text(text: str, file: str) -> LocatedDocument:
    loader = _Loader(text)
    loader.name = file  # type: ignore[attr-defined]
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        reason = getattr(exc, "problem", None) or str(exc)
        raise SpecError([SpecProblem(file, line, "", f"invalid YAML: {reason}")]) from None
    finally:
        loader.dispose()
    lines: dict[Loc, int] = {}
    data = _construct(node, loader, (), lines) if node is not None else None
    return LocatedDocument(data, lines, file)


def load_file(path: Path, display: str | None = None) -> LocatedDocument:
    display = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([SpecProblem(display, 1, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecProblem(display, 1, "", f"cannot read: {exc}")]) from None
    return load_text(text, display)
