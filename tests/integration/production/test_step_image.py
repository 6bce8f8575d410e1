"""The step image, checked without Docker (no engine runs here; docs/production.md says it
was not built): what its Dockerfile and .dockerignore put at /app is what pods need."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.support import LOOPLINE, REPO
from tests.support.pods import IMAGE_ENV, build_image, dockerignore, ignored


def test_the_image_holds_the_project_but_no_local_state(tmp_path: Path) -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^COPY \. \./$", dockerfile, flags=re.M), "the whole project goes in"
    patterns = dockerignore()
    for state in ("artifacts", "mlflow.db", ".venv", ".loopline", ".git", "wandb",
                  "feature_repo/data", "loopline/__pycache__/x.pyc"):
        assert ignored(state, patterns), state
    for needed in ("pipelines/flights.yaml", "params.yaml", "params.production.yaml",
                   "expectations/flights.json", "feature_repo/definitions.py",
                   "feature_repo/feature_store.production.yaml", "feature_repo/sources.py"):
        assert not ignored(needed, patterns), needed

    image = build_image(REPO, tmp_path / "app")
    assert (image / "feature_repo" / "data" / "weather.parquet").is_file()  # built in RUN
    assert not (image / "artifacts").exists() and not (image / "mlflow.db").exists()
    # The Dockerfile's last RUN: every spec loads in the image, with and without the
    # production profile (a file a spec names but the image lacks fails here).
    assert "LOOPLINE_PROFILE=production loopline validate-spec" in dockerfile
    for spec in sorted((image / "pipelines").glob("*.yaml")):
        for profile in ("", "production"):
            done = subprocess.run([*LOOPLINE, "validate-spec", str(spec.relative_to(image))],
                                  cwd=image, capture_output=True, text=True,
                                  env={**IMAGE_ENV, "HOME": str(tmp_path),
                                       "LOOPLINE_PROFILE": profile})
            assert done.returncode == 0, (spec.name, profile, done.stderr[-2000:])
