"""`validate.expectations`: Great Expectations suites as a gate before anything is trained."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from loopline.components.contract import (
    Component,
    ComponentParams,
    Input,
    Output,
    StepContext,
    StepFailed,
    StepResult,
)
from loopline.spec.paths import project_path

Expectation = dict[str, Any]
MAX_SUITE_BYTES = 10_000_000


class ValidateParams(ComponentParams):
    suite: list[Expectation] | str = Field(
        description="Inline expectations, or a path to a GE suite JSON (relative to the project)."
    )
    on_failure: Literal["stop", "warn"] = Field(
        "stop", description="stop: fail the pipeline here. warn: record it; the gate decides."
    )
    data_docs: bool = Field(False, description="Also build Great Expectations Data Docs.")


def normalise_expectation(item: Expectation) -> Expectation:
    """Accept GE's `{type, kwargs}` or the short `{expect_x: {kwargs}}` form."""
    if not isinstance(item, dict):
        raise ValueError(f"expected {{type: ..., kwargs: ...}} or {{expect_...: {{...}}}}, "
                         f"got {item!r}")
    if "type" in item:
        return {"type": item["type"], "kwargs": dict(item.get("kwargs", {})),
                **({"meta": item["meta"]} if "meta" in item else {})}
    if len(item) == 1:
        (name, kwargs), = item.items()
        return {"type": name, "kwargs": dict(kwargs or {})}
    raise ValueError(f"expected {{type: ..., kwargs: ...}} or {{expect_...: {{...}}}}, got {item}")


def load_suite(suite: list[Expectation] | str, root: Path) -> list[Expectation]:
    if isinstance(suite, str):
        path = project_path(suite, root)
        if not path.is_file():
            what = "not found" if not path.exists() else "not a file"
            raise StepFailed(f"expectation suite {suite!r} {what} ({path})")
        if path.stat().st_size > MAX_SUITE_BYTES:
            raise StepFailed(f"expectation suite {suite!r} is larger than "
                             f"{MAX_SUITE_BYTES:,} bytes")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StepFailed(f"expectation suite {suite!r} is not readable JSON: {exc}") \
                from None
        suite = data.get("expectations") if isinstance(data, dict) else data
        if not isinstance(suite, list):
            raise StepFailed(f"expectation suite {suite!r} holds no list of expectations "
                             "(a GE suite JSON, or a list)")
    return [normalise_expectation(item) for item in suite]


def _check(params: ValidateParams, root: Path) -> list[tuple[tuple[str | int, ...], str]]:
    problems: list[tuple[tuple[str | int, ...], str]] = []
    if isinstance(params.suite, str):
        path = project_path(params.suite, root)
        if not path.exists():
            return [(("suite",), f"suite file not found: {path}")]
        try:
            load_suite(params.suite, root)
        except (ValueError, KeyError, StepFailed) as exc:
            return [(("suite",), str(exc))]
        return []
    for i, item in enumerate(params.suite):
        try:
            expectation = normalise_expectation(item)
        except ValueError as exc:
            problems.append((("suite", i), str(exc)))
            continue
        if not str(expectation["type"]).startswith("expect_"):
            problems.append((("suite", i), f"{expectation['type']!r} is not an expectation"))
    return problems


def _sources(params: ValidateParams, root: Path) -> list[str]:
    if isinstance(params.suite, str):
        return [str(project_path(params.suite, root))]
    return []


def describe_failure(item: dict[str, Any]) -> str:
    column = item["kwargs"].get("column", "")
    detail = (f"{item['unexpected_count']} unexpected ({item['unexpected_percent']:.2f}%), "
              f"e.g. {item['partial_unexpected_list'][:3]}"
              if item.get("unexpected_count") else f"observed {item.get('observed_value')!r}")
    if item.get("exception"):
        detail = f"error: {item['exception']}"
    return f"[{item['split']}] {item['type']}({column}): {detail}"


def run(ctx: StepContext, params: ValidateParams) -> StepResult:
    import pandas as pd

    from loopline.integrations.great_expectations import validate_frames

    expectations = load_suite(params.suite, ctx.project_root)
    frames = {"train": pd.read_parquet(ctx.input_path("train"))}
    if (eval_path := ctx.input_path("eval")) is not None:
        frames["eval"] = pd.read_parquet(eval_path)
    docs = ctx.output_path("data_docs")
    with tempfile.TemporaryDirectory() as scratch:
        summary = validate_frames(frames, expectations,
                                  Path(scratch) if params.data_docs else None)
        site = Path(scratch) / "gx" / "uncommitted" / "data_docs" / "local_site"
        if params.data_docs and site.is_dir():
            shutil.copytree(site, docs)
        else:
            docs.mkdir()
            (docs / "index.html").write_text(
                "<!doctype html><p>Great Expectations Data Docs were not requested: set "
                "<code>data_docs: true</code> on this step. See validation.html.")
    summary["expectations"] = len(expectations)
    ctx.output_path("result").write_text(json.dumps(summary, indent=2, default=str))
    ctx.output_path("report").write_text(_html(summary))
    failed = len(summary["failed"])
    if not summary["success"]:
        lines = "\n  ".join(describe_failure(item) for item in summary["failed"])
        if params.on_failure == "stop":
            raise StepFailed(f"data failed {failed} expectation(s); stopping before training:"
                             f"\n  {lines}")
        ctx.log(f"WARNING: data failed {failed} expectation(s):\n  {lines}")
    ctx.log(f"{len(expectations)} expectations x {len(frames)} splits: "
            + ("passed" if summary["success"] else f"{failed} failed"))
    return StepResult(metrics={"expectations_failed": failed,
                               "data_valid": float(summary["success"])})


def _html(summary: dict[str, Any]) -> str:
    """A small self-contained report (GE's Data Docs pull CSS/JS from CDNs)."""
    from html import escape

    rows = "".join(
        f"<tr><td>{escape(s)}</td><td>{'passed' if v['success'] else 'FAILED'}</td>"
        f"<td>{v['successful_expectations']}/{v['evaluated_expectations']}</td></tr>"
        for s, v in summary["splits"].items())
    failures = "".join(f"<li>{escape(describe_failure(i))}</li>" for i in summary["failed"])
    return (f"<!doctype html><meta charset=utf-8><title>Validation</title>"
            f"<h1>Data validation: {'passed' if summary['success'] else 'FAILED'}</h1>"
            f"<table border=1><tr><th>split</th><th>result</th><th>passed</th></tr>{rows}</table>"
            f"<h2>Failures</h2><ul>{failures or '<li>none</li>'}</ul>")


COMPONENT = Component(
    name="validate.expectations",
    version="1",
    description="Validate each split with a Great Expectations suite; stop on failure.",
    params=ValidateParams,
    run=run,
    inputs={"train": Input("Training rows."), "eval": Input("Eval rows.", optional=True)},
    outputs={
        "result": Output("validation.json", "json", "Per split statistics and every failure."),
        "report": Output("validation.html", "report", "Self-contained summary."),
        "data_docs": Output("data_docs", "report", "GE Data Docs site (when data_docs: true)."),
    },
    check=_check,
    sources=_sources,
)
