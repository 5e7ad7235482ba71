"""--festival-variety: more festival speech, the diphone voice at other mean pitches."""

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
from edge_asr.training.data import FESTIVAL_VARIETY_F0  # noqa: E402
from edge_asr.training.pipeline import full_config, smoke_config  # noqa: E402
from edge_asr.training.text import SentenceGenerator, load_vocabulary  # noqa: E402

KED = Path("/usr/share/festival/voices/english/ked_diphone")
SHIPPED = Path(__file__).parents[1] / "edge_asr" / "models" / "home-en" / "metrics.json"


def median_pitch(x: np.ndarray) -> float:
    f0 = parselmouth.Sound(x.astype(np.float64), SAMPLE_RATE).to_pitch()
    hz = f0.selected_array["frequency"]
    return float(np.median(hz[hz > 0]))


@pytest.mark.timeout(120)
@pytest.mark.skipif(
    shutil.which("festival") is None or not KED.exists(), reason="needs festival + ked_diphone"
)
def test_the_diphone_voice_speaks_at_the_mean_pitch_asked_and_zero_keeps_its_own() -> None:
    text = "turn on the kitchen lights please"
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        own, low, high, own_again = synth.festival_batch(
            "ked_diphone", [text] * 4, [1.0] * 4, tmp, [0.0, 85.0, 180.0, 0.0]
        )
        (plain,) = synth.festival_batch("ked_diphone", [text], [1.0], tmp)
    # 0 restores the voice's own intonation after another pitch was asked for
    assert np.array_equal(own, plain) and np.array_equal(own_again, plain)
    assert median_pitch(own) == pytest.approx(105.0, rel=0.1)  # ked_diphone's own mean
    assert median_pitch(low) == pytest.approx(85.0, rel=0.1)
    assert median_pitch(high) == pytest.approx(180.0, rel=0.1)
    assert len(low) == len(plain)  # pitch only: the timing stays


@pytest.mark.skipif(
    not synth.ASTERISK_TRANSCRIPTS.exists(), reason="needs Debian asterisk-core-sounds-en"
)
def test_the_plan_gives_diphone_utterances_a_pitch_in_range_and_changes_nothing_else() -> None:
    plan = replace(smoke_config(0, 1.0).data, festival_per_voice=200)
    gen = SentenceGenerator(load_vocabulary())
    base = data.plan_train(plan, gen, seed=3)
    varied = data.plan_train(replace(plan, festival_f0=(80.0, 220.0)), gen, seed=3)
    assert not any(u.f0 for u, _ in base)
    assert [(replace(u, f0=0.0), g) for u, g in varied] == base
    pitches = [u.f0 for u, _ in varied if u.f0]
    assert {u.voice for u, _ in varied if u.f0} == {"ked_diphone"}  # HTS voices ignore it
    assert len(pitches) == 200
    assert min(pitches) >= 80 and max(pitches) <= 220
    # log-uniform over the range: both ends are used and about as many below 133 Hz as above
    assert min(pitches) < 90 and max(pitches) > 200
    assert 70 < sum(p < (80 * 220) ** 0.5 for p in pitches) < 130


def test_festival_variety_is_its_own_recipe_and_the_card_says_how_it_was_made() -> None:
    plain, varied = full_config(0, 78.0), full_config(0, 78.0, festival_variety=True)
    assert (plain.name, varied.name) == ("full", "full-fv")  # its own cache and checkpoints
    assert (varied.data.espeak, varied.data.festival_per_voice) == (20000, 5000)
    assert varied.data.festival_f0 == FESTIVAL_VARIETY_F0 and plain.data.festival_f0 is None
    assert varied.train == plain.train  # only the data differs

    metrics = json.loads(SHIPPED.read_text(encoding="utf-8"))
    metrics["data"]["plan"].pop("festival_f0", None)  # a run without it (or from before it)
    text = card.render(metrics)
    assert "--festival-variety" not in text and "mean pitch" not in text
    metrics["data"]["plan"]["festival_f0"] = list(FESTIVAL_VARIETY_F0)
    text = card.render(metrics)
    assert "--festival-variety" in text
    assert "the diphone voice at a mean pitch of 80–220 Hz" in text


def test_another_festival_share_is_its_own_recipe() -> None:
    more = full_config(0, 78.0, festival_variety=True, festival_per_voice=8000)
    assert more.name == "full-fv-fpv8000"  # its own cache and checkpoints
    assert (more.data.espeak, more.data.festival_per_voice) == (20000, 8000)
    assert more.data.festival_f0 == FESTIVAL_VARIETY_F0
    # asking for the recipe's own count is the recipe
    assert full_config(0, 78.0, festival_variety=True, festival_per_voice=5000).name == "full-fv"
    assert full_config(0, 78.0, festival_per_voice=2000).name == "full"
    assert full_config(0, 78.0, festival_per_voice=3000).data.festival_per_voice == 3000


def test_another_espeak_share_is_its_own_recipe() -> None:
    mix = full_config(0, 78.0, festival_variety=True, festival_per_voice=8000, espeak=14000)
    assert mix.name == "full-fv-fpv8000-esp14000"  # its own cache and checkpoints
    assert (mix.data.espeak, mix.data.festival_per_voice) == (14000, 8000)
    assert full_config(0, 78.0, festival_variety=True, espeak=20000).name == "full-fv"
    assert full_config(0, 78.0, espeak=24000).name == "full"


# field, its flag, the count with --festival-variety, another count, the count without it
@pytest.mark.parametrize(
    ("field", "flag", "variety", "other", "plain"),
    [
        ("festival_per_voice", "--festival-per-voice", 5000, 8000, 2000),
        ("espeak", "--espeak", 20000, 14000, 24000),
    ],
)
def test_the_card_repeats_a_data_count_only_where_it_is_not_the_recipe_s(
    field: str, flag: str, variety: int, other: int, plain: int
) -> None:
    metrics = json.loads(SHIPPED.read_text(encoding="utf-8"))
    plan = metrics["data"]["plan"]
    plan["festival_f0"], plan[field] = list(FESTIVAL_VARIETY_F0), variety
    assert flag not in card.render(metrics)
    plan[field] = other
    assert f"--festival-variety {flag} {other}" in card.render(metrics)
    plan.pop("festival_f0")
    plan[field] = plain
    assert flag not in card.render(metrics)
