"""`train.torch`: a tabular MLP on the transformed features, early-stopped on the eval split."""

from __future__ import annotations

import json
from typing import Literal

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


class TorchParams(ComponentParams):
    task: Literal["classification", "regression"] = "classification"
    architecture: Literal["mlp"] = "mlp"
    hidden: list[int] = Field(default_factory=lambda: [128, 64], min_length=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-5, ge=0)
    batch_size: int = Field(1024, ge=1)
    max_epochs: int = Field(30, ge=1)
    patience: int = Field(3, ge=1, description="Epochs without eval improvement before stopping.")
    seed: int = 42
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA when present. resources.gpu.require forbids a CPU run.")
    compile: Literal["auto", "always", "never"] = Field("auto", description="auto: on CUDA.")
    bf16: bool = Field(True, description="bf16 autocast on CUDA.")


def run(ctx: StepContext, params: TorchParams) -> StepResult:
    import joblib
    import pandas as pd

    from loopline.ml.model_info import model_info
    from loopline.ml.torch_model import TabularModel
    from loopline.ml.torch_trainer import (
        GpuUnavailable,
        TrainConfig,
        fit,
        label_classes,
        training_arrays,
    )

    gpu = getattr(ctx.resources, "gpu", None)
    config = TrainConfig(
        task=params.task, hidden=tuple(params.hidden), dropout=params.dropout,
        learning_rate=params.learning_rate, weight_decay=params.weight_decay,
        batch_size=params.batch_size, max_epochs=params.max_epochs, patience=params.patience,
        seed=params.seed, device=params.device,
        require_gpu=bool(gpu and gpu.count > 0 and gpu.require),
        compile=params.compile, bf16=params.bf16)
    transform = joblib.load(ctx.input_path("transform"))
    label = transform.label
    if not label:
        raise StepFailed("the feature transform has no label: set features.transform label")
    train = pd.read_parquet(ctx.input_path("train"))
    eval_path = ctx.input_path("eval")
    evaluation = pd.read_parquet(eval_path) if eval_path else train.iloc[0:0]

    classes = label_classes(train, label, params.task)
    x_train, y_train = training_arrays(train, label, params.task, classes)
    x_eval, y_eval = training_arrays(evaluation, label, params.task, classes)
    try:
        result = fit(x_train, y_train, x_eval, y_eval, config, log=ctx.log)
    except GpuUnavailable as exc:
        raise StepFailed(str(exc)) from None
    model = TabularModel(result.model, transform, params.task, classes)
    joblib.dump(model, ctx.output_path("model"))
    info = model_info(params.task, f"torch.{params.architecture}", label, "pytorch",
                      transform.input_columns(), classes, device=result.device,
                      best_epoch=result.best_epoch, history=result.history)
    ctx.output_path("info").write_text(json.dumps(info, indent=2, default=str))
    ctx.log_params({"architecture": params.architecture, "hidden": params.hidden,
                    "learning_rate": params.learning_rate, "batch_size": params.batch_size})
    return StepResult(metrics={"samples_per_s": round(result.samples_per_s, 1),
                               "best_epoch": result.best_epoch,
                               "best_eval_loss": result.best_eval_loss})


COMPONENT = Component(
    name="train.torch",
    version="1",
    description="Tabular MLP (PyTorch): device-resident batches, bf16 and compile on CUDA.",
    params=TorchParams,
    run=run,
    task=lambda params: params.task,
    inputs={"train": Input("Features + label."), "transform": Input("The fitted transform."),
            "eval": Input("Features + label for early stopping.", optional=True)},
    outputs={
        "model": Output("model.joblib", "model", "TabularModel(net, transform)."),
        "info": Output("model.json", "json", "Task, label, device, training history."),
    },
)
