"""Durations as specs write them: `90`, `"45s"`, `"30m"`, `"1h"`, `"2d"`."""

from __future__ import annotations

import re

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
