"""`churn.lift`: would a retention campaign built on this model reach the customers who leave?

The retention team calls the `top_share` riskiest customers. Lift is how many more churners
that reaches than calling the same number of customers at random; below `min_lift` the step
fails, so the pipeline stops before the model is registered (`promote` runs `after: [lift]`).

A component is a contract (`COMPONENT`) plus `run(ctx, params)`. This module imports only the
contract and pydantic at top level, so `loopline validate-spec` and Airflow's DAG parsing stay
fast; pandas and joblib are imported inside `run`.
"""

from __future__ import annotations

import json
import math

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


class LiftParams(ComponentParams):
    """Unknown keys and out-of-range values are `validate-spec` errors, with FILE:LINE."""

    top_share: float = Field(0.1, gt=0, lt=1, description="Share of customers called.")
    min_lift: float = Field(2.0, ge=1, description="Fail below this lift.")
    points: int = Field(20, ge=2, le=1000, description="Points on the cumulative gains curve.")


def run(ctx: StepContext, params: LiftParams) -> StepResult:
    import joblib
    import numpy as np
    import pandas as pd

    info = json.loads(ctx.input_path("info").read_text())  # train.sklearn's model.json
    if info["task"] != "classification":
        raise StepFailed(f"lift needs a classification model, got {info['task']!r}")
    model = joblib.load(ctx.input_path("model"))  # the bundle scores raw rows
    frame = pd.read_parquet(ctx.input_path("eval"))
    label, positive = info["label"], info["classes"][1]
    actual = (frame[label] == positive).to_numpy()
    scores = model.predict_proba(frame.drop(columns=[label]))[:, 1]

    ranked = actual[np.argsort(-scores, kind="stable")]
    called = math.ceil(params.top_share * len(ranked))
    base_rate = float(actual.mean())
    if base_rate == 0:
        raise StepFailed("no churners in the eval rows: lift is undefined")
    hit_rate = float(ranked[:called].mean())
    lift = hit_rate / base_rate
    reached = float(ranked[:called].sum() / ranked.sum())

    summary = {"top_share": params.top_share, "called": called, "rows": len(ranked),
               "base_rate": round(base_rate, 4), "hit_rate": round(hit_rate, 4),
               "lift": round(lift, 3), "churners_reached": round(reached, 4),
               "min_lift": params.min_lift, "passed": lift >= params.min_lift,
               "run_id": ctx.run_id}
    ctx.output_path("lift").write_text(json.dumps(summary, indent=2))

    gains = ctx.output_path("gains")  # a `plots` output is a folder of DVC plot files
    gains.mkdir(parents=True, exist_ok=True)
    cumulative = np.cumsum(ranked) / ranked.sum()
    shares = [k / params.points for k in range(1, params.points + 1)]
    rows = [{"called": round(share, 4),
             "reached": round(float(cumulative[max(1, math.ceil(share * len(ranked))) - 1]), 4)}
            for share in shares]
    (gains / "gains.json").write_text(json.dumps(rows, indent=2))

    ctx.log(f"calling the top {params.top_share:.0%} ({called:,} of {len(ranked):,}) reaches "
            f"{reached:.1%} of churners: lift {lift:.2f} (min {params.min_lift:g})")
    if lift < params.min_lift:
        # The step's verdict: the run stops here and nothing after it (promote) runs.
        raise StepFailed(f"lift {lift:.2f} at the top {params.top_share:.0%} is below "
                         f"min_lift {params.min_lift:g}")
    return StepResult(metrics={"lift": lift, "churners_reached": reached},
                      facts={"lift": summary})


COMPONENT = Component(
    name="churn.lift",
    version="1",  # bump when the output changes meaning; code edits re-key the cache anyway
    description="Lift of calling the riskiest customers; fails below min_lift.",
    params=LiftParams,
    run=run,
    inputs={"model": Input("The trained model bundle (scores raw rows)."),
            "info": Input("The model's model.json: task, label, classes."),
            "eval": Input("Held-out rows with the label.")},
    outputs={"lift": Output("lift.json", "metrics", "Lift, hit rate and churners reached."),
             "gains": Output("gains", "plots", "gains.json: share called vs churners reached.")},
    plots={"gains.json": {"x": "called", "y": "reached", "title": "Cumulative gains"}},
)
