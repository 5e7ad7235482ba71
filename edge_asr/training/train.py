"""CTC training loop: length-bucketed batches, speaker/microphone augmentation, SpecAugment,
warmup + cosine LR, weight averaging over the last updates, checkpoints."""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edge_asr.asr.scoring import wer
from edge_asr.asr.tokens import TokenTable
from edge_asr.training.data import FeatureSet
from edge_asr.training.decode import greedy, letter_mask
from edge_asr.training.model import CtcModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    steps: int  # planned updates; the LR schedule ends here
    max_minutes: float  # stop (and keep the last weights) when training time reaches this
    batch_frames: int = 10000  # input frames per batch (padded); small batches = more updates
    max_batch: int = 64
    peak_lr: float = 2e-3
    warmup: int = 300
    weight_decay: float = 1e-2
    grad_clip: float = 5.0
    spec_augment: bool = True
    speaker_augment: bool = True  # VTLP warp + microphone colouring on the cached features
    warp: tuple[float, float] = (0.88, 1.12)  # VTLP factor range
    p_warp: float = 0.5
    freq_mask_bins: int = 12  # SpecAugment: two frequency masks of up to this many bins
    time_masks: int = 2  # SpecAugment: this many time masks of up to 5 % each
    eval_every: int = 500
    checkpoint_minutes: float = 4.0
    # Share of the planned updates, at the end, whose weights are averaged into the final
    # model (a snapshot every average_every updates); 0 keeps the last weights.
    average_last: float = 0.0
    average_every: int = 100
    threads: int = 2
    seed: int = 0
    # Forward and backward in bfloat16 (autocast); weights, optimizer and loss stay float32.
    # About 1.3x faster per update on CPUs with AVX512-BF16 or AMX, slower without.
    bf16: bool = False
    # Weight of the phoneme CTC loss of the model's training-only phoneme head (the word CTC
    # loss gets 1 - this); 0 trains on words alone.
    phone_ctc: float = 0.0


def native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU computes bfloat16 natively (x86 AVX512-BF16 or AMX, arm64 BF16)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def augment_settings(cfg: TrainConfig) -> dict[str, Any]:
    """The feature-augmentation settings of a run, as its metrics (and model card) record them."""
    return {
        "warp": list(cfg.warp),
        "p_warp": cfg.p_warp,
        "freq_mask_bins": cfg.freq_mask_bins,
        "time_masks": cfg.time_masks,
    }


def _warn_if_budget_ends_first(step: int, elapsed: float, budget: float, planned: int) -> None:
    """After the first epoch (every utterance seen once: a fair pace), say whether the time
    budget will end the schedule before the planned updates, and by how much."""
    if step == 0 or elapsed <= 0:
        return
    projected = int(step * budget / elapsed)
    needed = math.ceil(planned * elapsed / step / 60)
    if projected < planned:
        log.warning(
            "at %.2f s per update the %g-minute budget ends training after about %d of the "
            "%d planned updates; raise --max-minutes to %d to make them all",
            elapsed / step, budget / 60, projected, planned, needed,
        )  # fmt: skip


@dataclass
class TrainResult:
    steps: int
    train_seconds: float
    epochs: float
    final_loss: float
    averaged: int = 0  # weight snapshots averaged into the model (0: the last weights)


def make_batches(
    lengths: np.ndarray, cfg: TrainConfig, rng: random.Random, ascending: bool
) -> list[list[int]]:
    """Batches of similar length; shuffled unless ``ascending`` (first epoch: short ones first)."""
    noisy = [(int(n) * rng.uniform(0.95, 1.05), i) for i, n in enumerate(lengths)]
    order = [i for _, i in sorted(noisy)]
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        longest = max(int(lengths[i]), max((int(lengths[j]) for j in cur), default=0))
        if cur and (longest * (len(cur) + 1) > cfg.batch_frames or len(cur) >= cfg.max_batch):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    if not ascending:
        rng.shuffle(batches)
    return batches


