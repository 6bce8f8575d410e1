"""A gate's cached verdict is only as fresh as the champion it judged against: if another
pipeline moved the champion while this one's promotion had not happened, judge again."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support import run_json


def test_a_verdict_is_reused_only_against_the_champion_it_judged(small_project: Path) -> None:
    spec_a = small_project / "pipelines" / "train.yaml"
    spec_b = spec_a.with_name("train_b.yaml")
    spec_b.write_text(spec_a.read_text().replace("name: train\n", "name: train-b\n", 1))
    first = run_json(spec_a)  # v1 champion; A's gate judged against no champion
    assert first["model"]["version"] == "1"
    assert run_json(spec_a)["steps"]["evaluate"]["status"] == "cached"  # its own promotion
    assert run_json(spec_b)["model"]["aliases"] == ["challenger", "champion"]  # B crowns v2
    # A's promotion is lost (as if it had crashed): its cached verdict ignores v2.
    shutil.rmtree(small_project / "artifacts" / "train" / "promote")
    again = run_json(spec_a)
    assert again["steps"]["train"]["status"] == "cached"
    assert again["steps"]["evaluate"]["status"] == "succeeded"  # judged again, against v2
    assert any("vs champion" in check["detail"] for check in again["gate"]["checks"]), \
        again["gate"]
