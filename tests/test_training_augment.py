"""Speaker and microphone augmentation of training features (VTLP warp, colouring)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="needs the [train] extra")

from edge_asr.training import card  # noqa: E402
from edge_asr.training.pipeline import full_config  # noqa: E402
from edge_asr.training.train import (  # noqa: E402
    LOG_POWER_PER_DB,
    augment_settings,
    colour_curve,
    speaker_augment,
    spec_augment,
    warp_mel_bins,
)


def fake_features(frames: int = 120, bins: int = 80) -> torch.Tensor:
    return torch.randn(frames, bins, generator=torch.Generator().manual_seed(1)) * 3 - 8


def test_warp_at_factor_one_leaves_features_unchanged() -> None:
    x = fake_features()
    assert torch.allclose(warp_mel_bins(x, 1.0), x, atol=1e-5)


@pytest.mark.parametrize("factor", [0.8, 0.88, 0.95, 1.05, 1.12, 1.2])
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


def masked(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per utterance: the bins masked over every real frame, and the frames masked entirely."""
    changed = x != y
    return changed.all(dim=1), changed.all(dim=2)


@pytest.mark.parametrize(("bins", "time_masks"), [(12, 2), (20, 4)])
def test_spec_augment_masks_stay_within_their_limits(bins: int, time_masks: int) -> None:
    n, t = 64, 200
    x = torch.randn(n, t, 80, generator=torch.Generator().manual_seed(0))
    lens = torch.full((n,), t, dtype=torch.int64)
    mean = torch.full((80,), 100.0)  # far from every feature: a masked value is unmistakable
    y = spec_augment(x, lens, mean, torch.Generator().manual_seed(1), bins, time_masks)
    freq, frames = masked(x, y)
    # two frequency masks of at most `bins` bins each, time masks of at most 5 % each
    assert int(freq.sum(dim=1).max()) <= 2 * bins
    assert int(frames.sum(dim=1).max()) <= time_masks * (t // 20)
    # the limits are reached, not just respected: the widest draws come close to them
    assert int(freq.sum(dim=1).max()) > 1.2 * bins
    assert int(frames.sum(dim=1).max()) > (time_masks - 1) * (t // 20)


def test_strong_augment_is_its_own_recipe_and_the_card_says_how_it_was_made() -> None:
    plain, strong = full_config(0, 78.0), full_config(0, 78.0, strong_augment=True)
    assert strong.name == "full-sa" and plain.name == "full"  # its own cache and checkpoints
    assert strong.data == plain.data  # the same synthesized data: only training differs
    assert (strong.train.warp, strong.train.p_warp) == ((0.8, 1.2), 0.7)
    assert (strong.train.freq_mask_bins, strong.train.time_masks) == (20, 4)

    shipped = Path(__file__).parents[1] / "edge_asr" / "models" / "home-en" / "metrics.json"
    metrics = json.loads(shipped.read_text(encoding="utf-8"))
    metrics["training"]["augment"] = augment_settings(strong.train)
    text = card.render(metrics)
    assert "--strong-augment" in text
    assert "factor 0.80–1.20" in text and "(p 0.7)" in text
    assert "2 frequency masks ≤ 20 bins, 4 time masks" in text
    metrics["training"].pop("augment")  # a card from before the setting: the defaults
    metrics["model"]["hidden"] = 192  # the default size, whatever the shipped model's
    text = card.render(metrics)
    assert "--strong-augment" not in text and "factor 0.88–1.12" in text
    assert "--hidden" not in text


def test_another_model_size_is_its_own_recipe_and_in_the_reproduce_command() -> None:
    wide = full_config(0, 78.0, hidden=256)
    assert wide.name == "full-h256" and wide.hidden == 256
    assert wide.data == full_config(0, 78.0).data
    shipped = Path(__file__).parents[1] / "edge_asr" / "models" / "home-en" / "metrics.json"
    metrics = json.loads(shipped.read_text(encoding="utf-8"))
    metrics["model"]["hidden"] = 256
    text = card.render(metrics)
    assert "--hidden 256" in text and "(256 per direction)" in text
