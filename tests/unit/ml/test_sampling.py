"""Seeded samples: the same seed gives the same rows, in their order."""

from __future__ import annotations

import numpy as np

from loopline.ml.sampling import sample_positions, sample_size
from loopline.spec.ci import Sample


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    first = sample_positions(10_000, Sample(rows=1_000, seed=3))
    assert np.array_equal(first, sample_positions(10_000, Sample(rows=1_000, seed=3)))
    assert not np.array_equal(first, sample_positions(10_000, Sample(rows=1_000, seed=4)))
    assert len(first) == 1_000 and (np.diff(first) > 0).all()  # order kept, no repeats


def test_sizes() -> None:
    assert sample_size(100, Sample(rows=1_000)) == 100  # never more than there is
    assert sample_size(1_000, Sample(fraction=0.25)) == 250
    assert sample_size(3, Sample(fraction=0.01)) == 1
    assert list(sample_positions(5, Sample(rows=500))) == [0, 1, 2, 3, 4]
    assert Sample().rows == 20_000 and Sample().describe() == "20,000 rows, seed 0"
