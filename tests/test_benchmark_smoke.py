"""`make bench` in miniature: each section runs and writes its JSON (and the plot)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edge_asr.asr.bundle import BUILTIN_MODEL_DIR

ROOT = Path(__file__).resolve().parent.parent


def test_a_compare_model_that_is_no_bundle_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks.run import main

    with pytest.raises(SystemExit) as exit_:
        main(["--compare-model", str(tmp_path / "missing"), "--out", str(tmp_path / "r.json")])
    assert exit_.value.code == 2
    assert f"--compare-model: model bundle {tmp_path / 'missing'}: not a directory" in (
        capsys.readouterr().err
    )


def _quick_bench(tmp_path: Path, sections: str, *extra: str) -> tuple[str, dict[str, Any]]:
    out = tmp_path / "result.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--quick",
            "--sections",
            sections,
            "--out",
            str(out),
            "--cache",
            str(tmp_path / "cache"),
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout, json.loads(out.read_text())


@pytest.mark.timeout(300)
def test_quick_benchmark_prints_a_table_and_writes_json(tmp_path: Path) -> None:
    other = tmp_path / "other-model"  # the built-in bundle, copied: timed as another model
    shutil.copytree(BUILTIN_MODEL_DIR, other)
    stdout, data = _quick_bench(tmp_path, "files,memory,training", "--compare-model", str(other))
    assert "× edge-asr" in stdout and "Memory" in stdout and "float32 vs --bf16" in stdout
    engines = {e["name"]: e for e in data["files"]["engines"]}
    for decoding in ("greedy", "vocabulary"):  # the same model: the same words
        assert engines[f"{other} ({decoding})"]["wer"] == engines[f"edge-asr ({decoding})"]["wer"]
    same_samples = [
        "edge-asr (greedy)",
        "sherpa-onnx (greedy) + context",
        "floor (context+fbank+ORT+argmax)",
    ]
    assert {*same_samples, "sherpa-onnx (greedy)"} <= set(engines)
    # The same bundle and greedy decoding on the same samples (the clips with the quiet
    # context edge-asr adds): the same words.
    assert len({engines[name]["wer"] for name in same_samples}) == 1, engines
    for engine in engines.values():
        assert engine["seconds"] > 0 and 0 <= engine["wer"] <= 2
    assert data["machine"]["cores"] >= 1
    steps = data["memory"]["steps"]
    assert [s["error"] for s in steps] == [None] * len(steps), steps
    assert sum(s["added_mb"] for s in steps) == pytest.approx(steps[-1]["rss_mb"])
    model = next(s for s in steps if "model session" in s["label"])
    assert 1 < model["added_mb"] < model["rss_mb"] < 2000
    assert (tmp_path / "result.png").read_bytes().startswith(b"\x89PNG")
    training = data["training"]
    shipped = json.loads((BUILTIN_MODEL_DIR / "metrics.json").read_text(encoding="utf-8"))
    assert training["hidden"] == shipped["model"]["hidden"]  # the shipped width, not the default
    fp32, bf16, tr2 = training["modes"]
    assert (fp32["mode"], bf16["mode"], tr2["mode"]) == ("fp32", "bf16", "bf16-tr2")
    assert fp32["ratio_to_fp32"] == 1.0 and bf16["ratio_to_fp32"] > 0 and tr2["ratio_to_fp32"] > 0
    for mode in (fp32, bf16, tr2):
        assert len(mode["seconds"]) == 3 and all(s > 0 for s in mode["seconds"]), mode


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_live_benchmark_times_the_daemon_and_compares_int8_with_fp32(
    tmp_path: Path,
) -> None:
    for tool in ("mosquitto", "pulseaudio", "paplay", "pactl"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")
    stdout, data = _quick_bench(tmp_path, "latency,footprint,precision")
    assert "Latency" in stdout and "Footprint" in stdout and "int8 vs fp32" in stdout

    latency = data["latency"]
    assert latency["utterances"] == 3 and latency["received"] == 3, latency["missed"]
    hangover = latency["hangover_ms"]
    assert latency["goal_p95_ms"] == hangover + 100
    for sample in latency["samples"]:
        # The final cannot come before the hangover has (nearly) run out, and a broken
        # end-of-speech clock (e.g. timing from the start of playback) would add seconds.
        assert hangover / 2 < sample["latency_ms"] < hangover + 1500, sample
        assert -200 < sample["ended_at_ms"] < 1000, sample
    assert latency["p50_ms"] <= latency["p95_ms"] <= latency["max_ms"]

    footprint = data["footprint"]
    assert len(footprint["ready_s"]) == 1 and 0 < footprint["ready_s"][0] < 60
    assert 0 <= footprint["idle_cpu_percent"] < 100 and footprint["idle_seconds"] >= 4
    assert 10 < footprint["idle_rss_mb"] <= footprint["peak_rss_mb"] < 2000
    assert footprint["images"] == "not built" or all(
        name.startswith("edge-asr:") for name in footprint["images"]
    )

    precision = data["precision"]
    if "skipped" not in precision:
        int8, fp32 = precision["models"]
        assert int8["name"].startswith("int8") and fp32["name"] == "fp32"
        assert fp32["size_mb"] > 2 * int8["size_mb"]
        assert int8["seconds"] > 0 and fp32["seconds"] > 0
    assert (tmp_path / "result.png").read_bytes().startswith(b"\x89PNG")


def test_the_training_section_times_the_width_the_bundle_records(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="needs the [train] extra")
    from benchmarks.training import shipped_hidden

    assert shipped_hidden(tmp_path) == 192  # no metrics.json: the default network
    (tmp_path / "metrics.json").write_text('{"model": {"hidden": 320}}', encoding="utf-8")
    assert shipped_hidden(tmp_path) == 320
    (tmp_path / "metrics.json").write_text("not json", encoding="utf-8")
    assert shipped_hidden(tmp_path) == 192
