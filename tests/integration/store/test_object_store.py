"""Object stores against a real S3 endpoint (moto's server, tests/support/s3.py, standing in
for a cloud bucket): the artifact store's round trip, `ingest.table` reading s3:// sources
and keying its cache on the object's version, the extra named when s3fs/adlfs is missing,
and `compile dvc` refusing an object-store artifact root in one located line (issue #13)."""

from __future__ import annotations

import importlib
import io
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from loopline.components.contract import StepFailed
from loopline.integrations.tables import read_table
from loopline.runtime.hashing import StatCache, path_md5
from loopline.runtime.store import MANIFEST, FsspecStore, open_store
from tests.support import run_cli, run_json
from tests.support.s3 import S3Server

SPEC = """\
name: remote
artifacts:
  root: {root}
steps:
  ingest:
    component: ingest.table
    params:
      source: {source}
      split: {{by: random, eval_fraction: 0.25, seed: 7}}
"""


def _prefix() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"  # one session-wide bucket; each test its own keys


def _frame(rows: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"id": range(start, start + rows),
                         "label": [i % 3 for i in range(rows)],
                         "city": [f"c{i % 5}" for i in range(rows)]})


def _put(s3: S3Server, key: str, frame: pd.DataFrame) -> None:
    """Upload with boto3, not with the fsspec code under test."""
    buffer = io.BytesIO()
    if key.endswith(".parquet"):
        frame.to_parquet(buffer, index=False)
    else:
        frame.to_csv(buffer, index=False)
    s3.client().put_object(Bucket=s3.bucket, Key=key, Body=buffer.getvalue())


def _keys(s3: S3Server, prefix: str) -> set[str]:
    listing = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=prefix + "/")
    return {item["Key"].removeprefix(prefix + "/") for item in listing.get("Contents", [])}


def _project(tmp_path: Path, source: str, root: str = "artifacts") -> Path:
    (tmp_path / "pipelines").mkdir(parents=True, exist_ok=True)
    spec = tmp_path / "pipelines" / "remote.yaml"
    spec.write_text(SPEC.format(root=root, source=source))
    return spec


# --- the artifact store ------------------------------------------------------------------


def _stage(store: FsspecStore, version: str) -> tuple[Path, dict[str, Any]]:
    staging = store.staging("pipe", "step")
    (staging / "table.parquet").write_bytes(f"table {version}".encode())
    (staging / "model" / "sub").mkdir(parents=True)
    (staging / "model" / "weights.bin").write_bytes(f"weights {version}".encode())
    (staging / "model" / "sub" / "config.json").write_text(json.dumps({"v": version}))
    outputs = {name: {"path": path, "hash": path_md5(staging / path)}
               for name, path in (("table", "table.parquet"), ("model", "model"))}
    return staging, {"key": version, "outputs": outputs}


def test_fsspec_store_round_trip_on_s3(s3: S3Server, tmp_path: Path) -> None:
    prefix = _prefix()
    store = open_store(s3.url(prefix), tmp_path / "writer")
    assert isinstance(store, FsspecStore)
    assert store.read_manifest("pipe", "step") is None  # never ran

    staging, manifest = _stage(store, "v1")
    store.commit("pipe", "step", staging, manifest)
    assert not staging.exists()
    # The real bucket holds the outputs and the manifest, under <root>/<pipeline>/<step>/.
    assert _keys(s3, prefix) == {f"pipe/step/{name}" for name in (
        "table.parquet", "model/weights.bin", "model/sub/config.json", MANIFEST)}
    assert store.uri("pipe", "step", "table.parquet") == \
        f"s3://{s3.bucket}/{prefix}/pipe/step/table.parquet"

    # Another machine (a fresh store, an empty cache) finds the step complete and downloads.
    reader = open_store(s3.url(prefix), tmp_path / "reader")
    assert reader.read_manifest("pipe", "step") == manifest
    assert reader.outputs_intact("pipe", "step", manifest)
    for entry in manifest["outputs"].values():
        local = reader.local_path("pipe", "step", entry["path"], entry["hash"])
        assert local.is_relative_to(tmp_path / "reader")
        assert path_md5(local) == entry["hash"], entry
    assert (reader.root / "pipe" / "step" / manifest["outputs"]["model"]["hash"] / "model" /
            "sub" / "config.json").read_text() == '{"v": "v1"}'

    reader.invalidate("pipe", "step")
    assert store.read_manifest("pipe", "step") is None
    assert f"pipe/step/{MANIFEST}" not in _keys(s3, prefix)


