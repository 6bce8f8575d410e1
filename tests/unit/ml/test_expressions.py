"""The expression language computes what it says and refuses everything else."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopline.ml import expressions

FRAME = pd.DataFrame({"a": [1.0, 20.0, np.nan, 4.0], "b": [1, 2, 3, 4],
                      "origin": ["JFK", "LGA", "EWR", "JFK"]})


@pytest.mark.parametrize(("text", "expected"), [
    ("a > 15", [False, True, False, False]),
    ("b // 2", [0, 1, 1, 2]),
    ("notnull(a) and b >= 2", [False, True, False, True]),
    ("not isnull(a)", [True, True, False, True]),
    ("origin in ['JFK', 'EWR']", [True, False, True, True]),
    ("origin not in ['JFK']", [False, True, True, False]),
    ("where(b > 2, 1, 0)", [0, 0, 1, 1]),
    ("1 if b > 3 else -1", [-1, -1, -1, 1]),
    ("1 < b <= 3", [False, True, True, False]),
    ("log1p(b) * 2", list(np.log1p([1, 2, 3, 4]) * 2)),
])
def test_evaluates_element_wise(text: str, expected: list[object]) -> None:
    result = np.asarray(expressions.evaluate(text, FRAME))
    assert result.tolist() == pytest.approx(expected)


@pytest.mark.parametrize("text", [
    "__import__('os').system('true')", "a.__class__", "open('x')", "[x for x in a]",
    "lambda: 1", "a[0]", "eval('1')", "b in c",
])
def test_refuses_anything_outside_the_language(text: str) -> None:
    with pytest.raises(expressions.ExpressionError):
        expressions.parse(text)


def test_columns_read_excludes_function_names() -> None:
    assert expressions.columns("where(isnull(a), b, log(b))") == {"a", "b"}


def test_unknown_column_is_named() -> None:
    with pytest.raises(expressions.ExpressionError, match="unknown column 'zzz'"):
        expressions.evaluate("zzz + 1", FRAME)


@pytest.mark.parametrize("text", ["7 ** (10 ** 8)", "a ** 1000", "2 ** -(10 ** 9)",
                                  "'a' * 100000000", "b * 'abc'", "'x' + 'y'"])
def test_cost_is_bounded_at_parse_time(text: str) -> None:
    """Spec text that would run for minutes or fill memory is refused before any data."""
    with pytest.raises(expressions.ExpressionError, match=r"exponent|text"):
        expressions.parse(text)


def test_ordinary_powers_still_work() -> None:
    np.testing.assert_array_equal(expressions.evaluate("b ** 2 + 2 ** b", FRAME),
                                  [3, 8, 17, 32])
