"""The pull request's and the merge's variants of a spec: what CI actually runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopline.ci import variants
from loopline.pipeline.load import load_pipeline, step_params
from loopline.spec.errors import SpecError
from tests.support import REPO


@pytest.fixture(scope="module")
def flights():  # type: ignore[no-untyped-def]
    return load_pipeline(REPO / "pipelines" / "flights.yaml")


def test_a_pull_request_samples_registers_nothing_and_keeps_its_own_artifacts(flights) -> None:  # type: ignore[no-untyped-def]
    variant = variants.for_pull_request(flights)
    kept = set(variant.spec.steps)
    assert "promote" not in kept and "materialize" not in kept  # nothing moves an alias
    assert {"ingest", "validate", "feast", "features", "train", "evaluate"} <= kept
    sample = step_params(variant, "ingest").sample
    assert (sample.rows, sample.seed) == (20_000, 0)
    assert step_params(flights, "ingest").sample is None  # the spec itself is untouched
    assert variant.spec.artifacts.root == f"{flights.spec.artifacts.root}/ci"
    assert variant.spec_hash != flights.spec_hash  # lineage tells the two runs apart
    # The gate is the spec's own, unchanged.
    assert step_params(variant, "evaluate") == step_params(flights, "evaluate")


def test_a_merge_goes_to_the_declared_rollout_or_straight_to_champion(flights) -> None:  # type: ignore[no-untyped-def]
    assert flights.spec.rollout is not None
    assert step_params(variants.for_main(flights), "promote").strategy == "canary"
    torch = load_pipeline(REPO / "pipelines" / "flights_torch.yaml")
    assert torch.spec.rollout is None
    assert step_params(variants.for_main(torch), "promote").strategy == "direct"


def test_which_specs_ci_trains_and_which_it_only_validates() -> None:
    loaded = {p.name: variants.check(p).loaded for p in variants.spec_files(REPO)}
    assert sorted(n for n, s in loaded.items() if s and variants.trains(s)) == \
        ["flights.yaml", "flights_torch.yaml"]
    assert sorted(n for n, s in loaded.items() if s and variants.promotes(s)) == \
        ["flights.yaml", "flights_torch.yaml"]


def test_a_spec_that_does_not_validate_is_checked_not_raised(tmp_path: Path) -> None:
    (tmp_path / "pipelines").mkdir()
    bad = tmp_path / "pipelines" / "bad.yaml"
    bad.write_text("name: bad\nsteps:\n  a: {component: nope.nothing}\n")
    checked = variants.check(bad)
    assert not checked.valid and any("bad.yaml:3" in p for p in checked.problems)


def test_the_ci_block_is_validated_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "pipelines").mkdir()
    spec = tmp_path / "pipelines" / "x.yaml"
    text = (REPO / "loopline/scaffold_data/pipelines/train.yaml").read_text()
    spec.write_text(text + "ci:\n  sample: {rows: 500, fraction: 0.1}\n")
    (tmp_path / "params.yaml").write_text(
        (REPO / "loopline/scaffold_data/params.yaml").read_text())
    with pytest.raises(SpecError) as caught:
        load_pipeline(spec)
    assert "rows or fraction, not both" in str(caught.value)
    assert f"x.yaml:{text.count(chr(10)) + 2}: ci.sample" in str(caught.value)
