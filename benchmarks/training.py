"""Training step: one update in float32 against the same update with ``--bf16``, and with
``--bf16 --time-reduction 2`` (the LSTM at 80 ms frames).

Both run ``edge_asr.training.train.update`` (what the training loop calls) on the shipped
model's architecture (its LSTM width from its ``metrics.json``; a phoneme head, training only,
is not included) and a batch shaped like a typical training batch, alternating precision
within each round so both see the same machine load. Needs the training extra (torch).
"""

from __future__ import annotations

import copy
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

# A typical batch of the training loop: ~41 utterances of ~2.4 s (10,000 frames budget).
BATCH, FRAMES, TARGET_TOKENS = 41, 242, 12
MODES = ("fp32", "bf16", "bf16-tr2")
TIME_REDUCTION = {"fp32": 1, "bf16": 1, "bf16-tr2": 2}


@dataclass
class StepRow:
    mode: str
    seconds: list[float]  # one per timed update, all rounds

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def torch_missing() -> str | None:
    """Why the section cannot run, or None if it can."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return "torch is not installed (pip install -e '.[train]')"
    return None


def shipped_hidden(bundle: Path) -> int:
    """The LSTM width per direction the bundle's model was trained with (the default if not
    recorded); needs torch, as the training code does."""
    from edge_asr.training.model import HIDDEN

    try:
        metrics = json.loads((bundle / "metrics.json").read_text(encoding="utf-8"))
        return int(metrics["model"]["hidden"])
    except (OSError, ValueError, KeyError, TypeError):
        return HIDDEN


def run_training_steps(rounds: int, updates: int, hidden: int, warmup: int = 2) -> list[StepRow]:
    """fp32 and bf16 rows of a network ``hidden`` wide; each round times ``updates`` updates per
    mode after ``warmup``."""
    import torch

    from edge_asr.asr.bundle import BUILTIN_MODEL_DIR
    from edge_asr.asr.features import FEATURE_DIM
    from edge_asr.training.model import CtcModel, ModelConfig
    from edge_asr.training.train import TrainConfig, update

    torch.set_num_threads(TrainConfig(steps=1, max_minutes=1).threads)
    torch.manual_seed(0)
    vocab = len((BUILTIN_MODEL_DIR / "tokens.txt").read_text(encoding="utf-8").splitlines())
    initial = {
        r: CtcModel(ModelConfig(vocab, hidden=hidden, time_reduction=r))
        for r in set(TIME_REDUCTION.values())
    }
    x = torch.randn(BATCH, FRAMES, FEATURE_DIM)
    lens = torch.full((BATCH,), FRAMES, dtype=torch.int64)
    y = torch.randint(1, vocab, (BATCH * TARGET_TOKENS,))
    y_lens = torch.full((BATCH,), TARGET_TOKENS, dtype=torch.int64)
    ctc = torch.nn.CTCLoss(blank=0, reduction="mean", zero_infinity=True)

    rows = {mode: StepRow(mode, []) for mode in MODES}
    for _ in range(rounds):
        for mode in MODES:
            cfg = TrainConfig(steps=1, max_minutes=1, bf16=mode.startswith("bf16"))
            model = copy.deepcopy(initial[TIME_REDUCTION[mode]])
            model.train()
            opt = torch.optim.AdamW(model.parameters(), lr=cfg.peak_lr)
            for i in range(warmup + updates):
                t = time.perf_counter()
                update(model, opt, ctc, (x, lens, y, y_lens), cfg)
                if i >= warmup:
                    rows[mode].seconds.append(time.perf_counter() - t)
    return [rows[mode] for mode in MODES]
