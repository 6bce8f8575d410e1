"""The spec layer: models, YAML with line numbers, params resolution. Imports nothing heavy."""

from loopline.spec.errors import SpecError, SpecProblem
from loopline.spec.load import LoadedSpec, load_spec
from loopline.spec.model import PipelineSpec, StepSpec

__all__ = ["LoadedSpec", "PipelineSpec", "SpecError", "SpecProblem", "StepSpec", "load_spec"]
