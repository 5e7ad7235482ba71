"""--piper: training speech from a neural voice (Piper, en_US joe), a delivery per utterance."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs the [train] extra")
pytest.importorskip("piper", reason="needs the [train] extra")

from edge_asr.asr.features import SAMPLE_RATE  # noqa: E402
from edge_asr.training import card, data, synth  # noqa: E402
from edge_asr.training.pipeline import full_config, smoke_config  # noqa: E402
from edge_asr.training.text import SentenceGenerator, load_vocabulary  # noqa: E402

SHIPPED = Path(__file__).parents[1] / "edge_asr" / "models" / "home-en" / "metrics.json"
TEXT = "set the kitchen thermostat to twenty degrees"


def say(voice: synth.PiperVoice, text: str, seed: int, **delivery: float) -> np.ndarray:
    """``text`` with the seed's noise and the seed's delivery, ``delivery`` on top."""
    own = synth.piper_prosody
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(synth, "piper_prosody", lambda s: {**own(s), **delivery})
        return voice(text, seed)


@pytest.mark.timeout(120)
def test_the_seed_alone_decides_the_audio_and_the_delivery_reaches_the_voice() -> None:
    voice = synth.PiperVoice()
    first = voice(TEXT, 5)
    voice("turn off the lights", 6)  # whatever was made in between
    assert np.array_equal(voice(TEXT, 5), first)
    assert np.array_equal(synth.PiperVoice()(TEXT, 5), first)  # another voice object, too
    assert 1.0 < len(first) / SAMPLE_RATE < 5.0 and np.abs(first).max() > 0.1

    fixed = {"length_scale": 1.0, "noise_scale": 0.6, "noise_w_scale": 0.8}
    one, other = say(voice, TEXT, 1, **fixed), say(voice, TEXT, 2, **fixed)
    assert not np.array_equal(one[: len(other)], other[: len(one)])  # the seed's own noise
    slow = say(voice, TEXT, 1, **{**fixed, "length_scale": 1.3})
    fast = say(voice, TEXT, 1, **{**fixed, "length_scale": 0.75})
    # longer and shorter (less than in proportion: the voice rounds durations to frames)
    assert len(fast) < 0.85 * len(one) and len(slow) > 1.1 * len(one)
    # no noise on the durations: the same length whatever the seed
    steady = {**fixed, "noise_w_scale": 0.0}
    assert len(say(voice, TEXT, 1, **steady)) == len(say(voice, TEXT, 2, **steady))


def test_deliveries_are_drawn_from_the_seed_within_the_ranges() -> None:
    deliveries = [synth.piper_prosody(seed) for seed in range(300)]
    assert deliveries[7] == synth.piper_prosody(7)
    for key, (lo, hi) in synth.PIPER_PROSODY.items():
        values = [d[key] for d in deliveries]
        assert lo <= min(values) and max(values) <= hi
        assert min(values) < lo + 0.1 * (hi - lo) and max(values) > hi - 0.1 * (hi - lo)


@pytest.mark.skipif(
    not synth.ASTERISK_TRANSCRIPTS.exists(), reason="needs Debian asterisk-core-sounds-en"
)
def test_the_plan_adds_piper_utterances_and_changes_no_other_one() -> None:
    plan = smoke_config(0, 1.0).data
    gen = SentenceGenerator(load_vocabulary())
    base = data.plan_train(plan, gen, seed=3)
    more = data.plan_train(replace(plan, piper=200), gen, seed=3)
    added = [u for u, g in more if u.engine == "piper"]
    assert len(added) == 200 and all(u.voice == "joe" and u.text for u in added)
    assert {g for u, g in more if u.engine == "piper"} == {"piper"}
    assert sorted(map(repr, (x for x in more if x[0].engine != "piper"))) == sorted(map(repr, base))
    assert len({u.seed for u in added}) == 200  # a delivery each
    changed = sum(u.voice_change for u in added)
    assert 0.35 < changed / 200 < 0.65  # about half made into another speaker


@pytest.mark.timeout(300)
def test_workers_make_the_same_piper_audio_as_one_process(tmp_path: Path) -> None:
    texts = ["yes", "turn on the kitchen lights please", "no", "set a timer for ten minutes"]
    utts = [
        (synth.Utterance("piper", "joe", t, 100 + i, augment=False), "piper")
        for i, t in enumerate(texts)
    ]
    utts.insert(2, (synth.Utterance("espeak", "en-us", "stop", 7, augment=False), "espeak"))
    one = data.build(utts, tmp_path / "one", workers=1, keep_audio=True)
    two = data.build(utts, tmp_path / "two", workers=2, keep_audio=True)
    assert [it["text"] for it in two.items] == [u.text for u, _ in utts]
    assert one.audio is not None and two.audio is not None
    assert all(np.array_equal(a, b) for a, b in zip(one.audio, two.audio, strict=True))
    alone = synth.PiperVoice()(texts[1], 101)
    assert len(one.audio[1]) == len(alone) + 2 * int(0.25 * SAMPLE_RATE)


def test_piper_is_its_own_recipe_and_the_card_says_how_it_was_made() -> None:
    pip = full_config(0, 78.0, festival_variety=True, piper=6000)
    assert pip.name == "full-fv-pip6000" and pip.data.piper == 6000
    assert replace(pip.data, piper=0) == full_config(0, 78.0, festival_variety=True).data

    metrics = json.loads(SHIPPED.read_text(encoding="utf-8"))
    metrics["data"]["plan"]["piper"] = 0
    text = card.render(metrics)
    assert "--piper" not in text and "Piper" not in text
    metrics["data"]["plan"]["piper"] = 6000
    text = card.render(metrics)
    assert " --piper 6000" in text.split("## Reproduce", 1)[1]
    assert "**Piper** (neural VITS voice en_US joe" in text
    assert "6,000 utterances, each with its own delivery: length scale 0.75–1.30" in text
    assert "50 % of them made into another speaker" in text
    assert "Piper (`piper-tts`, GPL-3.0-or-later) and its en_US joe voice (CC0" in text
