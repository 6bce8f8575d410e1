"""Seeded row samples: what `loopline ci pr` trains on (same seed, same rows, same metrics)."""

from __future__ import annotations

import numpy as np

from loopline.spec.ci import Sample


def sample_size(total: int, sample: Sample) -> int:
    if sample.rows is not None:
        return min(total, sample.rows)
    return min(total, max(1, round(total * (sample.fraction or 1.0))))


def sample_positions(total: int, sample: Sample) -> np.ndarray:
    """The sampled row positions, in their original order; all of them when the sample is
    as large as the data. The same seed and total give the same positions."""
    size = sample_size(total, sample)
    if size >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(sample.seed).choice(total, size, replace=False))

