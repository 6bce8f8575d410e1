"""A Kubernetes pod, simulated: no cluster runs here, so each step's rendered pod runs as one
process in a folder holding only what the step image holds, with exactly the rendered
environment (secret references filled from a dict that stands in for Kubernetes secrets).

What the image holds comes from the repository's own Dockerfile and .dockerignore (the
project minus local state, then the Feast sources the Dockerfile builds), so a file a pod
needs and the image lacks fails here as it would in a cluster.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from tests.support import REPO
from tests.support.airflow import airflow_env, python

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none, namespace: ml}}]
current-context: none
"""
# The image's ENV (Dockerfile): the venv's bin first on PATH, no byte code, GX offline.
IMAGE_ENV = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
             "PYTHONDONTWRITEBYTECODE": "1", "GX_ANALYTICS_ENABLED": "False",
             "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def dockerignore(root: Path = REPO) -> list[str]:
    lines = (root / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    """Docker's rule for the patterns this repository uses: a pattern matches the path or a
    folder above it; `**/` matches at any depth."""
    parts = relative.split("/")
    for pattern in patterns:
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatch(part, pattern[3:]) for part in parts):
                return True
        elif any(fnmatch.fnmatch("/".join(parts[:i]), pattern)
                 for i in range(1, len(parts) + 1)):
            return True
    return False


def build_image(project: Path, target: Path) -> Path:
    """`COPY . ./` with .dockerignore, then the Dockerfile's build of the Feast sources."""
    patterns = dockerignore()
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project).as_posix()
        if path.is_file() and not ignored(relative, patterns):
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / relative)
    done = subprocess.run([sys.executable, "feature_repo/sources.py"], cwd=target,
                          capture_output=True, text=True, env={**os.environ, **IMAGE_ENV})
    assert done.returncode == 0, done.stderr[-3000:]
    return target


def render_airflow_pods(pipelines: Path, home: Path, dag_id: str, run_id: str,
                        environ: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Each task's pod as Airflow would submit it (templates rendered), in run order.
    The kubeconfig names a loopback address that is never contacted."""
    kubeconfig = home / "kubeconfig"
    home.mkdir(parents=True, exist_ok=True)
    kubeconfig.write_text(KUBECONFIG)
    env = airflow_env(home, pipelines, KUBECONFIG=str(kubeconfig), **environ)
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {env['AIRFLOW__CORE__DAGS_FOLDER']!r})
        import loopline_dags
        from kubernetes.client import ApiClient
        dag = getattr(loopline_dags, {dag_id!r})
        pods = {{}}
        for task in dag.topological_sort():
            task.render_template_fields({{"run_id": {run_id!r}, "params": dag.params.dump()}})
            pods[task.task_id] = ApiClient().sanitize_for_serialization(
                task.build_pod_request_obj(None))
        print("PODS", json.dumps(pods))
    """)
    result = python(code, env)
    assert result.returncode == 0, result.stderr[-5000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("PODS "))
    return dict(json.loads(line[5:]))


def container_env(pod: dict[str, Any], secrets: dict[tuple[str, str], str]) -> dict[str, str]:
    """The container's environment as the kubelet fills it: values, and secretKeyRefs looked
    up in `secrets` ((secret name, key) -> value); a missing one fails like a pod would,
    unless the ref is `optional` (the variable is then left unset)."""
    (container,) = pod["spec"]["containers"]
    env: dict[str, str] = {}
    for entry in container.get("env", []):
        if "valueFrom" in entry:
            ref = entry["valueFrom"]["secretKeyRef"]
            if (ref["name"], ref["key"]) in secrets or not ref.get("optional"):
                env[entry["name"]] = secrets[ref["name"], ref["key"]]
        else:
            env[entry["name"]] = entry.get("value") or ""
    return env


def run_pod(pod: dict[str, Any], image: Path, work: Path,
            secrets: dict[tuple[str, str], str]) -> subprocess.CompletedProcess[str]:
    """One pod: a fresh copy of the image at the same path every time (like /app in each new
    container), a fresh HOME and TMPDIR, the image's ENV plus the rendered env, nothing
    inherited from this process."""
    app, home = work / "app", work / "home"
    for folder in (app, home, work / "tmp"):
        shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(image, app, symlinks=True)
    home.mkdir()
    (work / "tmp").mkdir()
    (container,) = pod["spec"]["containers"]
    env = {**IMAGE_ENV, "HOME": str(home), "TMPDIR": str(work / "tmp"),
           **container_env(pod, secrets)}
    command = [*(container.get("command") or []), *(container.get("args") or [])]
    return subprocess.run(command, cwd=app, env=env, capture_output=True, text=True,
                          timeout=900)
