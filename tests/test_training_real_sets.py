"""The alsa-utils recordings as a real-voice evaluation set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("torch", reason="needs the [train] extra")

from edge_asr.training.data import alsa_real_set  # noqa: E402


def test_alsa_set_reads_stereo_clips_named_by_their_words_and_skips_noise(tmp_path: Path) -> None:
    t = np.arange(96000) / 48000
    tone = (0.3 * np.sin(2 * np.pi * 300 * t) * ((t > 0.5) & (t < 1.5))).astype(np.float32)
    stereo = np.stack([tone, np.zeros_like(tone)], axis=1)  # voice in the left channel only
    sf.write(tmp_path / "Front_Left.wav", stereo, 48000)
    sf.write(tmp_path / "Rear_Center.wav", stereo[:, ::-1], 48000)
    sf.write(tmp_path / "Noise.wav", stereo, 48000)
    fs = alsa_real_set(tmp_path)
    assert fs is not None and fs.audio is not None
    assert [it["text"] for it in fs.items] == ["front left", "rear center"]
    assert all(it["group"] == "alsa_real" for it in fs.items)
    # downmixed (half the level), at 16 kHz
    assert len(fs.audio[0]) == 32000
    assert 0.1 < np.abs(fs.audio[0]).max() / 32768 < 0.2
    assert fs.features(0).shape[1] == 80


def test_alsa_set_is_skipped_when_not_installed(tmp_path: Path) -> None:
    assert alsa_real_set(tmp_path / "absent") is None
    assert alsa_real_set(tmp_path) is None
