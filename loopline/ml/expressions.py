"""A small, safe expression language for filters and derived columns.

Spec text is parsed with `ast` and walked against a whitelist; it is never passed to `eval`.
Names are columns; operators work element-wise on whole columns:

    arr_delay > 15            not isnull(arr_delay)         sched_dep_time // 100
    where(distance > 1000, 1, 0)      origin in ["JFK", "LGA"]      log1p(distance)
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

FUNCTIONS = (
    "abs", "ceil", "clip", "exp", "floor", "isnull", "log", "log1p", "maximum", "minimum",
    "notnull", "round", "sqrt", "where",
)

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}


class ExpressionError(ValueError):
    """The expression is not in the language; the message says which part."""


@cache
def parse(text: str) -> ast.expr:
    """Parse and check an expression once; raise ExpressionError naming what is not allowed."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ExpressionError(f"invalid expression {text!r}: {exc.msg}") from None
    _check(tree)
    return tree


def problems(texts: dict[tuple[str | int, ...], str]) -> list[tuple[tuple[str | int, ...], str]]:
    """(loc, message) for every expression that does not parse, for spec validation."""
    found = []
    for loc, text in texts.items():
        try:
            parse(text)
        except ExpressionError as exc:
            found.append((loc, str(exc)))
    return found


def columns(text: str) -> set[str]:
    """Column names an expression reads (to catch leaks and missing columns early)."""
    tree = parse(text)
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in called}


def _check(node: ast.AST) -> None:
    if isinstance(node, ast.Constant):
        if not isinstance(node.value, int | float | str | bool | type(None)):
            raise ExpressionError(f"constant {node.value!r} is not allowed")
    elif isinstance(node, ast.Name):
        pass
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        _check(node.left)
        _check(node.right)
        _bounded(node)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd | ast.Not):
        _check(node.operand)
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value)
    elif isinstance(node, ast.Compare):
        _check(node.left)
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                if not isinstance(right, ast.List | ast.Tuple | ast.Set):
                    raise ExpressionError("'in' needs a literal list, e.g. x in [1, 2]")
                for element in right.elts:
                    if not isinstance(element, ast.Constant):
                        raise ExpressionError("'in' lists may hold only constants")
            elif type(op) in _COMPARE:
                _check(right)
            else:
                raise ExpressionError(f"operator {type(op).__name__} is not allowed")
    elif isinstance(node, ast.IfExp):
        for part in (node.test, node.body, node.orelse):
            _check(part)
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise ExpressionError(f"function {name!r} is not allowed; use one of: "
                                  + ", ".join(FUNCTIONS))
        if node.keywords:
            raise ExpressionError("keyword arguments are not allowed")
        for arg in node.args:
            _check(arg)
    else:
        raise ExpressionError(f"{type(node).__name__} ({ast.unparse(node)!r}) is not allowed")


MAX_EXPONENT = 64


def _bounded(node: ast.BinOp) -> None:
    """Cost stays proportional to the data: `7 ** (10 ** 8)` or `'a' * 10**8` would run for
    minutes or fill memory at spec level, so powers need a small literal exponent or a column,
    and text cannot be repeated."""
    if isinstance(node.op, ast.Pow):
        exponent = node.right
        if isinstance(exponent, ast.UnaryOp) and isinstance(exponent.op, ast.USub | ast.UAdd):
            exponent = exponent.operand
        if isinstance(exponent, ast.Constant):
            if not isinstance(exponent.value, int | float) or abs(exponent.value) > MAX_EXPONENT:
                raise ExpressionError(f"exponent {ast.unparse(node.right)} is not allowed "
                                      f"(at most {MAX_EXPONENT})")
        elif not isinstance(exponent, ast.Name):
            raise ExpressionError(f"exponent {ast.unparse(node.right)!r} must be a number "
                                  f"(at most {MAX_EXPONENT}) or a column")
    if isinstance(node.op, ast.Mult | ast.Add) and any(
            isinstance(side, ast.Constant) and isinstance(side.value, str)
            for side in (node.left, node.right)):
        raise ExpressionError("arithmetic on text is not allowed; compare it instead")


def _functions() -> dict[str, Callable[..., Any]]:
    import numpy as np
    import pandas as pd

    return {
        "abs": np.abs, "ceil": np.ceil, "clip": np.clip, "exp": np.exp, "floor": np.floor,
        "isnull": pd.isna, "notnull": pd.notna, "log": np.log, "log1p": np.log1p,
        "maximum": np.maximum, "minimum": np.minimum, "round": np.round,
        "sqrt": np.sqrt, "where": np.where,
    }


def evaluate(text: str, data: Mapping[str, Any]) -> Any:
    """Evaluate element-wise against `data` (a DataFrame or a mapping of columns)."""
    functions = _functions()

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in data:
                raise ExpressionError(f"unknown column {node.id!r} in {text!r}")
            return data[node.id]
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp):
            value = ev(node.operand)
            if isinstance(node.op, ast.Not):
                return ~value if hasattr(value, "__invert__") and not isinstance(value, bool) \
                    else not value
            return -value if isinstance(node.op, ast.USub) else +value
        if isinstance(node, ast.BoolOp):
            values = [ev(v) for v in node.values]
            combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
            result = values[0]
            for value in values[1:]:
                result = combine(result, value)
            return result
        if isinstance(node, ast.Compare):
            left, result = ev(node.left), None
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                if isinstance(op, ast.In | ast.NotIn):
                    values = [e.value for e in right_node.elts]
                    part = left.isin(values) if hasattr(left, "isin") else left in values
                    part = ~part if isinstance(op, ast.NotIn) else part
                    right = None
                else:
                    right = ev(right_node)
                    part = _COMPARE[type(op)](left, right)
                result = part if result is None else result & part
                left = right
            return result
        if isinstance(node, ast.IfExp):
            return functions["where"](ev(node.test), ev(node.body), ev(node.orelse))
        if isinstance(node, ast.Call):
            return functions[node.func.id](*(ev(a) for a in node.args))
        raise ExpressionError(f"not allowed: {ast.unparse(node)}")  # parse() prevents this

    return ev(parse(text))
