"""Steps form a DAG through their input references; this orders them and finds cycles."""

from __future__ import annotations

from loopline.spec.model import PipelineSpec


def upstream(spec: PipelineSpec, step: str) -> list[str]:
    """Direct predecessors of a step, in first-mention order."""
    step_spec = spec.steps[step]
    deps = [ref.step for ref in step_spec.input_refs().values()] + list(step_spec.after)
    return list(dict.fromkeys(d for d in deps if d in spec.steps))


def find_cycle(spec: PipelineSpec) -> list[str] | None:
    """One cycle as a list of step names (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in upstream(spec, node):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for name in spec.steps:
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def topological_order(spec: PipelineSpec) -> list[str]:
    """Steps in an order that respects dependencies, otherwise keeping the spec's order."""
    order: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        if node in done:
            return
        done.add(node)
        for dep in upstream(spec, node):
            visit(dep)
        order.append(node)

    for name in spec.steps:
        visit(name)
    return order

