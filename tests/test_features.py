"""Quiet context around an utterance: added only where the audio is cut tight."""

from __future__ import annotations

import numpy as np
import pytest

from edge_asr.asr.features import CONTEXT_S, with_quiet_context

RATE = 16000
CONTEXT = int(CONTEXT_S * RATE)


def tone(seconds: float) -> np.ndarray:
    """A square wave: loud from its first sample to its last."""
    t = np.arange(int(seconds * RATE))
    return np.where((t // 20) % 2 == 0, 0.5, -0.5).astype(np.float32)


def test_audio_with_quiet_ends_is_returned_unchanged() -> None:
    quiet = np.zeros(CONTEXT, np.float32)
    x = np.concatenate([quiet, tone(1.0), quiet])
    padded, head = with_quiet_context(x, RATE)
    assert padded is x and head == 0


def test_tight_cut_audio_gets_the_missing_quiet_at_each_end() -> None:
    x = np.concatenate([np.zeros(1000, np.float32), tone(1.0)])  # 1000 quiet samples, then loud
    padded, head = with_quiet_context(x, RATE)
    assert head == CONTEXT - 1000
    assert len(padded) == head + len(x) + CONTEXT
    np.testing.assert_array_equal(padded[head : head + len(x)], x)
    assert np.abs(padded[:head]).max() < 1e-3  # near-silence, not digital silence
    assert np.abs(padded[:head]).max() > 0


def test_padding_is_the_same_every_time() -> None:
    x = tone(0.5)
    first, _ = with_quiet_context(x, RATE)
    second, _ = with_quiet_context(x, RATE)
    np.testing.assert_array_equal(first, second)


def test_silence_and_empty_audio_are_left_alone() -> None:
    for x in (np.zeros(0, np.float32), np.zeros(RATE, np.float32)):
        padded, head = with_quiet_context(x, RATE)
        assert padded is x and head == 0


def test_other_rates_get_the_same_duration_of_context() -> None:
    padded, head = with_quiet_context(np.ones(100, np.float32) * 0.3, 8000)
    assert head == int(CONTEXT_S * 8000) and len(padded) == 100 + 2 * head


def test_padding_continues_the_noise_floor_of_noisy_audio() -> None:
    rng = np.random.default_rng(3)
    x = tone(1.0) + (0.01 * rng.standard_normal(RATE)).astype(np.float32)
    x[RATE // 2 : RATE // 2 + 800] = 0.01 * rng.standard_normal(800)  # a pause: the noise alone
    padded, head = with_quiet_context(x, RATE)
    added = np.concatenate([padded[:head], padded[head + len(x) :]])
    assert np.sqrt(np.mean(added**2)) == pytest.approx(0.01, rel=0.2)