def test_a_second_commit_replaces_a_folder_output(s3: S3Server, tmp_path: Path) -> None:
    """fsspec's `put` of a folder onto an existing one nests it (model/model/...) and leaves
    the old files for readers."""
    prefix = _prefix()
    store = open_store(s3.url(prefix), tmp_path / "writer")
    for version in ("v1", "v2"):
        staging, manifest = _stage(store, version)
        store.commit("pipe", "step", staging, manifest)
    assert _keys(s3, prefix) == {f"pipe/step/{name}" for name in (
        "table.parquet", "model/weights.bin", "model/sub/config.json", MANIFEST)}
    reader = open_store(s3.url(prefix), tmp_path / "reader")
    entry = manifest["outputs"]["model"]
    assert path_md5(reader.local_path("pipe", "step", "model", entry["hash"])) == entry["hash"]


# --- ingest.table on s3:// ---------------------------------------------------------------


def test_ingest_reads_parquet_and_csv_from_s3(s3: S3Server, tmp_path: Path) -> None:
    prefix = _prefix()
    _put(s3, f"{prefix}/rides.parquet", _frame(40))
    _put(s3, f"{prefix}/rides.csv", _frame(60, start=1000))
    for name, rows, first_id in (("rides.parquet", 40, 0), ("rides.csv", 60, 1000)):
        source = s3.url(f"{prefix}/{name}")
        project = tmp_path / name.replace(".", "-")
        summary = run_json(_project(project, source))
        step = summary["steps"]["ingest"]
        assert step["status"] == "succeeded", step
        assert step["metrics"]["rows_in"] == rows
        assert step["metrics"]["rows_train"] + step["metrics"]["rows_eval"] == rows
        folder = project / "artifacts" / "remote" / "ingest"
        both = pd.concat([pd.read_parquet(folder / "train.parquet"),
                          pd.read_parquet(folder / "eval.parquet")])
        assert sorted(both["id"]) == list(range(first_id, first_id + rows))
        # The cache key holds the store's version of the object, not "missing".
        hashes = json.loads((folder / MANIFEST).read_text())["data_hashes"]
        assert hashes[source].endswith(".obj"), hashes


def test_a_missing_object_is_a_clear_failure(s3: S3Server, tmp_path: Path) -> None:
    source = s3.url(f"{_prefix()}/nowhere.csv")
    summary = run_json(_project(tmp_path, source))
    assert summary["status"] == "failed"
    error = summary["steps"]["ingest"]["error"]
    assert error.startswith(f"data source {source!r}: not found (no object at {source})"), error
    assert "Traceback" not in error


def test_an_overwritten_object_changes_the_cache_key(s3: S3Server, tmp_path: Path) -> None:
    """Artifacts on S3 too: the whole run on the object store, as in production."""
    prefix = _prefix()
    key = f"{prefix}/data/rides.parquet"
    _put(s3, key, _frame(40))
    spec = _project(tmp_path, s3.url(key), root=s3.url(f"{prefix}/artifacts"))

    def ingest() -> dict[str, Any]:
        return run_json(spec)["steps"]["ingest"]

    first = ingest()
    assert first["status"] == "succeeded", first
    assert f"artifacts/remote/ingest/{MANIFEST}" in _keys(s3, prefix)  # on S3, not on disk
    assert not (tmp_path / "artifacts").exists()
    assert ingest()["status"] == "cached"
    _put(s3, key, _frame(40))  # the same bytes again: the same version, still reused
    assert ingest()["status"] == "cached"

    _put(s3, key, _frame(50))  # new content under the same key
    changed = ingest()
    assert changed["status"] == "succeeded", changed
    assert changed["metrics"]["rows_in"] == 50
    assert ingest()["status"] == "cached"


