"""Models registered before the layout moved pickled Loopline's classes under their old
module paths (`loopline.components.feature_transform`, `.torch_model`, `.torch_trainer`).
The fixtures were pickled by that code (tests/data/pickled_v0_1); they must still load and
predict exactly as they did. New pickles name the new homes."""

from __future__ import annotations

import pickle
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parents[2] / "data" / "pickled_v0_1"


def test_sklearn_bundle_pickled_under_the_old_path_loads_and_predicts() -> None:
    raw = (DATA / "sklearn_pipeline_v0_1.joblib").read_bytes()
    assert b"loopline.components.feature_transform" in raw  # really the old path
    model = joblib.load(DATA / "sklearn_pipeline_v0_1.joblib")
    rows = pd.read_parquet(DATA / "rows.parquet")
    # rtol 1e-6, not 1e-7: numpy's SIMD kernels differ by CPU in the last bits of a float32.
    np.testing.assert_allclose(model.predict_proba(rows), np.load(DATA / "sklearn_expected.npy"),
                               rtol=1e-6)
    from loopline.ml.feature_transform import FeatureTransform

    assert isinstance(model.named_steps["features"], FeatureTransform)


def test_torch_model_pickled_under_the_old_path_loads_and_predicts() -> None:
    raw = (DATA / "torch_tabular_v0_1.joblib").read_bytes()
    assert b"loopline.components.torch_model" in raw
    assert b"loopline.components.torch_trainer" in raw
    model = joblib.load(DATA / "torch_tabular_v0_1.joblib")
    rows = pd.read_parquet(DATA / "rows.parquet")
    np.testing.assert_allclose(model.predict_proba(rows), np.load(DATA / "torch_expected.npy"),
                               rtol=1e-6)


def test_new_pickles_name_the_new_homes() -> None:
    from loopline.ml.feature_transform import FeatureTransform

    rows = pd.read_parquet(DATA / "rows.parquet")
    blob = pickle.dumps(FeatureTransform(numeric={"distance": "standard"}).fit(rows))
    assert b"loopline.ml.feature_transform" in blob
    assert b"loopline.components" not in blob
