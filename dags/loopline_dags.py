"""One Airflow DAG per Loopline spec. Point Airflow's dags folder here, or copy this file.

The specs folder is $LOOPLINE_PIPELINES_DIR, else `pipelines/` beside this file's parent.
Parsing imports no pandas or ML library; each task imports what its step needs when it runs.
"""

import os
from pathlib import Path

from loopline.backends.airflow.dag import build_dags

PIPELINES = Path(os.environ.get("LOOPLINE_PIPELINES_DIR",
                                Path(__file__).resolve().parent.parent / "pipelines"))

globals().update(build_dags(PIPELINES))
