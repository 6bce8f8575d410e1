"""A component for crash tests: writes half its output, then waits to be killed."""

from __future__ import annotations

import os
import time

from loopline.components.contract import (
    Component,
    ComponentParams,
    Input,
    Output,
    StepContext,
    StepResult,
)


class Params(ComponentParams):
    hang_s: float = 0.0


def run(ctx: StepContext, params: Params) -> StepResult:
    out = ctx.output_path("data")
    with out.open("w") as handle:
        handle.write("partial,")
        handle.flush()
        if os.environ.get("LOOPLINE_TEST_HANG"):
            (ctx.project_root / "started").write_text(str(out))
            time.sleep(float(os.environ["LOOPLINE_TEST_HANG"]))
        handle.write("complete\n")
    return StepResult(metrics={"rows": 1})


COMPONENT = Component(
    name="tests.slow", version="1", description="crash-test helper", params=Params, run=run,
    inputs={"upstream": Input(optional=True)},
    outputs={"data": Output("data.csv", "dataset")},
)
