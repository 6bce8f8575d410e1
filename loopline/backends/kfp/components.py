"""KFP components generated from the component registry: one lightweight Python component per
Loopline component. Each is a thin wrapper whose body imports Loopline, so it runs wherever
the step image (or the local interpreter) has Loopline installed."""

from __future__ import annotations

import importlib.util
import keyword
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from loopline.backends.kubernetes import DEFAULT_IMAGE
from loopline.components import registry
from loopline.components.contract import Component

ARTIFACT_TYPES = {"dataset": "Dataset", "model": "Model", "transform": "Model",
                  "metrics": "Metrics", "report": "HTML", "plots": "Artifact", "json": "Artifact"}


def function_name(component_name: str) -> str:
    name = component_name.replace(".", "_").replace("-", "_")
    return f"{name}_" if keyword.iskeyword(name) else name


def _artifact_type(component: Component, output: str) -> str:
    out = component.outputs[output]
    if out.kind == "report" and not out.filename.endswith(".html"):
        return "Artifact"  # a folder (e.g. Data Docs), not one HTML page
    return ARTIFACT_TYPES[out.kind]


def wrapper_source(component: Component) -> str:
    """Python source of the wrapper: KFP ships the function's source into the container."""
    # KFP names: in_<input>, out_<output> (a component may read `train` and write `train`).
    args = ["step_json: str", "params: dict", "run_id: str"]
    required = [n for n, i in component.inputs.items() if not i.optional]
    optional = [n for n, i in component.inputs.items() if i.optional]
    args += [f"in_{n}: Input[Artifact]" for n in required]
    args += [f"out_{n}: Output[{_artifact_type(component, n)}]" for n in component.outputs]
    args += [f"in_{n}: Input[Artifact] = None" for n in optional]
    inputs = ", ".join(f"{n!r}: in_{n}" for n in component.inputs)
    outputs = ", ".join(f"{n!r}: out_{n}" for n in component.outputs)
    name = function_name(component.name)
    return (f"def {name}({', '.join(args)}):\n"
            f"    {component.description!r}\n"
            "    from loopline.backends.kfp.task import run_kfp_step\n"
            f"    run_kfp_step(step_json, params, run_id, {{{inputs}}}, {{{outputs}}})\n")


RETRAIN_SOURCE = (
    "def loopline_retrain(step_json: str, params: dict, run_id: str,\n"
    "                     in_summary: Input[Artifact]):\n"
    "    'On a drift summary that says retrain: submit the training pipeline, once per event.'\n"
    "    from loopline.backends.kfp.retrain import run_kfp_retrain\n"
    "    run_kfp_retrain(step_json, params, run_id, in_summary.path)\n")


@cache
def _module() -> Any:
    """All wrappers in one generated module on disk (KFP reads sources with `inspect`)."""
    header = "from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output\n\n\n"
    wrappers = [wrapper_source(registry.get(n)) for n in sorted(registry.BUILTINS)]
    body = "\n\n".join([*wrappers, RETRAIN_SOURCE])
    folder = Path(tempfile.mkdtemp(prefix="loopline-kfp-components-"))
    path = folder / "loopline_kfp_components.py"
    path.write_text(header + body)
    spec = importlib.util.spec_from_file_location("loopline_kfp_components", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["loopline_kfp_components"] = module
    spec.loader.exec_module(module)
    return module


@cache
def kfp_component(component_name: str, image: str = DEFAULT_IMAGE) -> Any:
    from kfp import dsl

    if component_name not in registry.BUILTINS:
        raise ValueError(f"{component_name}: only built-in components compile to KFP for now")
    function = getattr(_module(), function_name(component_name))
    return dsl.component(function, base_image=image)


@cache
def retrain_component(image: str = DEFAULT_IMAGE) -> Any:
    """The task a drift pipeline ends with (`retrain:` in the spec)."""
    from kfp import dsl

    return dsl.component(_module().loopline_retrain, base_image=image)


def export_components(folder: Path, image: str = DEFAULT_IMAGE) -> list[Path]:
    """`components/<name>.yaml` for every built-in component (`loopline components export`)."""
    from kfp import compiler

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in sorted(registry.BUILTINS):
        path = folder / f"{name}.yaml"
        compiler.Compiler().compile(kfp_component(name, image), str(path))
        written.append(path)
    return written
