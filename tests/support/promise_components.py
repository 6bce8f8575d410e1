"""Test components for the "tests that can fail" promises (issue #12 §10).

`LOADS_ONCE` wraps a trained model bundle in a model whose pickle loads exactly once: the
bundle this step writes loads (the gate and `registry.promote` read it), but the copy
`registry.promote` pickles into the registry after loading it cannot be loaded back by any
process. That is a real broken registered artifact, made without patching MLflow.
"""

from __future__ import annotations

from typing import Any

from loopline.components.contract import (
    Component,
    ComponentParams,
    Input,
    Output,
    StepContext,
    StepResult,
)


class UnloadableCopy(RuntimeError):
    """Raised when a LoadsOnce model that was already loaded once is loaded again."""


class LoadsOnce:
    """Delegates to the wrapped model; its pickled state counts how often it was loaded."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.loads = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"inner": self.inner, "loads": self.loads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state["loads"] >= 1:
            raise UnloadableCopy("a re-pickled LoadsOnce model cannot be loaded")
        self.inner = state["inner"]
        self.loads = state["loads"] + 1

    def predict(self, rows: Any) -> Any:
        return self.inner.predict(rows)

    def predict_proba(self, rows: Any) -> Any:
        return self.inner.predict_proba(rows)

    @property
    def classes_(self) -> Any:
        return self.inner.classes_


class NoParams(ComponentParams):
    pass


def run_loads_once(ctx: StepContext, params: NoParams) -> StepResult:
    import joblib

    joblib.dump(LoadsOnce(joblib.load(ctx.input_path("model"))), ctx.output_path("model"))
    return StepResult()


LOADS_ONCE = Component(
    name="tests.loads_once", version="1", description="a model that loads only once",
    params=NoParams, run=run_loads_once, inputs={"model": Input("a model bundle")},
    outputs={"model": Output("model.joblib", "model")},
)


def run_registry_note(ctx: StepContext, params: NoParams) -> StepResult:
    """Declares that it reads the registry (so the registry URI is part of its cache key) and
    writes down which registry that was; it opens no connection."""
    ctx.output_path("note").write_text(f"{ctx.registry_uri}\n")
    return StepResult(metrics={"noted": 1})


REGISTRY_NOTE = Component(
    name="tests.registry_note", version="1", description="notes the registry it reads",
    params=NoParams, run=run_registry_note, outputs={"note": Output("note.txt", "json")},
    reads_registry=True,
)
