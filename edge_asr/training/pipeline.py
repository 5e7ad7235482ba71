"""The whole model-making run: data -> CMVN -> train -> export -> int8 -> evaluate -> bundle."""

from __future__ import annotations

import logging
import math
import re
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edge_asr.asr.bundle import BUILTIN_MODEL_DIR
from edge_asr.asr.tokens import TokenTable
from edge_asr.training import calibrate, card, data, synth
from edge_asr.training.data import VOICE_CHANGE_SOURCES
from edge_asr.training.evaluate import (
    GroupScore,
    OnnxCtc,
    own_greedy,
    score_set,
    sherpa_greedy,
)
from edge_asr.training.export import export_onnx, quantize, read_metadata
from edge_asr.training.model import HIDDEN, CtcModel, ModelConfig, count_parameters
from edge_asr.training.text import SentenceGenerator, load_vocabulary
from edge_asr.training.train import TrainConfig, augment_settings, train

log = logging.getLogger(__name__)

EVAL_GROUPS = (
    "espeak_heldout", "espeak_heldout_noisy", "flite_heldout", "kokoro_heldout",
    "asterisk_heldout", "alsa_real", "train_voices",
)  # fmt: skip
BY_VOICE_GROUPS = ("espeak_heldout", "espeak_heldout_noisy", "flite_heldout", "kokoro_heldout")


@dataclass(frozen=True)
class RunConfig:
    name: str
    data: data.DataPlan
    train: TrainConfig
    conv_channels: int
    hidden: int
    utterance_cmn: bool = False
    time_reduction: int = 1  # the BiLSTM's output frames per its own frame (see model.py)
    workers: int = 2
    parity_per_group: int = 3
    extra: dict[str, str] = field(default_factory=dict)


# --strong-augment: TrainConfig's augmentation settings it replaces.
STRONG_AUGMENT: dict[str, Any] = {
    "warp": (0.8, 1.2),
    "p_warp": 0.7,
    "freq_mask_bins": 20,
    "time_masks": 4,
}


def full_config(
    seed: int,
    max_minutes: float,
    steps: int = 24000,
    threads: int = 2,
    voice_change: float = 0.0,
    utterance_cmn: bool = False,
    strong_augment: bool = False,
    hidden: int = HIDDEN,
    festival_variety: bool = False,
    festival_per_voice: int | None = None,
    voice_change_on: tuple[str, ...] = VOICE_CHANGE_SOURCES,
    average_last: float = 0.0,
    espeak: int | None = None,
    gnuspeech: int = 0,
    sentence_mix: tuple[float, float] | None = None,
    piper: int = 0,
    bf16: bool = False,
    time_reduction: int = 1,
    kokoro: int = 0,
    phone_ctc: float = 0.0,
) -> RunConfig:
    # Another recipe, another cache: its data and checkpoints live in their own folder.
    name = "full" if voice_change == 0 else f"full-vc{voice_change:g}"
    if voice_change and set(voice_change_on) != set(VOICE_CHANGE_SOURCES):
        name += "-on-" + "+".join(voice_change_on)
    name += "-ucmn" if utterance_cmn else ""
    name += "-sa" if strong_augment else ""
    name += f"-h{hidden}" if hidden != HIDDEN else ""
    name += f"-tr{time_reduction}" if time_reduction != 1 else ""
    name += "-fv" if festival_variety else ""
    plan = replace(
        data.full_plan(festival_variety),
        voice_change=voice_change,
        voice_change_on=tuple(voice_change_on),
    )
    if festival_per_voice is not None and festival_per_voice != plan.festival_per_voice:
        name += f"-fpv{festival_per_voice}"
        plan = replace(plan, festival_per_voice=festival_per_voice)
    if espeak is not None and espeak != plan.espeak:
        name += f"-esp{espeak}"
        plan = replace(plan, espeak=espeak)
    if gnuspeech:
        name += f"-gs{gnuspeech}"
        plan = replace(plan, gnuspeech=gnuspeech)
    if piper:
        name += f"-pip{piper}"
        plan = replace(plan, piper=piper)
    if kokoro:
        name += f"-kok{kokoro}"
        plan = replace(plan, kokoro=kokoro)
    if sentence_mix is not None and sentence_mix != plan.sentence_mix:
        name += f"-mix{sentence_mix[0]:g}-{sentence_mix[1]:g}"
        plan = replace(plan, sentence_mix=sentence_mix)
    # Averaging changes only the end of training: same data, its own checkpoint folder.
    name += f"-avg{average_last:g}" if average_last else ""
    name += "-bf16" if bf16 else ""
    # A phoneme head changes the model's layout: its own checkpoint, the same data.
    name += f"-pc{phone_ctc:g}" if phone_ctc else ""
    train_cfg = TrainConfig(
        steps=steps,
        max_minutes=max_minutes,
        threads=threads,
        seed=seed,
        average_last=average_last,
        bf16=bf16,
        phone_ctc=phone_ctc,
    )
    if strong_augment:
        train_cfg = replace(train_cfg, **STRONG_AUGMENT)
    return RunConfig(
        name=name,
        data=plan,
        train=train_cfg,
        conv_channels=32,
        hidden=hidden,
        utterance_cmn=utterance_cmn,
        time_reduction=time_reduction,
    )


