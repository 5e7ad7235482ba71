"""--gnuspeech: training speech from GnuSpeech's articulatory synthesizer, one speaker each."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs the [train] extra")
parselmouth = pytest.importorskip("parselmouth", reason="needs the [train] extra")

from edge_asr.asr.features import SAMPLE_RATE  # noqa: E402
from edge_asr.training import card, data, synth  # noqa: E402
from edge_asr.training.pipeline import full_config, smoke_config  # noqa: E402
from edge_asr.training.text import SentenceGenerator, load_vocabulary  # noqa: E402

SHIPPED = Path(__file__).parents[1] / "edge_asr" / "models" / "home-en" / "metrics.json"
needs_node = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None, reason="needs Node.js and npm"
)


def median_pitch(x: np.ndarray) -> float:
    f0 = parselmouth.Sound(x.astype(np.float64), SAMPLE_RATE).to_pitch()
    hz = f0.selected_array["frequency"]
    return float(np.median(hz[hz > 0]))


def median_f2(x: np.ndarray) -> float:
    """Median second formant (Hz) of the speech, 10 ms apart."""
    formants = parselmouth.Sound(x.astype(np.float64), SAMPLE_RATE).to_formant_burg(
        max_number_of_formants=5, maximum_formant=6000
    )
    times = np.arange(0.1, len(x) / SAMPLE_RATE - 0.1, 0.01)
    return float(np.nanmedian([formants.get_value_at_time(2, t) for t in times]))


def speak(settings: list[dict[str, float]], text: str) -> list[np.ndarray]:
    """Samples of ``text`` by each speaker: the seeds' own speakers with ``settings`` on top."""
    seeds = list(range(len(settings)))
    own = synth.gnuspeech_speaker

    def speaker(seed: int) -> dict[str, float]:
        return {**own(seed), **settings[seed]}

    with tempfile.TemporaryDirectory() as d, pytest.MonkeyPatch.context() as mp:
        mp.setattr(synth, "gnuspeech_speaker", speaker)
        return synth.gnuspeech_batch([text] * len(seeds), seeds, Path(d))


@needs_node
@pytest.mark.timeout(300)
def test_each_speaker_setting_reaches_the_synthesizer() -> None:
    text = "set the kitchen thermostat to twenty degrees"
    base = {"tract_cm": 16.0, "pitch_st": -6.0, "breathiness": 1.0, "tn": 28.0, "tempo": 1.0}
    base["intonation"] = 1.0
    plain, plain_again, slow, fast, high, short_tract = speak(
        [
            base,
            base,
            {**base, "tempo": 0.8},
            {**base, "tempo": 1.25},
            {**base, "pitch_st": 6.0},
            {**base, "tract_cm": 13.0},
        ],
        text,
    )
    assert np.array_equal(plain, plain_again)  # the same speaker says it the same way
    assert 1.0 < len(plain) / SAMPLE_RATE < 5.0 and np.abs(plain).max() > 0.1
    # tempo 0.8 -> 1.25 speaks faster: shorter by about that ratio
    assert len(fast) / len(slow) == pytest.approx(0.8 / 1.25, rel=0.15)
    # twelve semitones up: an octave
    assert median_pitch(high) / median_pitch(plain) == pytest.approx(2.0, rel=0.15)

    # a shorter vocal tract moves the formants up (GnuSpeech: less than in proportion)
    assert median_f2(short_tract) > 1.04 * median_f2(plain)


def test_speakers_are_drawn_from_the_seed_within_the_ranges() -> None:
    speakers = [synth.gnuspeech_speaker(seed) for seed in range(300)]
    assert speakers[7] == synth.gnuspeech_speaker(7)
    for key, (lo, hi) in synth.GNUSPEECH_SPEAKER.items():
        values = [s[key] for s in speakers]
        assert lo <= min(values) and max(values) <= hi
        # spread over the whole range, not stuck at one end
        assert min(values) < lo + 0.1 * (hi - lo) and max(values) > hi - 0.1 * (hi - lo)