def test_source_versions_follow_the_object(s3: S3Server, tmp_path: Path) -> None:
    """StatCache.hash of a URI: the store's version of the object; neither it nor read_table
    trusts a listing this process cached before an overwrite."""
    import fsspec

    prefix = _prefix()
    key = f"{prefix}/table.csv"
    uri = s3.url(key)
    cache = StatCache(tmp_path / "source-hashes.json")
    assert cache.hash(uri) == "missing"
    _put(s3, key, _frame(5))
    first = cache.hash(uri)
    assert first == cache.hash(uri) and first.endswith(".obj")
    assert len(read_table(uri, tmp_path)) == 5

    s3fs = fsspec.filesystem("s3", skip_instance_cache=True)  # as Loopline makes its own
    s3fs.ls(f"{s3.bucket}/{prefix}")  # s3fs now caches this listing
    _put(s3, key, _frame(6))
    assert len(read_table(uri, tmp_path)) == 6
    second = cache.hash(uri)
    s3fs.ls(f"{s3.bucket}/{prefix}")
    _put(s3, key, _frame(7))
    assert cache.hash(uri) not in (first, second)


# --- what is missing or refused ----------------------------------------------------------


@pytest.mark.parametrize(("source", "package", "extra"), [
    ("s3://bucket/data.csv", "s3fs", "s3"),
    ("az://container/data.parquet", "adlfs", "azure"),
])
def test_a_missing_fsspec_package_names_the_extra(monkeypatch: pytest.MonkeyPatch,
                                                  source: str, package: str,
                                                  extra: str) -> None:
    registry = importlib.import_module("fsspec.registry")
    monkeypatch.setitem(sys.modules, package, None)  # `import s3fs` fails as if not installed
    for scheme in ("s3", "s3a", "az", "abfs"):
        monkeypatch.delitem(registry._registry, scheme, raising=False)
    with pytest.raises(StepFailed) as failure:
        read_table(source, Path("."))
    message = str(failure.value)
    assert message.startswith(f"data source {source!r}: no {source.split(':')[0]}:// support")
    assert f"pip install 'loopline[{extra}]'" in message, message


def test_compile_dvc_refuses_an_object_store_root_in_one_line(tmp_path: Path) -> None:
    spec = _project(tmp_path, "data/rides.csv", root="s3://bucket/artifacts")
    code, out, err = run_cli("compile", "dvc", str(spec), "-o", str(tmp_path / "dvc.yaml"))
    assert code == 2, err
    assert "Traceback" not in err and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    # `root:` is line 3 of the spec.
    assert lines[0].startswith(f"{spec}:3: artifacts.root: 's3://bucket/artifacts' is an "
                               "object store"), err
    assert "dvc remote add" in lines[0] and "loopline run" in lines[0]
    assert not (tmp_path / "dvc.yaml").exists()


def test_compile_dvc_runs_a_stage_reading_an_object_every_time(tmp_path: Path) -> None:
    spec = _project(tmp_path, "s3://bucket/data/rides.csv")
    code, _out, err = run_cli("compile", "dvc", str(spec), "-o", str(tmp_path / "dvc.yaml"))
    assert code == 0, err
    import yaml

    stage = yaml.safe_load((tmp_path / "dvc.yaml").read_text())["stages"]["ingest"]
    assert stage["always_changed"] is True  # DVC cannot see the object change
    assert not any("s3:" in dep for dep in stage.get("deps", [])), stage