def collate(fs: FeatureSet, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    lens = [int(fs.offsets[i + 1] - fs.offsets[i]) for i in idx]
    x = np.zeros((len(idx), max(lens), fs.feats.shape[1]), np.float32)
    for k, i in enumerate(idx):
        x[k, : lens[k]] = fs.features(i)
    return torch.from_numpy(x), torch.tensor(lens, dtype=torch.int64)


def collate_targets(
    targets: list[torch.Tensor], idx: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's CTC targets, concatenated, and their lengths."""
    chosen = [targets[i] for i in idx]
    flat = torch.cat(chosen) if chosen else torch.zeros(0, dtype=torch.int64)
    return flat, torch.tensor([len(t) for t in chosen], dtype=torch.int64)


def spec_augment(
    x: torch.Tensor,
    lens: torch.Tensor,
    mean: torch.Tensor,
    gen: torch.Generator,
    freq_mask_bins: int,
    time_masks: int,
) -> torch.Tensor:
    """Two frequency masks (<= ``freq_mask_bins``) and ``time_masks`` time masks (<= 5 % each),
    set to the mean."""
    x = x.clone()
    n, _, f = x.shape
    for b in range(n):
        t = int(lens[b])
        for _ in range(2):
            w = int(torch.randint(0, freq_mask_bins + 1, (1,), generator=gen))
            f0 = int(torch.randint(0, f - w + 1, (1,), generator=gen))
            x[b, :t, f0 : f0 + w] = mean[f0 : f0 + w]
        for _ in range(time_masks):
            w = int(torch.randint(0, max(1, t // 20) + 1, (1,), generator=gen))
            t0 = int(torch.randint(0, max(1, t - w + 1), (1,), generator=gen))
            x[b, t0 : t0 + w] = mean
    return x


# ln(10) / 10: a level change in dB as a change of log power (the features are natural logs).
LOG_POWER_PER_DB = math.log(10) / 10


def warp_mel_bins(x: torch.Tensor, factor: float) -> torch.Tensor:
    """VTLP-style warp of the last (mel-bin) axis, linear between bins; identity at factor 1.

    Bin ``i`` takes the value at source position ``i * factor`` below a boundary and a straight
    line from there to the top bin, so both ends of the band stay fixed and nothing falls off.
    """
    f = x.shape[-1]
    top = f - 1
    bound = 0.85 * top * min(1.0, 1.0 / factor)
    i = torch.arange(f, dtype=torch.float32)
    src = torch.where(
        i <= bound,
        i * factor,
        bound * factor + (i - bound) * (top - bound * factor) / (top - bound),
    ).clamp(0, top)
    lo = src.floor().long().clamp(max=top - 1)
    frac = (src - lo).to(x.dtype)
    return x[..., lo] * (1 - frac) + x[..., lo + 1] * frac


def colour_curve(n_bins: int, gen: torch.Generator, max_db: float = 6.0) -> torch.Tensor:
    """A smooth random gain curve over the bins (log power): a tilt plus one or two broad bumps.

    Stands in for a microphone's and a room's frequency response; stays within +-``max_db``.
    """
    pos = torch.linspace(-1.0, 1.0, n_bins)
    curve = float(torch.empty(1).uniform_(-1.0, 1.0, generator=gen)) * 4.0 * pos
    for _ in range(int(torch.randint(1, 3, (1,), generator=gen))):
        centre = float(torch.empty(1).uniform_(-1.0, 1.0, generator=gen))
        width = float(torch.empty(1).uniform_(0.1, 0.4, generator=gen))
        height = float(torch.empty(1).uniform_(-4.0, 4.0, generator=gen))
        curve = curve + height * torch.exp(-0.5 * ((pos - centre) / width) ** 2)
    return curve.clamp(-max_db, max_db) * LOG_POWER_PER_DB


def speaker_augment(
    x: torch.Tensor,
    lens: torch.Tensor,
    gen: torch.Generator,
    p_warp: float = 0.5,
    p_colour: float = 0.5,
    warp: tuple[float, float] = (0.88, 1.12),
) -> torch.Tensor:
    """Per utterance: VTLP warp (probability ``p_warp``), microphone colouring (``p_colour``).

    Works on cached log-mel features, so the runtime front end stays exactly as it is.
    """
    x = x.clone()
    n, _, f = x.shape
    for b in range(n):
        t = int(lens[b])
        if float(torch.rand(1, generator=gen)) < p_warp:
            factor = float(torch.empty(1).uniform_(*warp, generator=gen))
            x[b, :t] = warp_mel_bins(x[b, :t], factor)
        if float(torch.rand(1, generator=gen)) < p_colour:
            x[b, :t] += colour_curve(f, gen)
    return x


def lr_at(step: int, progress: float, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.peak_lr * (step + 1) / cfg.warmup
    return cfg.peak_lr * (0.03 + 0.97 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def dev_wer(
    model: CtcModel, dev: FeatureSet, table: TokenTable, limit: int = 150
) -> tuple[float, float]:
    """(greedy, vocabulary-constrained) WER of the torch model on a few dev utterances."""
    model.eval()
    mask = letter_mask(table)
    idx = list(range(min(limit, len(dev))))
    refs, free, vocab = [], [], []
    with torch.no_grad():
        for start in range(0, len(idx), 32):
            part = idx[start : start + 32]
            x, lens = collate(dev, part)
            lp, out_lens = model(x, lens)
            for k, i in enumerate(part):
                scores = lp[k, : int(out_lens[k])].numpy()
                refs.append(dev.items[i]["text"])
                free.append(greedy(scores, table))
                vocab.append(greedy(scores, table, mask))
    model.train()
    return wer(refs, free), wer(refs, vocab)


class WeightAverage:
    """A running mean of a model's floating-point weights (stochastic weight averaging)."""

    def __init__(self, mean: dict[str, torch.Tensor] | None = None, count: int = 0) -> None:
        self.mean = mean or {}
        self.count = count

    def add(self, model: torch.nn.Module) -> None:
        self.count += 1
        for key, value in model.state_dict().items():
            if not value.is_floating_point():
                continue
            if key not in self.mean:
                self.mean[key] = value.detach().clone()
            else:
                self.mean[key] += (value.detach() - self.mean[key]) / self.count

    def apply(self, model: torch.nn.Module) -> None:
        """Load the mean into ``model`` (its other entries, if any, stay)."""
        model.load_state_dict({**model.state_dict(), **self.mean})


def _save(path: Path, state: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def update(
    model: CtcModel,
    opt: torch.optim.Optimizer,
    ctc: torch.nn.CTCLoss,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    cfg: TrainConfig,
    phones: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> float:
    """One optimizer step on (features, lengths, targets, target lengths); returns the loss.

    With ``cfg.bf16`` the forward and backward passes run in bfloat16; the loss is taken on
    float32 log-probabilities and the weights and optimizer stay float32. With ``phones``
    (phoneme targets and their lengths) the loss mixes in the phoneme head's CTC loss by
    ``cfg.phone_ctc``.
    """
    x, lens, y, y_lens = batch
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
        if phones is None:
            lp, out_lens = model(x, lens)
        else:
            lp, phone_lp, out_lens = model.forward_with_phones(x, lens)
    loss = ctc(lp.float().transpose(0, 1), y, out_lens, y_lens)
    if phones is not None:
        phone_loss = torch.nn.functional.ctc_loss(
            phone_lp.float().transpose(0, 1),
            phones[0],
            out_lens,
            phones[1],
            blank=0,
            reduction="mean",
            zero_infinity=True,
        )
        loss = (1.0 - cfg.phone_ctc) * loss + cfg.phone_ctc * phone_loss
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    return float(loss.detach())


def train(
    model: CtcModel,
    train_set: FeatureSet,
    dev: FeatureSet,
    table: TokenTable,
    cfg: TrainConfig,
    checkpoint: Path,
    lexicon: dict[str, list[int]] | None = None,
) -> TrainResult:
    """Train (resuming from ``checkpoint`` if it exists) until cfg.steps or cfg.max_minutes.

    ``lexicon`` (each word's phoneme ids, 0 being the blank) gives the targets of the model's
    phoneme head; it is needed when ``cfg.phone_ctc`` is above 0.
    """
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    if cfg.bf16 and not native_bf16():
        log.warning("--bf16: this CPU has no native bfloat16 (AVX512-BF16, AMX or BF16): slower")
    targets = [torch.tensor(table.encode(it["text"]), dtype=torch.int64) for it in train_set.items]
    phone_targets: list[torch.Tensor] = []
    if cfg.phone_ctc > 0:
        if lexicon is None or not model.config.phone_vocab:
            raise ValueError("phone_ctc needs a lexicon and a model with a phoneme head")
        phone_targets = [
            torch.tensor([p for w in it["text"].split() for p in lexicon[w]], dtype=torch.int64)
            for it in train_set.items
        ]
    lengths = train_set.lengths()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.peak_lr, weight_decay=cfg.weight_decay)
    ctc = torch.nn.CTCLoss(blank=table.blank_id, reduction="mean", zero_infinity=True)
    step, epoch, pos, elapsed = 0, 0, 0, 0.0
    loss_avg = float("nan")
    average = WeightAverage()
    if checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise SystemExit(
                f"{checkpoint} holds another model layout ({first}); "
                "delete it or train in another --work folder"
            ) from None
        opt.load_state_dict(state["optimizer"])
        step, epoch, pos, elapsed = state["step"], state["epoch"], state["pos"], state["elapsed"]
        loss_avg = float(state.get("loss_avg", float("nan")))
        if state.get("average_plan") == (cfg.steps, cfg.average_last, cfg.average_every):
            average = WeightAverage(state["average"], state["average_count"])
        torch.set_rng_state(state["torch_rng"])
        log.info("resumed from %s at step %d (%.1f min trained)", checkpoint, step, elapsed / 60)
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + step)
    mean = model.cmvn_mean.detach().clone()
    model.train()
    budget = cfg.max_minutes * 60
    last_ckpt = time.monotonic()
    t_start = time.monotonic() - elapsed
    batches = make_batches(
        lengths, cfg, random.Random(cfg.seed * 7919 + epoch), ascending=epoch == 0
    )

    def state() -> dict[str, object]:
        return {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "step": step,
            "epoch": epoch,
            "pos": pos,
            "elapsed": elapsed,
            "loss_avg": loss_avg,
            "torch_rng": torch.get_rng_state(),
            "average": average.mean,
            "average_count": average.count,
            "average_plan": (cfg.steps, cfg.average_last, cfg.average_every),
        }

    while step < cfg.steps and elapsed < budget:
        if pos >= len(batches):
            if epoch == 0:
                _warn_if_budget_ends_first(step, elapsed, budget, cfg.steps)
            epoch, pos = epoch + 1, 0
            batches = make_batches(
                lengths, cfg, random.Random(cfg.seed * 7919 + epoch), ascending=False
            )
        idx = batches[pos]
        pos += 1
        x, lens = collate(train_set, idx)
        if cfg.speaker_augment:
            x = speaker_augment(x, lens, gen, p_warp=cfg.p_warp, warp=cfg.warp)
        if cfg.spec_augment:
            x = spec_augment(x, lens, mean, gen, cfg.freq_mask_bins, cfg.time_masks)
        y, y_lens = collate_targets(targets, idx)
        progress = max(step / cfg.steps, elapsed / budget)
        lr = lr_at(step, progress, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        phones = collate_targets(phone_targets, idx) if phone_targets else None
        value = update(model, opt, ctc, (x, lens, y, y_lens), cfg, phones)
        step += 1
        elapsed = time.monotonic() - t_start
        loss_avg = value if math.isnan(loss_avg) else 0.98 * loss_avg + 0.02 * value
        if (
            cfg.average_last > 0
            and progress >= 1.0 - cfg.average_last
            and step % cfg.average_every == 0
        ):
            average.add(model)
        if step % 50 == 0:
            log.info(
                "step %d epoch %d loss %.3f (avg %.3f) lr %.2e batch %dx%d %.1f min",
                step, epoch, value, loss_avg, lr, x.shape[0], x.shape[1], elapsed / 60,
            )  # fmt: skip
        if step % cfg.eval_every == 0:
            g_wer, v_wer = dev_wer(model, dev, table)
            log.info("step %d dev WER greedy %.1f %% vocab %.1f %%", step, g_wer, v_wer)
        if time.monotonic() - last_ckpt > cfg.checkpoint_minutes * 60:
            _save(checkpoint, state())
            last_ckpt = time.monotonic()
    _save(checkpoint, state())  # the checkpoint keeps the last weights and the average apart
    g_wer, v_wer = dev_wer(model, dev, table)
    log.info(
        "training done: step %d, %.1f min, dev WER greedy %.1f %% vocab %.1f %%",
        step,
        elapsed / 60,
        g_wer,
        v_wer,
    )
    if cfg.average_last > 0:
        if average.count:
            average.apply(model)
            g_wer, v_wer = dev_wer(model, dev, table)
            log.info(
                "weights averaged over %d snapshots of the last %g of training: dev WER "
                "greedy %.1f %% vocab %.1f %%",
                average.count, cfg.average_last, g_wer, v_wer,
            )  # fmt: skip
        else:
            log.warning("no weight snapshot was averaged: the model keeps its last weights")
    return TrainResult(
        step, elapsed, epoch + pos / max(len(batches), 1), loss_avg, averaged=average.count
    )
