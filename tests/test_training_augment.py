"""Speaker and microphone augmentation of training features (VTLP warp, colouring)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch", reason="needs the [train] extra")

from edge_asr.training.train import (  # noqa: E402
    LOG_POWER_PER_DB,
    colour_curve,
    speaker_augment,
    warp_mel_bins,
)


def fake_features(frames: int = 120, bins: int = 80) -> torch.Tensor:
    return torch.randn(frames, bins, generator=torch.Generator().manual_seed(1)) * 3 - 8


def test_warp_at_factor_one_leaves_features_unchanged() -> None:
    x = fake_features()
    assert torch.allclose(warp_mel_bins(x, 1.0), x, atol=1e-5)


@pytest.mark.parametrize("factor", [0.88, 0.95, 1.05, 1.12])
def test_warp_keeps_shape_band_ends_and_finite_values(factor: float) -> None:
    x = fake_features()
    y = warp_mel_bins(x, factor)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()
    assert torch.allclose(y[:, 0], x[:, 0]) and torch.allclose(y[:, -1], x[:, -1])
    # interpolation never leaves the range of the frame it came from
    assert (y.min(dim=1).values >= x.min(dim=1).values - 1e-5).all()
    assert (y.max(dim=1).values <= x.max(dim=1).values + 1e-5).all()


def test_warp_moves_a_formant_peak_by_the_factor() -> None:
    x = torch.zeros(1, 80)
    x[0, 40] = 1.0
    assert int(warp_mel_bins(x, 1.1).argmax()) in (36, 37)  # bin i reads bin 1.1 i
    assert int(warp_mel_bins(x, 0.9).argmax()) in (44, 45)


def test_colour_curve_is_smooth_bounded_and_seeded() -> None:
    gen = torch.Generator().manual_seed(0)
    curves = torch.stack([colour_curve(80, gen) for _ in range(200)])
    assert curves.shape == (200, 80)
    assert torch.isfinite(curves).all()
    assert float(curves.abs().max()) <= 6.0 * LOG_POWER_PER_DB + 1e-6
    # smooth: neighbouring bins differ by far less than the full range
    assert float(curves.diff(dim=1).abs().max()) < 2.0 * LOG_POWER_PER_DB
    again = colour_curve(80, torch.Generator().manual_seed(0))
    assert torch.equal(again, curves[0])


def test_log_power_per_db_matches_ten_log10() -> None:
    assert math.isclose(math.exp(10 * LOG_POWER_PER_DB), 10.0)


def test_speaker_augment_with_zero_probabilities_is_identity() -> None:
    x = fake_features().expand(3, -1, -1).clone()
    lens = torch.tensor([120, 80, 10])
    y = speaker_augment(x, lens, torch.Generator().manual_seed(0), p_warp=0.0, p_colour=0.0)
    assert torch.equal(y, x)


def test_speaker_augment_changes_only_real_frames_and_is_seeded() -> None:
    x = torch.zeros(4, 50, 80)
    x[:, :30] = fake_features(30)
    lens = torch.tensor([30, 30, 30, 30])
    y = speaker_augment(x, lens, torch.Generator().manual_seed(3), p_warp=1.0, p_colour=1.0)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert torch.equal(y[:, 30:], x[:, 30:])  # padding untouched
    assert not torch.equal(y[:, :30], x[:, :30])
    assert torch.equal(x[:, :30], fake_features(30).expand(4, -1, -1))  # input not modified
    z = speaker_augment(x, lens, torch.Generator().manual_seed(3), p_warp=1.0, p_colour=1.0)
    assert torch.equal(y, z)
