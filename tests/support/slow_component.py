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


class FlakyParams(ComponentParams):
    fail_times: int = 1
    verdict: bool = False  # raise StepFailed (never retried) instead of a crash


def run_flaky(ctx: StepContext, params: FlakyParams) -> StepResult:
    from loopline.components.contract import StepFailed

    counter = ctx.project_root / "attempts"
    attempts = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(attempts))
    if params.verdict:
        raise StepFailed("the data says no")
    if attempts <= params.fail_times:
        raise ConnectionError(f"flaky on attempt {attempts}")
    ctx.output_path("data").write_text(f"attempt {attempts}\n")
    return StepResult(metrics={"attempts": attempts})


FLAKY = Component(
    name="tests.flaky", version="1", description="fails N times", params=FlakyParams,
    run=run_flaky, outputs={"data": Output("data.csv", "dataset")},
)


class EchoParams(ComponentParams):
    """Whatever a spec interpolates from params.yaml, as the step received it."""

    estimator: str
    max_iter: int
    learning_rate: float
    min_roc_auc: float


def run_echo(ctx: StepContext, params: EchoParams) -> StepResult:
    ctx.output_path("data").write_text(params.model_dump_json())
    return StepResult(metrics={"max_iter": params.max_iter})


ECHO = Component(
    name="tests.echo", version="1", description="records its params", params=EchoParams,
    run=run_echo, outputs={"data": Output("params.json", "dataset")},
)
