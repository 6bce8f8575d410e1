"""Spec problems carry file, line and field so users can jump straight to the mistake."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpecProblem:
    """One thing wrong with a spec, located precisely enough to fix without a traceback."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field or '<root>'}: {self.message}"


class SpecError(Exception):
    """Raised with every problem found, so one `validate-spec` shows them all at once."""

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.field))
        super().__init__("\n".join(str(p) for p in self.problems))
