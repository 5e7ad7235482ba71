"""ONNX export (Zipformer2-CTC contract), metadata, and dynamic int8 quantization."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import onnx
import torch

from edge_asr.asr.features import FEATURE_DIM, SAMPLE_RATE
from edge_asr.training.model import SUBSAMPLING, CtcModel

log = logging.getLogger(__name__)

MODEL_NAME = "edge-asr-home-en"
MODEL_VERSION = "1.5.0"


def metadata(vocab_size: int) -> dict[str, str]:
    return {
        "model_type": "edge_asr_ctc",
        "model_name": MODEL_NAME,
        "model_version": MODEL_VERSION,
        "language": "en",
        "vocab_size": str(vocab_size),
        "blank_id": "0",
        "subsampling_factor": str(SUBSAMPLING),
        "feature_type": "kaldi-fbank",
        "feature_dim": str(FEATURE_DIM),
        "sample_rate": str(SAMPLE_RATE),
        "normalization": "in-model",
        "frame_shift_ms": "10",
    }


def set_metadata(path: Path, meta: dict[str, str]) -> None:
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def read_metadata(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def export_onnx(model: CtcModel, path: Path, opset: int = 17) -> None:
    """fp32 ONNX with dynamic batch and time; exact for every utterance of a padded batch."""
    m = copy.deepcopy(model).eval()
    x = torch.randn(1, 123, FEATURE_DIM)
    x_lens = torch.tensor([123], dtype=torch.int64)
    torch.onnx.export(
        m,
        (x, x_lens),
        str(path),
        dynamo=False,
        opset_version=opset,
        input_names=["x", "x_lens"],
        output_names=["log_probs", "log_probs_len"],
        dynamic_axes={
            "x": {0: "N", 1: "T"},
            "x_lens": {0: "N"},
            "log_probs": {0: "N", 1: "T_out"},
            "log_probs_len": {0: "N"},
        },
    )
    set_metadata(path, metadata(model.config.vocab_size))
    onnx.checker.check_model(str(path))


def quantize(fp32: Path, int8: Path) -> None:
    """Dynamic int8 weights (LSTM -> DynamicQuantizeLSTM, MatMul/Conv -> integer ops)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    want = read_metadata(fp32)
    if read_metadata(int8) != want:
        log.info("quantization dropped metadata: adding it back")
        set_metadata(int8, want)
