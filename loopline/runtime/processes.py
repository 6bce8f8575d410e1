"""Is a process that left something behind (a staging folder, a RUNNING MLflow run) still alive?"""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """True unless no such process exists on this host (another user's process counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
