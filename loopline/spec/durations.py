"""Durations as specs write them: `90`, `"45s"`, `"30m"`, `"1h"`, `"2d"`."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(value: str | int | float) -> float:
    """`90`, `"45s"`, `"30m"`, `"1h"`, `"2d"` -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration such as 30m, 1h or 2d")
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration such as 30m, 1h or 2d")
    return float(match.group(1)) * _SECONDS[match.group(2)]


def _checked(value: str | int | float) -> str | int | float:
    duration_seconds(value)
    return value


# A spec field holding a duration: kept as written (the schema and `params.yaml` show "30m"),
# checked when the spec is read; `duration_seconds` turns it into seconds where it is used.
Duration = Annotated[str | int | float, AfterValidator(_checked)]
