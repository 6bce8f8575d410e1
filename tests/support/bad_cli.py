"""Bad command lines a user really types, for the zero-traceback sweep (issue #12 §5).

Each case runs against a trained copy of the example (see `prepare`). Run as a script to
count outcomes over real subprocesses: `python -m tests.support.bad_cli PROJECT`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SPEC = "pipelines/flights.yaml"
DRIFT = "pipelines/flights_drift.yaml"
MODEL = "flights-late-arrival"
TIMEOUT_S = 30


@dataclass(frozen=True)
class Case:
    name: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    # Text the error must contain: it names what was wrong, not only that something was.
    says: str = ""


def _set(*values: str) -> tuple[str, ...]:
    return ("validate-spec", SPEC, *[a for v in values for a in ("--set", v)])


CASES: tuple[Case, ...] = (
    Case("spec missing", ("validate-spec", "pipelines/nope.yaml"), says="nope.yaml"),
    Case("spec is a folder", ("validate-spec", "pipelines"), says="pipelines"),
    Case("spec is binary", ("validate-spec", sys.executable), says="python"),
    Case("spec is empty", ("validate-spec", "empty.yaml"), says="empty.yaml"),
    Case("set bad date", _set("data.eval_from=2013-13-45"), says="eval_from"),
    Case("set not a date", _set("data.eval_from=yesterday"), says="eval_from"),
    Case("set yaml tag", _set("train.max_iter=!!python/object:os.system x"), says="max_iter"),
    Case("set custom tag", _set("train.max_iter=!x 3"), says="max_iter"),
    Case("set tab", _set("train.max_iter=\t1"), says="max_iter"),
    Case("set unclosed flow", _set("train.max_iter=[1, 2"), says="max_iter"),
    Case("set unclosed map", _set("train.max_iter={a: 1"), says="max_iter"),
    Case("set no equals", _set("train.max_iter"), says="train.max_iter"),
    Case("set empty key", _set("=1"), says="--set"),
    Case("set unknown section", _set("nope.x=1"), says="nope"),
    Case("set unknown key", _set("train.nope=1"), says="nope"),
    Case("set below a scalar", _set("train.max_iter.x=1"), says="max_iter"),
    Case("set wrong type", _set("gate.min_roc_auc=lots"), says="lots"),
    Case("set huge", _set("train.max_iter=" + "9" * 5000), says="max_iter"),
    Case("run max_iter zero", ("run", SPEC, "--set", "train.max_iter=0"), says="max_iter"),
    Case("run unknown only", ("run", SPEC, "--only", "nope"), says="nope"),
    Case("run unknown backend", ("run", SPEC, "--backend", "nope"), says="nope"),
    Case("run spec missing", ("run", "missing.yaml"), says="missing.yaml"),
    Case("step unknown", ("step", SPEC, "nope"), says="nope"),
    Case("step params env not json", ("step", SPEC, "ingest"),
         {"LOOPLINE_PARAMS_JSON": "{not json"}, says="LOOPLINE_PARAMS_JSON"),
    Case("step params env a list", ("step", SPEC, "ingest"),
         {"LOOPLINE_PARAMS_JSON": "[1, 2]"}, says="LOOPLINE_PARAMS_JSON"),
    Case("step params env unknown key", ("step", SPEC, "ingest"),
         {"LOOPLINE_PARAMS_JSON": '{"nope": 1}'}, says="nope"),
    Case("step fingerprint mismatch", ("step", SPEC, "ingest", "--fingerprint", "abc"),
         says="changed since"),
    Case("compile dvc into missing folder", ("compile", "dvc", SPEC, "-o", "no/such/dvc.yaml"),
         says="no/such"),
    Case("compile kfp into missing folder", ("compile", "kfp", SPEC, "-o", "no/such/p.yaml"),
         says="no/such"),
    Case("compile dvc onto a folder", ("compile", "dvc", SPEC, "-o", "pipelines"),
         says="pipelines"),
    Case("compile unknown target", ("compile", "argo", SPEC), says="argo"),
    Case("schema into missing folder", ("schema", "-o", "no/such/schema.json"), says="no/such"),
    Case("export into a file", ("components", "export", "-o", "params.yaml"),
         says="params.yaml"),
    Case("components unknown", ("components", "nope"), says="nope"),
    Case("submit params not json", ("submit", "kfp", SPEC, "--host", "http://127.0.0.1:9",
                                    "--params", "{nope"), says="--params"),
    Case("submit params a list", ("submit", "kfp", SPEC, "--host", "http://127.0.0.1:9",
                                  "--params", "[1]"), says="--params"),
    Case("submit params unknown key", ("submit", "kfp", SPEC, "--host", "http://127.0.0.1:9",
                                       "--params", '{"nope": 1}'), says="nope"),
    Case("submit host refuses", ("submit", "kfp", SPEC, "--host", "http://127.0.0.1:9"),
         says="127.0.0.1:9"),
    Case("submit host not a url", ("submit", "kfp", SPEC, "--host", "::::"), says="::::"),
    Case("models bogus uri scheme", ("models", "list", MODEL, "--tracking-uri", "bogus://x"),
         says="bogus"),
    Case("models uri refuses", ("models", "list", MODEL, "--tracking-uri",
                                "http://127.0.0.1:9"), says="127.0.0.1:9"),
    Case("models sqlite missing", ("models", "list", MODEL, "--tracking-uri",
                                   "sqlite:///no/such.db"), says="no/such.db"),
    Case("models unknown model", ("models", "list", "nope"), says="nope"),
    Case("models promote no version", ("models", "promote", MODEL), says="version"),
    Case("models promote missing version", ("models", "promote", MODEL, "999"), says="999"),
    Case("models promote bad version", ("models", "promote", MODEL, "abc"), says="abc"),
    Case("models rollback to missing", ("models", "rollback", MODEL, "--to", "999"),
         says="999"),
    Case("models rollback no previous", ("models", "rollback", MODEL), says="previous"),
    Case("features unknown entity key", ("features", "get", "nope=1", "--repo",
                                         "feature_repo"), says="nope"),
    Case("features unknown service", ("features", "get", "carrier=UA", "--repo",
                                      "feature_repo", "--service", "nope"), says="nope"),
    Case("features entity without value", ("features", "get", "tailnum", "--repo",
                                            "feature_repo"), says="tailnum"),
    Case("features repo missing", ("features", "get", "carrier=UA", "--repo", "nope"),
         says="nope"),
    Case("drift batch not parquet", ("drift", DRIFT, "--dry-run"), says="parquet"),
    Case("drift on a training spec", ("drift", SPEC, "--dry-run"), says="drift"),
    Case("suggest data missing", ("suggest-suite", "nope.csv"), says="nope.csv"),
    Case("suggest data not a table", ("suggest-suite", "empty.yaml"), says="empty.yaml"),
    Case("init into a file", ("init", "params.yaml"), says="params.yaml"),
    Case("init into a non-empty folder", ("init", "pipelines"), says="pipelines"),
)


def prepare(project: Path) -> None:
    """Files some cases need; the project must already hold a trained, scored example."""
    (project / "empty.yaml").write_text("")
    batches = project / "artifacts" / "monitoring" / MODEL
    batches.mkdir(parents=True, exist_ok=True)
    (batches / "9999-12.parquet").write_text("this is not parquet\n")


def run_subprocess(case: Case, project: Path, loopline: str) -> tuple[int, str, float]:
    import os

    started = time.perf_counter()
    try:
        result = subprocess.run([loopline, *case.argv], cwd=project, capture_output=True,
                                text=True, env={**os.environ, **case.env}, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return -1, "timeout", time.perf_counter() - started
    return result.returncode, result.stdout + result.stderr, time.perf_counter() - started


def main() -> None:
    project = Path(sys.argv[1]).resolve()
    loopline = str(Path(sys.executable).with_name("loopline"))
    prepare(project)
    tally = {"traceback": 0, "timeout": 0, "exit 0": 0, "unnamed": 0, "clean": 0}
    for case in CASES:
        code, output, seconds = run_subprocess(case, project, loopline)
        kind = ("traceback" if "Traceback" in output else "timeout" if code == -1 else
                "exit 0" if code == 0 else
                "unnamed" if case.says and case.says not in output else "clean")
        tally[kind] += 1
        last = output.strip().splitlines()[-1][:110] if output.strip() else ""
        print(f"{kind:9} {code:>3} {seconds:5.1f}s  {case.name}: {last}")
    print(json.dumps({"cases": len(CASES), **tally}))


if __name__ == "__main__":
    main()
