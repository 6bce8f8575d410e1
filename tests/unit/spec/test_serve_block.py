"""The `serve:` block is checked like every spec field: FILE:LINE: field: problem."""

from __future__ import annotations

from pathlib import Path

from tests.support import run_cli

SPEC = """\
name: bad
steps:
  ingest: {component: ingest.table, params: {source: data.csv}}
serve:
%s
"""


def _validate(tmp_path: Path, serve: str) -> tuple[int, str]:
    (tmp_path / "pipelines").mkdir(exist_ok=True)
    (tmp_path / "params.yaml").write_text("")
    spec = tmp_path / "pipelines" / "bad.yaml"
    spec.write_text(SPEC % serve)
    code, _out, err = run_cli("validate-spec", str(spec))
    return code, err


def test_each_bad_serve_field_is_one_located_line(tmp_path: Path) -> None:
    code, err = _validate(tmp_path, "  port: 99999\n  workers: 0\n  refresh: soon\n"
                                    "  missing_features: {policy: guess}\n"
                                    "  monitoring: {hold: 0, retrain_on: [vibes]}")
    assert code == 2
    lines = err.strip().splitlines()
    assert any(line.endswith("bad.yaml:5: serve.port: Input should be less than or equal to "
                             "65535, got 99999") for line in lines), err
    assert any(":7: serve.refresh: 'soon' is not a duration such as 30m, 1h or 2d" in line
               for line in lines), err
    assert any(":8: serve.missing_features.policy:" in line for line in lines), err
    assert any(":9: serve.monitoring.retrain_on" in line and "'vibes' is not a check" in line
               for line in lines), err


def test_serve_alone_serves_a_registered_model_so_it_needs_one(tmp_path: Path) -> None:
    code, err = _validate(tmp_path, "")
    assert code == 2
    assert err.strip().endswith("bad.yaml:4: serve: answers with a registered model: add "
                                "registry.model_name")