def smoke_config(
    seed: int, max_minutes: float, threads: int = 2, phone_ctc: float = 0.0
) -> RunConfig:
    return RunConfig(
        name="smoke" + (f"-pc{phone_ctc:g}" if phone_ctc else ""),
        data=data.DataPlan(
            espeak=150,
            festival_per_voice=10,
            asterisk_copies=1,
            noise=10,
            eval_per_voice=3,
            eval_train_voices=6,
            asterisk_max_train=20,
            asterisk_max_eval=6,
        ),
        train=TrainConfig(
            steps=20,
            max_minutes=min(max_minutes, 1.0),
            warmup=5,
            eval_every=10,
            batch_frames=6000,
            threads=threads,
            seed=seed,
            phone_ctc=phone_ctc,
        ),
        conv_channels=8,
        hidden=48,
        parity_per_group=2,
    )


def run(cfg: RunConfig, out: Path, work: Path) -> dict[str, object]:
    """Run (or resume) every stage; write the bundle to ``out``; return the metrics."""
    t0 = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    seed = cfg.train.seed
    torch.manual_seed(seed)
    np.random.seed(seed)

    vocabulary = load_vocabulary()
    table = TokenTable.for_words(vocabulary)
    gen = SentenceGenerator(vocabulary)
    gen.check()
    log.info("vocabulary %d words, %d tokens", len(vocabulary), len(table))

    # 1. data
    t = time.monotonic()
    train_plan = data.plan_train(cfg.data, gen, seed)
    log.info("training plan: %s", data.plan_summary(train_plan))
    if cfg.data.gnuspeech and not (work / "data" / "train" / "DONE").exists():
        synth.ensure_gnuspeech()  # once, before the workers start
    if cfg.data.piper:
        synth.ensure_piper()
    if cfg.data.kokoro:
        synth.ensure_kokoro()
    train_set = data.build(train_plan, work / "data" / "train", cfg.workers, keep_audio=False)
    evals = {
        name: data.build(utts, work / "data" / name, cfg.workers, keep_audio=True)
        for name, utts in data.plan_eval(cfg.data, gen).items()
    }
    alsa = data.alsa_real_set()  # real human speech, evaluation only; absent without alsa-utils
    if alsa is not None:
        evals["alsa_real"] = alsa
    # Time spent making the data, whichever invocation made it (the cache keeps it).
    data_seconds = train_set.build_seconds + sum(fs.build_seconds for fs in evals.values())
    log.info(
        "data ready in %.1f min (this invocation %.1f min)",
        data_seconds / 60,
        (time.monotonic() - t) / 60,
    )

    # 2. model with in-model CMVN from the training features
    lexicon: dict[str, list[int]] | None = None
    phonemes: list[str] = []
    if cfg.train.phone_ctc:
        # the vocabulary and the words outside it (asterisk prompts, spelled by letters)
        heard = {w for it in train_set.items for w in it["text"].split()}
        spelled = synth.phoneme_lexicon(sorted(set(vocabulary) | heard))
        phonemes = sorted({p for ps in spelled.values() for p in ps})
        ids = {p: i + 1 for i, p in enumerate(phonemes)}  # 0 is the blank
        lexicon = {w: [ids[p] for p in ps] for w, ps in spelled.items()}
        log.info(
            "phoneme head: %d espeak-ng phonemes, loss weight %g", len(ids), cfg.train.phone_ctc
        )
    model = CtcModel(
        ModelConfig(
            len(table),
            cfg.conv_channels,
            cfg.hidden,
            utterance_cmn=cfg.utterance_cmn,
            time_reduction=cfg.time_reduction,
            phone_vocab=len(phonemes) + 1 if phonemes else 0,
        )
    )
    mean, std = data.global_cmvn(train_set)
    model.set_cmvn(mean, std)
    log.info("model: %d parameters", count_parameters(model))

    # 3. train (resumable); dev = a mix of the held-out voices, for progress logs only
    dev = _dev_set(evals)
    result = train(model, train_set, dev, table, cfg.train, work / "checkpoint.pt", lexicon)

    # 3b. blank calibration on the training voices (the checkpoint keeps the raw weights)
    blank_offset, blank_curve = calibrate.choose_blank_offset(model, evals["train_voices"], table)
    calibrate.apply_blank_offset(model, table.blank_id, blank_offset)
    log.info(
        "blank bias lowered by %g (train_voices vocab WER by offset: %s)", blank_offset, blank_curve
    )

    t_export = time.monotonic()
    resumes = _resumes(work / "train.log")

    # 4. export + quantize
    out.mkdir(parents=True, exist_ok=True)
    fp32 = work / "model.onnx"
    int8 = out / "model.int8.onnx"
    export_onnx(model, fp32)
    quantize(fp32, int8)
    table.write(out / "tokens.txt")
    (out / "words.txt").write_text("".join(w + "\n" for w in vocabulary), encoding="utf-8")
    meta = read_metadata(int8)
    assert meta == read_metadata(fp32), "int8 model lost its metadata"

    # 5. evaluate both models per group
    vocab = set(vocabulary)
    groups = [name for name in EVAL_GROUPS if name in evals]
    scores: dict[str, dict[str, dict[str, object]]] = {}
    for kind, path in (("fp32", fp32), ("int8", int8)):
        for key, s in _score_groups(OnnxCtc(path), evals, groups, table, vocab, gen).items():
            scores.setdefault(key, {})[kind] = asdict(s)
            log.info(
                "%s %s: greedy WER %.1f %%, vocab WER %.1f %%", kind, key, s.greedy_wer, s.vocab_wer
            )
    shipped = _score_shipped(evals, groups, table, vocab, gen, out / "tokens.txt")

    # 6. sherpa-onnx parity on a few WAVs of every group
    wavs: list[Path] = []
    for name in groups:
        wavs += [
            p
            for p, _ in data.write_wav_examples(
                evals[name], work / "parity" / name, cfg.parity_per_group
            )
        ]
    ours = own_greedy(int8, table, wavs)
    theirs = sherpa_greedy(int8, out / "tokens.txt", wavs)
    parity = {
        "wavs": len(wavs),
        "sherpa_onnx_loaded": theirs is not None,
        "identical": theirs is not None and theirs == ours,
        "mismatches": [
            {"wav": str(w), "ours": a, "sherpa": b}
            for w, a, b in zip(wavs, ours, theirs or ours, strict=True)
            if a != b
        ],
    }
    log.info("sherpa-onnx parity: %s", parity)

    # 7. metrics + card
    size = int8.stat().st_size
    if size > card.MAX_BUNDLE_BYTES:
        log.warning("int8 model is %d bytes, over the 5 MB budget", size)
    metrics: dict[str, object] = {
        "model": {
            "name": meta["model_name"],
            "version": meta["model_version"],
            "parameters": count_parameters(model),
            "conv_channels": cfg.conv_channels,
            "hidden": cfg.hidden,
            "utterance_cmn": cfg.utterance_cmn,
            "time_reduction": cfg.time_reduction,
            "vocab_size": len(table),
            "int8_bytes": size,
            "fp32_bytes": fp32.stat().st_size,
            "metadata": meta,
        },
        "training": {
            "config": cfg.name,
            "seed": seed,
            "steps": result.steps,
            "planned_steps": cfg.train.steps,
            "average_last": cfg.train.average_last,
            "average_every": cfg.train.average_every,
            "averaged_snapshots": result.averaged,
            "augment": augment_settings(cfg.train),
            "max_minutes": cfg.train.max_minutes,
            "train_minutes": round(result.train_seconds / 60, 1),
            "epochs": round(result.epochs, 2),
            # None when unknown (a checkpoint from before the loss was saved): JSON has no NaN.
            "final_loss": None if math.isnan(result.final_loss) else round(result.final_loss, 4),
            "data_minutes": round(data_seconds / 60, 1),
            "torch": torch.__version__,
            "threads": cfg.train.threads,
            "bf16": cfg.train.bf16,
            "phone_ctc": cfg.train.phone_ctc,
            "phonemes": phonemes,
            "resumed": resumes,
        },
        "calibration": {
            "set": "train_voices",
            "blank_offset": blank_offset,
            "vocab_wer_by_blank_offset": blank_curve,
        },
        "data": {
            "train_utterances": len(train_set),
            "train_hours": round(train_set.hours, 2),
            "train_by_source": data.plan_summary(train_plan),
            "plan": asdict(cfg.data),
            "eval": {
                k: {"utterances": len(v), "hours": round(v.hours, 3)} for k, v in evals.items()
            },
            "espeak_train_bases": list(synth.ESPEAK_TRAIN_BASES),
            "espeak_train_variants": [v for v in synth.ESPEAK_TRAIN_VARIANTS if v],
            "espeak_heldout_voices": list(synth.ESPEAK_HELDOUT_VOICES),
            "festival_train_voices": list(synth.FESTIVAL_TRAIN_VOICES),
            "flite_heldout_voices": list(synth.FLITE_HELDOUT_VOICES),
            **(
                {
                    "kokoro_train_voices": list(synth.KOKORO_TRAIN_VOICES),
                    "kokoro_heldout_voices": list(synth.KOKORO_HELDOUT_VOICES),
                }
                if cfg.data.kokoro
                else {}
            ),
        },
        "wer": scores,
        "shipped": shipped,
        "sherpa_onnx_parity": parity,
        "export_eval_minutes": round((time.monotonic() - t_export) / 60, 1),
        "this_invocation_minutes": round((time.monotonic() - t0) / 60, 1),
    }
    card.write(out, metrics)
    shutil.copy(out / "metrics.json", work / "metrics.json")
    log.info(
        "bundle written to %s (%d bytes int8) in %.1f min", out, size, (time.monotonic() - t0) / 60
    )
    return metrics


