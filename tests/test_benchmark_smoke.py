"""`make bench` in miniature: the side-by-side file benchmark runs and writes its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)
def test_quick_benchmark_prints_a_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--quick",
            "--out",
            str(out),
            "--cache",
            str(tmp_path / "cache"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "× edge-asr" in result.stdout
    data = json.loads(out.read_text())
    engines = {e["name"]: e for e in data["files"]["engines"]}
    assert {"edge-asr (greedy)", "sherpa-onnx (greedy)", "floor (fbank+ORT+argmax)"} <= set(engines)
    # same bundle, same greedy decoding: the same words
    assert engines["edge-asr (greedy)"]["wer"] == engines["sherpa-onnx (greedy)"]["wer"]
    for engine in engines.values():
        assert engine["seconds"] > 0 and 0 <= engine["wer"] <= 2
    assert data["machine"]["cores"] >= 1
