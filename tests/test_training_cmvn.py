"""The training features' mean and deviation, computed a chunk at a time."""

from __future__ import annotations

import numpy as np
import pytest

from edge_asr.training import data


@pytest.mark.parametrize("chunk", [1, 7, 1000, 1 << 20])
def test_cmvn_by_chunks_equals_the_whole_set_at_once(chunk: int) -> None:
    rng = np.random.default_rng(0)
    # Log-mel-like values: a large offset per bin, so a one-pass sum of squares would lose digits.
    x = (rng.normal(size=(1000, 80)) * rng.uniform(0.5, 3, 80) + rng.uniform(-20, 10, 80)).astype(
        np.float16
    )
    fs = data.FeatureSet(x, np.array([0, 400, 1000], np.int64), [{}, {}])
    mean, std = data.global_cmvn(fs, chunk=chunk)
    ref = x.astype(np.float64)
    assert mean.dtype == std.dtype == np.float32
    np.testing.assert_allclose(mean, ref.mean(axis=0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(std, ref.std(axis=0), rtol=1e-6)


def test_cmvn_floors_the_deviation_of_a_constant_bin() -> None:
    x = np.ones((50, 80), np.float16)
    mean, std = data.global_cmvn(data.FeatureSet(x, np.array([0, 50], np.int64), [{}]), chunk=8)
    np.testing.assert_allclose(mean, 1.0)
    np.testing.assert_allclose(std, 1e-3, rtol=1e-5)  # sqrt of the 1e-6 variance floor
