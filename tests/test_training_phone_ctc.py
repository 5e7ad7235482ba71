"""--phone-ctc: a training-only phoneme CTC head on the first LSTM layer, never exported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

torch = pytest.importorskip("torch", reason="needs the [train] extra")

from test_training_average import (  # noqa: E402
    SHIPPED,
    WORDS,
    params,
    tiny_config,
    tiny_model,
    tiny_set,
)

from edge_asr.asr.bundle import load_bundle  # noqa: E402
from edge_asr.asr.tokens import TokenTable  # noqa: E402
from edge_asr.training import card  # noqa: E402
from edge_asr.training.export import export_onnx  # noqa: E402
from edge_asr.training.model import CtcModel, ModelConfig, count_parameters  # noqa: E402
from edge_asr.training.pipeline import full_config  # noqa: E402
from edge_asr.training.synth import espeak_phonemes, phoneme_lexicon  # noqa: E402
from edge_asr.training.train import train  # noqa: E402

# espeak-ng's phonemes of WORDS, as ids (0 is the blank)
LEXICON = {"on": [1, 2], "off": [1, 3], "lights": [4, 5, 6, 7]}


def phone_model(table: TokenTable) -> CtcModel:
    torch.manual_seed(0)
    return CtcModel(ModelConfig(len(table), conv_channels=4, hidden=16, phone_vocab=8))


def test_espeak_ng_spells_words_in_phonemes_without_stress_marks() -> None:
    assert espeak_phonemes("lights") == ["l", "aI", "t", "s"]
    assert espeak_phonemes("turn") == ["t", "3:", "n"]
    lexicon = phoneme_lexicon(["on", "okay"])
    assert list(lexicon) == ["on", "okay"] and all(lexicon.values())


def test_a_word_espeak_ng_cannot_speak_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RuntimeError, match="espeak-ng gave no phonemes for '...'"):
        espeak_phonemes("...")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RuntimeError, match=r"espeak-ng is not installed \(apt install espeak-ng\)"):
        espeak_phonemes("on")


def test_the_phoneme_head_changes_neither_the_outputs_nor_the_export(tmp_path: Path) -> None:
    table = TokenTable.for_words(WORDS)
    plain, headed = tiny_model(table), phone_model(table)
    headed.load_state_dict(plain.state_dict(), strict=False)  # same weights, plus the head
    plain.eval(), headed.eval()
    x, lens = torch.randn(2, 60, 80), torch.tensor([60, 41])
    with torch.no_grad():
        words, phones, out_lens = headed.forward_with_phones(x, lens)
        assert torch.equal(words, headed(x, lens)[0]) and torch.equal(words, plain(x, lens)[0])
    assert phones.shape == (2, 15, 8) and out_lens.tolist() == [15, 11]
    assert count_parameters(headed) == count_parameters(plain)
    for model, name in ((plain, "plain.onnx"), (headed, "headed.onnx")):
        export_onnx(model, tmp_path / name)
    graphs = [onnx.load(str(tmp_path / n)).graph for n in ("plain.onnx", "headed.onnx")]
    plain_graph, headed_graph = (
        [sorted(tuple(i.dims) for i in g.initializer), len(g.node)] for g in graphs
    )
    assert headed_graph == plain_graph  # no phoneme weights (16 x 2 -> 8) in the export
    assert all(dims[-1:] != (8,) for dims in headed_graph[0])


def test_a_phoneme_head_at_80_ms_frames_is_refused() -> None:
    with pytest.raises(ValueError, match="phoneme head needs time_reduction 1"):
        CtcModel(ModelConfig(5, conv_channels=4, hidden=16, time_reduction=2, phone_vocab=8))


@pytest.mark.timeout(120)
def test_training_with_phone_ctc_trains_the_head_and_changes_the_words(tmp_path: Path) -> None:
    table = TokenTable.for_words(WORDS)
    data = tiny_set()
    before = params(phone_model(table))
    runs = {}
    for weight in (0.0, 0.3):
        model = phone_model(table)
        cfg = tiny_config(average_last=0.0, phone_ctc=weight)
        result = train(model, data, data, table, cfg, tmp_path / f"{weight}.pt", LEXICON)
        assert result.steps == 10 and result.final_loss > 0
        runs[weight] = params(model)
    head = [k for k in before if k.startswith("phone_out.")]
    assert head and all(torch.equal(runs[0.0][k], before[k]) for k in head)  # words alone
    assert all(not torch.equal(runs[0.3][k], before[k]) for k in head)
    # the phoneme loss reaches the layers below the head: other weights than words alone
    assert not torch.equal(runs[0.3]["conv1.weight"], runs[0.0]["conv1.weight"])


def test_phone_ctc_without_a_lexicon_is_refused(tmp_path: Path) -> None:
    table = TokenTable.for_words(WORDS)
    cfg = tiny_config(phone_ctc=0.3)
    with pytest.raises(ValueError, match="phone_ctc needs a lexicon"):
        train(phone_model(table), tiny_set(), tiny_set(), table, cfg, tmp_path / "a.pt")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--phone-ctc", "1"], "--phone-ctc must be at least 0 and below 1, not 1"),
        (["--phone-ctc", "-0.1"], "--phone-ctc must be at least 0 and below 1, not -0.1"),
        (["--phone-ctc", "0.3", "--time-reduction", "2"], "--phone-ctc needs --time-reduction 1"),
    ],
)
def test_a_bad_phone_ctc_is_refused(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge_asr.training.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(["--out", "unused", *args])
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err


def test_phone_ctc_is_its_own_recipe_and_the_card_says_so() -> None:
    cfg = full_config(0, 70.0, festival_variety=True, piper=6000, bf16=True, phone_ctc=0.3)
    plain = full_config(0, 70.0, festival_variety=True, piper=6000, bf16=True)
    assert cfg.name == "full-fv-pip6000-bf16-pc0.3"  # its own checkpoints
    assert cfg.data == plain.data and cfg.train.phone_ctc == 0.3 and not plain.train.phone_ctc

    metrics = json.loads(SHIPPED.read_text(encoding="utf-8"))
    metrics["training"].pop("phone_ctc", None)  # metrics from before the option: words alone
    text = card.render(metrics)
    assert "--phone-ctc" not in text and "phoneme" not in text
    metrics["training"].update(phone_ctc=0.3, phonemes=["a", "b", "c"])
    text = card.render(metrics)
    assert "The loss is 0.7 × the word CTC loss + 0.3 × the CTC loss of a second" in text
    assert "transcript's 3 espeak-ng phonemes" in text
    assert text.split("## Reproduce", 1)[1].count(" --phone-ctc 0.3") == 1


@pytest.mark.timeout(300)
def test_a_smoke_run_with_phone_ctc_builds_the_lexicon_and_exports_words_alone(
    tmp_path: Path,
) -> None:
    out = tmp_path / "bundle"
    argv = ["--smoke", "--phone-ctc", "0.3", "--out", str(out), "--work", str(tmp_path / "w")]
    result = subprocess.run(
        [sys.executable, "-m", "edge_asr.training", *argv],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "w" / "smoke-pc0.3-seed0" / "train.log").exists()  # its own checkpoints
    training = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["training"]
    assert training["phone_ctc"] == 0.3
    assert 30 <= len(training["phonemes"]) <= 80  # espeak-ng's English set, stress marks dropped
    # espeak-ng -x marks stress and syllables with ' , % =: none of them is a phoneme
    assert not set("".join(training["phonemes"])) & set("',%="), training["phonemes"]
    text = (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert f"transcript's {len(training['phonemes'])} espeak-ng phonemes" in text
    assert " --smoke " in text and " --phone-ctc 0.3" in text.split("## Reproduce", 1)[1]
    # the export has the word outputs alone: log-probs over tokens.txt and their lengths
    model = onnx.load(str(out / "model.int8.onnx"))
    tokens = len((out / "tokens.txt").read_text(encoding="utf-8").splitlines())
    assert [o.name for o in model.graph.output] == ["log_probs", "log_probs_len"]
    assert model.graph.output[0].type.tensor_type.shape.dim[-1].dim_value == tokens
    load_bundle(out)
