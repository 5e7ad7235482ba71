"""Word error rates of an exported ONNX model, per evaluation group, and sherpa-onnx parity."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import soundfile as sf

from edge_asr.asr.features import SAMPLE_RATE, compute_fbank, with_quiet_context
from edge_asr.asr.scoring import wer
from edge_asr.asr.tokens import TokenTable
from edge_asr.training.data import FeatureSet
from edge_asr.training.decode import greedy, letter_mask

log = logging.getLogger(__name__)


class OnnxCtc:
    """Batch-1 onnxruntime inference, as the runtime does it."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def log_probs(self, samples: np.ndarray) -> np.ndarray:
        feats = compute_fbank(samples)[None]
        lp, lens = self.session.run(
            None, {"x": feats, "x_lens": np.array([feats.shape[1]], np.int64)}
        )
        return lp[0, : int(lens[0])]


@dataclass
class GroupScore:
    utterances: int
    words: int
    greedy_wer: float
    vocab_wer: float


def score_set(
    model: OnnxCtc,
    fs: FeatureSet,
    table: TokenTable,
    vocab: set[str],
    by_voice: bool = False,
    is_command: Callable[[str], bool] | None = None,
) -> dict[str, GroupScore]:
    """Scores of the whole set, of its in-vocabulary subset if that differs, per voice, and,
    with ``is_command``, of its commands and of the rest (word sequences, single words)."""
    assert fs.audio is not None
    mask = letter_mask(table)
    refs, free, constrained, in_vocab = [], [], [], []
    for audio, item in zip(fs.audio, fs.items, strict=True):
        # As the recognizer does: quiet context added where the audio lacks it (the
        # synthesized sets have it already; recordings such as the asterisk prompts may not).
        samples, _ = with_quiet_context(audio.astype(np.float32) / 32768.0, SAMPLE_RATE)
        lp = model.log_probs(samples)
        refs.append(item["text"])
        free.append(greedy(lp, table))
        constrained.append(greedy(lp, table, mask))
        in_vocab.append(all(w in vocab for w in item["text"].split()))

    def group(sel: list[int]) -> GroupScore:
        r = [refs[i] for i in sel]
        return GroupScore(
            len(sel),
            sum(len(x.split()) for x in r),
            round(wer(r, [free[i] for i in sel]), 2),
            round(wer(r, [constrained[i] for i in sel]), 2),
        )

    out = {"all": group(list(range(len(refs))))}
    iv = [i for i, ok in enumerate(in_vocab) if ok]
    if len(iv) != len(refs):
        out["in_vocabulary"] = group(iv)
    if is_command is not None:
        command = [is_command(r) for r in refs]
        commands = [i for i, c in enumerate(command) if c]
        others = [i for i, c in enumerate(command) if not c]
        if commands and others:
            out["commands"] = group(commands)
            out["word_sequences"] = group(others)
    if by_voice:
        for v in sorted({it["voice"] for it in fs.items}):
            out[f"voice:{v}"] = group([i for i, it in enumerate(fs.items) if it["voice"] == v])
    return out


def own_greedy(model_path: Path, table: TokenTable, wavs: list[Path]) -> list[str]:
    model = OnnxCtc(model_path)
    texts = []
    for wav in wavs:
        samples, _ = sf.read(str(wav), dtype="float32")
        texts.append(greedy(model.log_probs(samples), table))
    return texts


def sherpa_greedy(model: Path, tokens: Path, wavs: list[Path]) -> list[str] | None:
    """sherpa-onnx transcripts, from a subprocess (a bad model can crash it); None on failure."""
    cmd = [
        sys.executable,
        "-m",
        "edge_asr.training.sherpa_check",
        str(model),
        str(tokens),
        *map(str, wavs),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        log.error("sherpa-onnx check timed out")
        return None
    if proc.returncode != 0:
        log.error("sherpa-onnx check failed (exit %d): %s", proc.returncode, proc.stderr[-2000:])
        return None
    return list(json.loads(proc.stdout.strip().splitlines()[-1]))
