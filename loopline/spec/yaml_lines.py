"""YAML loading that remembers the line of every value, for `FILE:LINE:` messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from loopline.spec.errors import SpecError, SpecProblem

Loc = tuple[str | int, ...]

# Bounds for hostile or broken YAML: a spec is small, and must stay cheap to check (Airflow
# parses every spec on every cycle). An alias "bomb" of 439 bytes expands to 10^7 values.
MAX_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_VALUES = 100_000


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


class _Budget:
    """Counts values as they are built, so an alias bomb stops at MAX_VALUES, not at 2 GB."""

    def __init__(self) -> None:
        self.values = 0


_MERGE = "tag:yaml.org,2002:merge"


def _refuse(loader: _Loader, node: yaml.Node, loc: Loc, message: str) -> SpecError:
    return SpecError([SpecProblem(loader.name, node.start_mark.line + 1, format_loc(loc),
                                  message)])


def _construct(node: yaml.Node, loader: _Loader, loc: Loc, lines: dict[Loc, int],
               budget: _Budget) -> Any:
    lines[loc] = node.start_mark.line + 1
    budget.values += 1
    if budget.values > MAX_VALUES:
        raise _refuse(loader, node, loc, f"expands to more than {MAX_VALUES:,} values "
                      "(aliases repeated inside aliases?); a spec is far smaller")
    if len(loc) > MAX_DEPTH:
        raise _refuse(loader, node, loc, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, yaml.MappingNode):
        own = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE)
        try:
            loader.flatten_mapping(node)  # merge keys (<<: *base), as YAML defines them
        except yaml.YAMLError as exc:
            raise _refuse(loader, node, loc, f"invalid merge: {_reason(exc)}") from None
        merged = len(node.value) - own  # merged pairs come first; the mapping's own win
        result: dict[Any, Any] = {}
        written: set[Any] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            key = _scalar(key_node, loader, loc)
            if index >= merged:
                if key in written:
                    raise SpecError([SpecProblem(loader.name, key_node.start_mark.line + 1,
                                                 format_loc((*loc, key)), "duplicate key")])
                written.add(key)
            result[key] = _construct(value_node, loader, (*loc, key), lines, budget)
            lines[(*loc, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, loader, (*loc, i), lines, budget)
                for i, item in enumerate(node.value)]
    return _scalar(node, loader, loc)


def _scalar(node: yaml.Node, loader: _Loader, loc: Loc) -> Any:
    """A plain value; tags YAML's safe schema does not know (`!custom`, `!!python/...`) are
    refused with their line."""
    if not isinstance(node, yaml.ScalarNode):
        raise _refuse(loader, node, loc, "a key must be a plain value")
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise _refuse(loader, node, loc, f"unsupported YAML: {_reason(exc)}") from None


def _reason(exc: yaml.YAMLError) -> str:
    return str(getattr(exc, "problem", None) or exc).splitlines()[0]


def load_text(text: str, file: str) -> LocatedDocument:
    loader = _Loader(text)
    loader.name = file  # type: ignore[attr-defined]
    try:
        node = loader.get_single_node()
    except RecursionError:
        raise SpecError([SpecProblem(file, 1, "", f"nested deeper than {MAX_DEPTH} levels")]) \
            from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        reason = getattr(exc, "problem", None) or str(exc)
        raise SpecError([SpecProblem(file, line, "", f"invalid YAML: {reason}")]) from None
    finally:
        loader.dispose()
    lines: dict[Loc, int] = {}
    try:
        data = _construct(node, loader, (), lines, _Budget()) if node is not None else None
    except RecursionError:
        raise SpecError([SpecProblem(file, 1, "", f"nested deeper than {MAX_DEPTH} levels")]) \
            from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise SpecError([SpecProblem(file, 1, "", f"unreadable value: {exc}")]) from None
    return LocatedDocument(data, lines, file)


def load_file(path: Path, display: str | None = None) -> LocatedDocument:
    display = display or str(path)
    try:
        if not path.is_file():  # a folder, /dev/zero, a pipe: never read as a spec
            what = "file not found" if not path.exists() else "not a regular file"
            raise SpecError([SpecProblem(display, 1, "", what)])
        if path.stat().st_size > MAX_BYTES:
            raise SpecError([SpecProblem(display, 1, "", f"larger than {MAX_BYTES:,} bytes; "
                                         "a spec or params file is far smaller")])
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: a NUL in the path
        raise SpecError([SpecProblem(display, 1, "", f"cannot read: {exc}")]) from None
    return load_text(text, display)
