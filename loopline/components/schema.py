"""The spec's JSON Schema, with each built-in component's params schema attached to it."""

from __future__ import annotations

from typing import Any

from loopline.components import registry
from loopline.spec.model import PipelineSpec


def spec_json_schema() -> dict[str, Any]:
    schema = PipelineSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Loopline pipeline spec"
    step = schema["$defs"]["StepSpec"]
    step["properties"]["component"]["examples"] = sorted(registry.BUILTINS)
    rules = []
    for name in sorted(registry.BUILTINS):
        component = registry.get(name)
        params = component.params.model_json_schema(ref_template="#/$defs/{model}")
        for key, definition in params.pop("$defs", {}).items():
            schema["$defs"].setdefault(key, definition)
        rules.append({"if": {"properties": {"component": {"const": name}}},
                      "then": {"properties": {
                          "params": params,
                          "inputs": {"propertyNames": {"enum": sorted(component.inputs)}}}}})
    step["allOf"] = rules
    return schema