def _score_groups(
    model: OnnxCtc,
    evals: dict[str, data.FeatureSet],
    groups: list[str],
    table: TokenTable,
    vocab: set[str],
    gen: SentenceGenerator,
) -> dict[str, GroupScore]:
    """Scores by key: the group, its in-vocabulary subset and, for the synthesized held-out
    groups, each voice and commands apart from random word sequences."""
    out = {}
    for name in groups:
        split = name in BY_VOICE_GROUPS
        command = gen.is_command if split else None
        for subset, s in score_set(model, evals[name], table, vocab, split, command).items():
            out[name if subset == "all" else f"{name}/{subset}"] = s
    return out


def _score_shipped(
    evals: dict[str, data.FeatureSet],
    groups: list[str],
    table: TokenTable,
    vocab: set[str],
    gen: SentenceGenerator,
    tokens: Path,
) -> dict[str, object] | None:
    """The built-in model's int8 scores on the same sets, for comparison (None if it differs
    in tokens or is missing)."""
    model = BUILTIN_MODEL_DIR / "model.int8.onnx"
    shipped_tokens = BUILTIN_MODEL_DIR / "tokens.txt"
    if not model.exists() or not shipped_tokens.exists():
        log.info("no built-in model at %s: nothing to compare with", BUILTIN_MODEL_DIR)
        return None
    if shipped_tokens.read_text(encoding="utf-8") != tokens.read_text(encoding="utf-8"):
        log.info("built-in model %s has other tokens: not compared", BUILTIN_MODEL_DIR)
        return None
    version = read_metadata(model).get("model_version", "?")
    wer = {}
    for key, s in _score_groups(OnnxCtc(model), evals, groups, table, vocab, gen).items():
        wer[key] = {"int8": asdict(s)}
        log.info("shipped %s %s: vocab WER %.1f %%", version, key, s.vocab_wer)
    return {"path": str(BUILTIN_MODEL_DIR), "version": version, "wer": wer}


def _resumes(train_log: Path) -> list[dict[str, float]]:
    """Where earlier invocations of this run were interrupted and resumed (from train.log)."""
    if not train_log.exists():
        return []
    text = train_log.read_text(encoding="utf-8", errors="replace")
    found = re.findall(r"resumed from .* at step (\d+) \(([\d.]+) min trained\)", text)
    return [{"step": int(s), "minutes": float(m)} for s, m in found]


def _dev_set(evals: dict[str, data.FeatureSet]) -> data.FeatureSet:
    """Every other utterance of the held-out espeak and flite sets, interleaved (so the first
    utterances the progress log scores are of both engines)."""
    parts = [evals["espeak_heldout"], evals["flite_heldout"]]
    feats, items, lens = [], [], []
    for i in range(0, max(len(fs) for fs in parts), 2):
        for fs in parts:
            if i < len(fs):
                f = fs.features(i)
                feats.append(f)
                lens.append(len(f))
                items.append(fs.items[i])
    offsets = np.array([0, *lens], np.int64).cumsum()
    return data.FeatureSet(np.concatenate(feats), offsets, items)
