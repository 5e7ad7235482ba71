"""int8 vs fp32: the shipped int8 bundle against the fp32 export it was quantized from.

Both run through edge-asr's own recognizer with greedy decoding (so only the model differs),
on the file benchmark's clips, side by side in interleaved rounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmarks.files import Clip, EngineResult, Transcriber, run_files
from edge_asr.asr.bundle import BUILTIN_MODEL_DIR

FP32_DIR = Path(__file__).resolve().parent / "models" / "home-en-fp32"
# Metadata that must agree for the two files to be the same model at two precisions.
SAME_MODEL_KEYS = ("model_name", "model_version", "vocab_size", "subsampling_factor")


@dataclass
class PrecisionRow:
    name: str
    file: Path
    size_mb: float
    result: EngineResult


def _metadata(path: Path) -> dict[str, str]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


def fp32_missing(fp32_dir: Path = FP32_DIR) -> str | None:
    """Why the fp32 row cannot be measured, or None if it can."""
    model, tokens = fp32_dir / "model.onnx", fp32_dir / "tokens.txt"
    if not model.is_file() or not tokens.is_file():
        return f"no fp32 bundle at {fp32_dir} (model.onnx + tokens.txt)"
    int8 = BUILTIN_MODEL_DIR / "model.int8.onnx"
    if tokens.read_bytes() != (BUILTIN_MODEL_DIR / "tokens.txt").read_bytes():
        return f"{tokens} differs from the built-in bundle's tokens.txt"
    ours, theirs = _metadata(int8), _metadata(model)
    differ = [k for k in SAME_MODEL_KEYS if ours.get(k) != theirs.get(k)]
    if differ:
        return f"{model} is not the built-in model in fp32: metadata {', '.join(differ)} differ"
    return None


def run_precision(clips: list[Clip], rounds: int, fp32_dir: Path = FP32_DIR) -> list[PrecisionRow]:
    """int8 and fp32 rows (int8 first); call only when ``fp32_missing()`` is None."""
    from edge_asr.asr.recognizer import Recognizer

    files = {
        "int8 (shipped)": BUILTIN_MODEL_DIR / "model.int8.onnx",
        "fp32": fp32_dir / "model.onnx",
    }

    def greedy(directory: Path | None) -> Transcriber:
        recognizer = Recognizer.load(directory, decoding="greedy")
        return lambda samples: recognizer.transcribe(samples, 16000).text

    engines = {"int8 (shipped)": greedy(None), "fp32": greedy(fp32_dir)}
    results = run_files(clips, engines, rounds)
    return [
        PrecisionRow(r.name, files[r.name], files[r.name].stat().st_size / 1e6, r) for r in results
    ]