@pytest.mark.skipif(
    not synth.ASTERISK_TRANSCRIPTS.exists(), reason="needs Debian asterisk-core-sounds-en"
)
def test_the_plan_adds_gnuspeech_utterances_and_changes_no_other_one() -> None:
    plan = smoke_config(0, 1.0).data
    gen = SentenceGenerator(load_vocabulary())
    base = data.plan_train(plan, gen, seed=3)
    more = data.plan_train(replace(plan, gnuspeech=120), gen, seed=3)
    added = [u for u, g in more if u.engine == "gnuspeech"]
    assert len(added) == 120 and all(u.voice == "gnuspeech" and u.text for u in added)
    assert {g for u, g in more if u.engine == "gnuspeech"} == {"gnuspeech"}
    assert sorted(map(repr, (x for x in more if x[0].engine != "gnuspeech"))) == sorted(
        map(repr, base)
    )
    assert len({u.seed for u in added}) == 120  # a speaker each
    assert len({u.text for u in added}) > 60


def test_gnuspeech_is_its_own_recipe_and_the_card_says_how_it_was_made() -> None:
    gs = full_config(0, 78.0, festival_variety=True, gnuspeech=8000)
    assert gs.name == "full-fv-gs8000" and gs.data.gnuspeech == 8000
    assert full_config(0, 78.0, festival_variety=True).data.gnuspeech == 0
    assert replace(gs.data, gnuspeech=0) == full_config(0, 78.0, festival_variety=True).data

    metrics = json.loads(SHIPPED.read_text(encoding="utf-8"))
    metrics["data"]["plan"]["gnuspeech"] = 0
    text = card.render(metrics)
    assert "--gnuspeech" not in text and "GnuSpeech" not in text
    metrics["data"]["plan"]["gnuspeech"] = 8000
    text = card.render(metrics)
    assert " --gnuspeech 8000" in text.split("## Reproduce", 1)[1]
    assert "**GnuSpeech** (articulatory tube-model synthesizer" in text
    assert "8,000 utterances, each by its own speaker: vocal-tract length 13.0–18.5 cm" in text
    assert "GnuSpeech (GPL-3.0" in text and " nodejs npm\n" in text


@pytest.mark.timeout(120)
def test_a_run_that_needs_gnuspeech_without_node_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge_asr.training.__main__ import main

    monkeypatch.setattr(synth, "GNUSPEECH_DIR", tmp_path / "gnuspeech")  # not installed there
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # no node, no npm
    code = main(["--out", str(tmp_path / "out"), "--work", str(tmp_path), "--gnuspeech", "10"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "error: GnuSpeech training data needs Node.js and npm (apt-get install nodejs npm)"
    )
    assert not (tmp_path / "out").exists()


@needs_node
@pytest.mark.timeout(300)
def test_a_set_mixing_engines_gets_each_utterance_its_own_gnuspeech_audio(tmp_path: Path) -> None:
    texts = ["yes", "turn on the kitchen lights please", "no", "set a timer for ten minutes"]
    utts = [
        (synth.Utterance("gnuspeech", "gnuspeech", t, 100 + i, augment=False), "gnuspeech")
        for i, t in enumerate(texts)
    ]
    utts.insert(2, (synth.Utterance("espeak", "en-us", "stop", 7, augment=False), "espeak"))
    fs = data.build(utts, tmp_path / "set", workers=1, keep_audio=True)
    assert [it["text"] for it in fs.items] == [u.text for u, _ in utts]
    assert [it["engine"] for it in fs.items][2] == "espeak"
    alone = synth.gnuspeech_batch(texts, [100, 101, 102, 103], tmp_path)
    pad = 2 * int(0.25 * SAMPLE_RATE)  # evaluation audio: 0.25 s of near-silence each side
    kept = [a for a, it in zip(fs.audio or [], fs.items, strict=True) if it["engine"] != "espeak"]
    assert [len(a) for a in kept] == [len(x) + pad for x in alone]
    assert all(fs.lengths() > 0)
