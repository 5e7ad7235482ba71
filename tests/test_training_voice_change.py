"""Voice change (Praat's Change gender) as a training augmentation, and its share in the plan."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs the [train] extra")
parselmouth = pytest.importorskip("parselmouth", reason="needs the [train] extra")

from edge_asr.asr.features import SAMPLE_RATE  # noqa: E402
from edge_asr.training import card, data, synth  # noqa: E402
from edge_asr.training.__main__ import main  # noqa: E402
from edge_asr.training.augment import _pitch_in_bounds, change_voice  # noqa: E402
from edge_asr.training.pipeline import full_config  # noqa: E402
from edge_asr.training.text import SentenceGenerator, load_vocabulary  # noqa: E402


def vowel(f0: float, seconds: float = 1.0) -> np.ndarray:
    """A steady voiced sound: harmonics of ``f0`` shaped by two formant-like peaks."""
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    x = np.zeros_like(t)
    for k in range(1, int(4000 / f0)):
        f = k * f0
        gain = np.exp(-(((f - 700) / 200) ** 2)) + 0.5 * np.exp(-(((f - 1200) / 250) ** 2)) + 0.02
        x += gain * np.sin(2 * np.pi * f * t)
    return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


def median_pitch(x: np.ndarray) -> float:
    pitch = parselmouth.Sound(x.astype(np.float64), SAMPLE_RATE).to_pitch()
    f0 = pitch.selected_array["frequency"]
    return float(np.median(f0[f0 > 0]))


def test_change_voice_moves_the_pitch_to_the_target_and_keeps_the_timing() -> None:
    x = vowel(150.0)
    assert median_pitch(x) == pytest.approx(150.0, rel=0.03)
    y = change_voice(
        x,
        np.random.default_rng(0),
        formant_ratio=(1.1, 1.1),
        pitch_hz=(220.0, 220.0),
        pitch_range=(1.0, 1.0),
        keep_pitch=0.0,
    )
    assert y.dtype == np.float32 and np.all(np.isfinite(y))
    assert abs(len(y) - len(x)) <= 0.01 * len(x)
    assert median_pitch(y) == pytest.approx(220.0, rel=0.05)


def test_change_voice_is_seeded() -> None:
    x = vowel(120.0, 0.6)
    a = change_voice(x, np.random.default_rng(7))
    b = change_voice(x, np.random.default_rng(7))
    c = change_voice(x, np.random.default_rng(8))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_change_voice_passes_unvoiced_audio_through_usable() -> None:
    noise = (0.05 * np.random.default_rng(1).standard_normal(SAMPLE_RATE)).astype(np.float32)
    y = change_voice(noise, np.random.default_rng(2))
    assert np.all(np.isfinite(y)) and abs(len(y) - len(noise)) <= 0.01 * len(noise)


@pytest.mark.skipif(
    not synth.ASTERISK_TRANSCRIPTS.exists(), reason="needs Debian asterisk-core-sounds-en"
)
def test_plan_marks_its_share_for_a_voice_change_and_changes_nothing_else() -> None:
    plan = data.DataPlan(
        espeak=400,
        festival_per_voice=50,
        asterisk_copies=1,
        noise=50,
        eval_per_voice=1,
        eval_train_voices=1,
        asterisk_max_train=20,
    )
    gen = SentenceGenerator(load_vocabulary())
    base = data.plan_train(plan, gen, seed=3)
    changed = data.plan_train(replace(plan, voice_change=0.4), gen, seed=3)
    assert not any(u.voice_change for u, _ in base)
    assert [(replace(u, voice_change=False), g) for u, g in changed] == base
    speech = [u for u, _ in changed if u.engine != "noise"]
    share = sum(u.voice_change for u in speech) / len(speech)
    assert 0.33 < share < 0.47
    assert not any(u.voice_change for u, _ in changed if u.engine == "noise")

    # only the sources asked for: the natural-sounding ones, not espeak-ng's
    natural = data.plan_train(
        replace(plan, voice_change=0.4, voice_change_on=("festival", "asterisk")), gen, seed=3
    )
    assert [(replace(u, voice_change=False), g) for u, g in natural] == base
    assert not any(u.voice_change for u, _ in natural if u.engine in ("espeak", "noise"))
    for engine in ("festival", "asterisk"):
        of_it = [u.voice_change for u, _ in natural if u.engine == engine]
        assert 0.25 < sum(of_it) / len(of_it) < 0.55, engine


def test_voice_change_on_some_sources_is_its_own_recipe_and_the_card_repeats_it() -> None:
    every = full_config(0, 78.0, voice_change=0.5)
    some = full_config(0, 78.0, voice_change=0.5, voice_change_on=("festival", "asterisk"))
    assert (every.name, some.name) == ("full-vc0.5", "full-vc0.5-on-festival+asterisk")
    assert some.data.voice_change_on == ("festival", "asterisk")
    assert replace(some.data, voice_change_on=every.data.voice_change_on) == every.data

    shipped = Path(__file__).parents[1] / "edge_asr" / "models" / "home-en" / "metrics.json"
    metrics = json.loads(shipped.read_text(encoding="utf-8"))
    metrics["data"]["plan"].update(voice_change=0.5, voice_change_on=["festival", "asterisk"])
    text = card.render(metrics)
    assert "--voice-change 0.5 --voice-change-on festival,asterisk" in text
    assert "50% of the training speech from festival and asterisk was made into" in text
    metrics["data"]["plan"].pop("voice_change_on")  # a run from before the setting: all of it
    text = card.render(metrics)
    assert "--voice-change-on" not in text and "50% of the training speech was made" in text

    with pytest.raises(SystemExit) as exit_:
        main(["--out", "unused", "--voice-change-on", "festival,flite"])
    assert exit_.value.code == 2


def test_a_range_change_that_would_take_the_pitch_too_low_is_not_made() -> None:
    f0 = np.array([70.0, 80.0, 100.0, 120.0, 140.0])
    assert not _pitch_in_bounds(f0, median=0.0, spread=1.6)  # 70 Hz would go below 60
    assert _pitch_in_bounds(f0, median=0.0, spread=1.0)
    assert not _pitch_in_bounds(f0, median=400.0, spread=1.0)  # 140 Hz * 4 is above 450


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
@pytest.mark.timeout(30, method="thread")  # a hang is inside Praat: only a thread can see it
def test_change_voice_returns_on_a_low_voice_with_a_wide_range(tmp_path: Path) -> None:
    # Praat's Change gender never returns on this low espeak-ng voice with its pitch range
    # scaled by 1.6; such a range change is not made.
    wav = tmp_path / "low.wav"
    subprocess.run(
        [
            "espeak-ng",
            "-v",
            "en-us-nyc",
            "-s",
            "154",
            "-p",
            "24",
            "-w",
            str(wav),
            "what time is it",
        ],
        check=True,
        timeout=30,
    )
    x = synth._read_wav(wav)
    y = change_voice(
        x,
        np.random.default_rng(0),
        formant_ratio=(1.0, 1.0),
        pitch_range=(1.6, 1.6),
        keep_pitch=1.0,
    )
    assert np.all(np.isfinite(y)) and abs(len(y) - len(x)) <= 0.01 * len(x)
