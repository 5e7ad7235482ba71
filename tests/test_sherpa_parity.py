"""sherpa-onnx (the reference implementation) and edge-asr agree on the same bundle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile as sf
from onnx import TensorProto, helper
from speech import HELDOUT_ESPEAK_VOICES, speak

from edge_asr.asr.bundle import BUILTIN_MODEL_DIR
from edge_asr.asr.decoding import greedy
from edge_asr.asr.features import CONTEXT_S, compute_fbank
from edge_asr.asr.recognizer import Recognizer

pytestmark = pytest.mark.timeout(180)
SHERPA = Path(__file__).with_name("sherpa_decode.py")


def sherpa(model: Path, tokens: Path, wavs: list[Path]) -> list[dict[str, object]]:
    result = subprocess.run(
        [sys.executable, str(SHERPA), str(model), str(tokens), *map(str, wavs)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("parity")
    phrases = [
        "turn on the kitchen light",
        "set the thermostat to twenty one degrees",
        "what time is it",
        "close the garage door please",
        "play the next song on the radio",
    ]
    # With the quiet the model expects at both ends, so that edge-asr adds none
    # (features.with_quiet_context) and both recognizers see the same samples.
    out = [
        speak(text, folder / f"{i}.wav", voice=HELDOUT_ESPEAK_VOICES[i % 3], pad_s=CONTEXT_S)
        for i, text in enumerate(phrases)
    ]
    rng = np.random.default_rng(1)
    noise = folder / "noise.wav"
    hiss = np.zeros(16000 * 3, np.float32)
    hiss[4800:-4800] = rng.standard_normal(16000 * 3 - 9600) * 0.05
    sf.write(str(noise), hiss, 16000)
    return [*out, noise]


def test_greedy_transcripts_tokens_and_timestamps_match(wavs: list[Path]) -> None:
    recognizer = Recognizer.load(decoding="greedy")
    reference = sherpa(
        BUILTIN_MODEL_DIR / "model.int8.onnx", BUILTIN_MODEL_DIR / "tokens.txt", wavs
    )
    for wav, ref in zip(wavs, reference, strict=True):
        samples, rate = sf.read(str(wav), dtype="float32")
        ours = recognizer.transcribe(samples, rate)
        assert ours.text == " ".join(str(ref["text"]).split()), wav
        assert ours.tokens == [str(t).replace(" ", "\u2581") for t in ref["tokens"]], wav  # type: ignore[attr-defined]
        assert ours.timestamps == ref["timestamps"], wav


def feature_echo_model(path: Path, dim: int = 80) -> None:
    """A zipformer-CTC-shaped model whose scores are its input features plus a never-best
    blank: sherpa's greedy tokens then spell out the argmax mel bin of every frame."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", dim])
    x_lens = helper.make_tensor_value_info("x_lens", TensorProto.INT64, ["N"])
    out = helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, ["N", "T", dim + 1])
    out_lens = helper.make_tensor_value_info("log_probs_len", TensorProto.INT64, ["N"])
    nodes = [
        # blank column = -1e9, shaped like x[..., :1]
        helper.make_node("Slice", ["x", "zero", "one", "two"], ["first"]),
        helper.make_node("Mul", ["first", "zero_f"], ["zeros"]),
        helper.make_node("Add", ["zeros", "neg"], ["blank"]),
        helper.make_node("Concat", ["blank", "x"], ["log_probs"], axis=2),
        helper.make_node("Identity", ["x_lens"], ["log_probs_len"]),
    ]
    inits = [
        helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
        helper.make_tensor("one", TensorProto.INT64, [1], [1]),
        helper.make_tensor("two", TensorProto.INT64, [1], [2]),
        helper.make_tensor("zero_f", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("neg", TensorProto.FLOAT, [], [-1e9]),
    ]
    graph = helper.make_graph(nodes, "echo", [x, x_lens], [out, out_lens], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_features_match_sherpa_frame_by_frame(tmp_path: Path, wavs: list[Path]) -> None:
    model = tmp_path / "echo.onnx"
    feature_echo_model(model)
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("<blk> 0\n" + "".join(f"b{i} {i + 1}\n" for i in range(80)))
    reference = sherpa(model, tokens, wavs)
    for wav, ref in zip(wavs, reference, strict=True):
        samples, rate = sf.read(str(wav), dtype="float32")
        feats = compute_fbank(samples)
        scores = np.concatenate([np.full((len(feats), 1), -1e9, np.float32), feats], axis=1)
        hyp = greedy(scores, 0)
        assert [f"b{i - 1}" for i in hyp.token_ids] == ref["tokens"], wav
        # sherpa assumes 4x subsampling when it turns frames into seconds
        assert [round(f * 0.04, 2) for f in hyp.frames] == ref["timestamps"], wav
        assert len(hyp.token_ids) > 20
