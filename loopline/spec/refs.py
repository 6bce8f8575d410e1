"""`step.output`: how one step names another step's output. Parsed here, and only here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OutputRef:
    """An input's source: output `output` of step `step`."""

    step: str
    output: str

    @classmethod
    def parse(cls, text: str) -> OutputRef:
        """`"train.model"` -> OutputRef("train", "model"); ValueError names what is wrong."""
        if not isinstance(text, str) or text.count(".") != 1:
            raise ValueError(f"expected 'step.output', got {text!r}")
        step, output = text.split(".")
        if not step or not output:
            raise ValueError(f"expected 'step.output', got {text!r}")
        return cls(step, output)

    def __str__(self) -> str:
        return f"{self.step}.{self.output}"
