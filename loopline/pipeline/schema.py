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
    schema["$defs"]["ParamRef"] = {
        "type": "string", "pattern": r"^\$\{[A-Za-z0-9_.-]+\}$",
        "description": "A reference into params.yaml, resolved before validation."}
    return _allow_param_refs(schema)


def _allow_param_refs(node: Any) -> Any:
    """Any property may be written as `${section.key}`; editors should not flag those."""
    if isinstance(node, list):
        return [_allow_param_refs(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _allow_param_refs(value) for key, value in node.items()}
    if isinstance(out.get("properties"), dict):
        out["properties"] = {
            name: {**{k: v for k, v in prop.items() if k in ("title", "description")},
                   "anyOf": [prop, {"$ref": "#/$defs/ParamRef"}]}
            for name, prop in out["properties"].items()}
    return out
