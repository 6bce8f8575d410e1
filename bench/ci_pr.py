"""`loopline ci pr` on the example (every training spec on its default 20,000-row sample,
gated against champions) against the full pipelines it stands in for (`loopline run` of the
same specs on all rows), in one fresh copy of the example, nothing cached (`--force`).

Two pull requests: one that changes nothing the models see (the base is the head, so only
the head trains), and one that changes a training param (the base branch is trained on the
same sample too, the first push of a real change).

`python bench/ci_pr.py [REPEATS]`; medians, both measured in the same run.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _project import copy_example

BIN = Path(sys.executable).parent
SPECS = ("pipelines/flights.yaml", "pipelines/flights_torch.yaml")
ENV = {**os.environ, "GX_ANALYTICS_ENABLED": "False", "GIT_AUTHOR_NAME": "bench",
       "GIT_AUTHOR_EMAIL": "bench@example.invalid", "GIT_COMMITTER_NAME": "bench",
       "GIT_COMMITTER_EMAIL": "bench@example.invalid"}
for variable in ("MLFLOW_TRACKING_URI", "GITHUB_TOKEN", "GITHUB_STEP_SUMMARY"):
    ENV.pop(variable, None)


def seconds(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def main(repeats: int = 3) -> None:
    loopline = str(BIN / "loopline")
    with tempfile.TemporaryDirectory() as tmp:
        project = copy_example(Path(tmp) / "project")
        # What `loopline init` ignores: the store and the reports are not the project's files.
        (project / ".gitignore").write_text(
            "artifacts/\nmlflow.db\nmlflow.db.lock\nmlruns/\n.loopline/\nloopline-ci/\n")
        for git in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "example"]):
            subprocess.run(["git", "-c", "commit.gpgsign=false", *git], cwd=project, env=ENV,
                           check=True)
        for spec in SPECS:  # the champions a pull request is judged against
            seconds([loopline, "run", spec], project)
        full = [sum(seconds([loopline, "run", spec, "--force"], project) for spec in SPECS)
                for _ in range(repeats)]
        same = [seconds([loopline, "ci", "pr", "--force"], project) for _ in range(repeats)]
        params = project / "params.yaml"
        params.write_text(params.read_text().replace("max_leaf_nodes: 63", "max_leaf_nodes: 31"))
        changed = [seconds([loopline, "ci", "pr", "--force"], project) for _ in range(repeats)]
    print("## loopline ci pr vs the full pipelines (the example's two training specs)")
    for label, times in (("full pipelines (loopline run, all rows)", full),
                         ("ci pr, nothing changed (head only)", same),
                         ("ci pr, a param changed (base + head)", changed)):
        print(f"{label:<42} median {statistics.median(times):5.1f} s "
              f"({', '.join(f'{t:.1f}' for t in times)})")
    for label, times in (("nothing changed", same), ("a param changed", changed)):
        print(f"ratio full / ci pr, {label}: "
              f"{statistics.median(full) / statistics.median(times):.2f}x")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
