"""Great Expectations 1.x: one suite run over named data frames, summarised as plain JSON.

An ephemeral context (no files) unless Data Docs are asked for; analytics off; progress bars
off so step logs stay readable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from loopline.components.contract import StepFailed

Expectation = dict[str, Any]


def validate_frames(frames: dict[str, Any], expectations: list[Expectation],
                    docs_dir: Path | None = None) -> dict[str, Any]:
    """Run one suite over each named frame; return a JSON-able summary with every failure."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    context = gx.get_context(mode="file", project_root_dir=str(docs_dir)) if docs_dir \
        else gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    try:
        suite = context.suites.add(gx.ExpectationSuite(name="loopline", expectations=expectations))
    except Exception as exc:
        raise StepFailed(f"invalid expectation suite: {exc}") from exc
    source = context.data_sources.add_pandas("loopline")
    summary: dict[str, Any] = {"success": True, "splits": {}, "failed": []}
    for split, frame in frames.items():
        batch = source.add_dataframe_asset(split).add_batch_definition_whole_dataframe(split)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(data=batch, suite=suite, name=f"validate-{split}"))
        result = definition.run(batch_parameters={"dataframe": frame}, result_format="SUMMARY")
        summary["splits"][split] = {"success": bool(result.success),
                                    **result.to_json_dict()["statistics"]}
        summary["success"] &= bool(result.success)
        for item in result.results:
            if item.success:
                continue
            kwargs = {k: v for k, v in item.expectation_config.kwargs.items() if k != "batch_id"}
            details = {k: item.result.get(k) for k in
                       ("observed_value", "unexpected_count", "unexpected_percent",
                        "partial_unexpected_list")}
            if item.exception_info and item.exception_info.get("raised_exception"):
                details["exception"] = item.exception_info.get("exception_message")
            summary["failed"].append({"split": split, "type": item.expectation_config.type,
                                      "kwargs": kwargs, **details})
    if docs_dir is not None:
        context.build_data_docs()
    return summary
