"""The model-making pipeline runs end to end (smoke mode: tiny data, a few steps)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from edge_asr.asr.bundle import load_bundle
from edge_asr.asr.recognizer import Recognizer
from edge_asr.training.data import ALSA_SOUNDS

pytest.importorskip("torch", reason="needs the [train] extra")


@pytest.mark.timeout(300)
def test_smoke_run_makes_a_loadable_int8_bundle(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_asr.training",
            "--smoke",
            "--out",
            str(out),
            "--work",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert {p.name for p in out.iterdir()} >= {
        "model.int8.onnx",
        "tokens.txt",
        "words.txt",
        "MODEL_CARD.md",
        "metrics.json",
    }
    bundle = load_bundle(out)
    assert bundle.subsampling_factor == 4
    assert bundle.name == "edge-asr-home-en"
    ops = {n.op_type for n in onnx.load(str(out / "model.int8.onnx")).graph.node}
    assert "DynamicQuantizeLSTM" in ops
    metrics = json.loads((out / "metrics.json").read_text())
    assert "wer" in metrics
    card = (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    goals = card.split("## Goals\n", 1)[1].split("\n## ", 1)[0]
    for goal in ("≤ 10 % vocabulary-constrained WER", "≤ 5 MB is met", "within 1 point", "minutes"):
        assert goal in goals, goals
    if any(ALSA_SOUNDS.glob("*_*.wav")):
        assert metrics["wer"]["alsa_real"]["int8"]["utterances"] >= 1
    # the smoke bundle works with the runtime (its accuracy is irrelevant)
    Recognizer(bundle).transcribe(bundle_silence(), 16000)


def bundle_silence() -> np.ndarray:
    return np.zeros(16000, dtype=np.float32)


def test_smoke_refuses_a_full_run_recipe_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from edge_asr.training.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(["--smoke", "--out", "unused", "--hidden", "256", "--piper", "10", "--bf16"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--smoke runs its own tiny recipe" in err and "not --hidden, --piper, --bf16" in err
