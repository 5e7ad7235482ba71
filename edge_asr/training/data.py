"""Plan, synthesize, augment and featurize the training and evaluation sets (cached on disk)."""

from __future__ import annotations

import json
import logging
import math
import multiprocessing as mp
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from edge_asr.asr.features import SAMPLE_RATE, compute_fbank
from edge_asr.audio.files import read_audio
from edge_asr.training import synth
from edge_asr.training.augment import Augmenter, pad_clean
from edge_asr.training.synth import Utterance
from edge_asr.training.text import SENTENCE_MIX, SentenceGenerator

log = logging.getLogger(__name__)

CHUNK = 100
# Debian alsa-utils' speaker-test recordings: one real human voice ("front left", ...).
ALSA_SOUNDS = Path("/usr/share/sounds/alsa")


def noisy_eval_augmenter() -> Augmenter:
    """Noisy evaluation copies: realistic room conditions, milder than training's worst case."""
    return Augmenter(
        p_speed=0.0, p_reverb=0.3, p_telephone=0.0, p_noise=1.0, snr_db=(10.0, 30.0),
        gain_db=(-10.0, 0.0), pad_s=(0.2, 0.5),
    )  # fmt: skip


# The training sources a voice change can apply to (noise has no voice).
VOICE_CHANGE_SOURCES = ("espeak", "festival", "asterisk")


@dataclass(frozen=True)
class DataPlan:
    """How much of each source to make."""

    espeak: int
    festival_per_voice: int
    asterisk_copies: int
    noise: int
    eval_per_voice: int
    eval_train_voices: int
    asterisk_max_train: int | None = None
    asterisk_max_eval: int | None = None
    voice_change: float = 0.0  # share of training speech made into another speaker (PSOLA)
    voice_change_on: tuple[str, ...] = VOICE_CHANGE_SOURCES  # ... of these sources' speech
    festival_f0: tuple[float, float] | None = None  # diphone voices' mean pitch range (Hz)
    gnuspeech: int = 0  # GnuSpeech utterances, each with its own random speaker
    piper: int = 0  # Piper (neural voice) utterances, each with its own delivery
    kokoro: int = 0  # Kokoro (neural, many voices) utterances; adds the kokoro_heldout set
    # Training sentences' shares of templates and random word sequences (the rest single
    # words). The evaluation sets keep the default.
    sentence_mix: tuple[float, float] = SENTENCE_MIX


# The share of Piper utterances made into another speaker (the voice is one man's).
PIPER_VOICE_CHANGE = 0.5

# --festival-variety: the diphone voice's mean pitch is drawn from this range (Hz, log-uniform).
FESTIVAL_VARIETY_F0 = (80.0, 220.0)

# The full recipe's data plan, and what --festival-variety replaces in it.
FULL_DATA = DataPlan(
    espeak=24000,
    festival_per_voice=2000,
    asterisk_copies=8,
    noise=800,
    eval_per_voice=60,
    eval_train_voices=200,
)
FESTIVAL_VARIETY: dict[str, Any] = {
    "espeak": 20000,
    "festival_per_voice": 5000,
    "festival_f0": FESTIVAL_VARIETY_F0,
}


def full_plan(festival_variety: bool) -> DataPlan:
    """The full recipe's data plan, with or without --festival-variety."""
    return replace(FULL_DATA, **FESTIVAL_VARIETY) if festival_variety else FULL_DATA


@dataclass
class FeatureSet:
    """Cached features of one set: float16 frames concatenated, with per-utterance metadata."""

    feats: np.ndarray  # (total_frames, 80) float16
    offsets: np.ndarray  # (n + 1,) int64
    items: list[dict[str, str]]  # text, engine, voice, group
    audio: list[np.ndarray] | None = None  # int16 samples (evaluation sets only)
    build_seconds: float = 0.0  # wall time it took to make (kept in stats.json)

    def __len__(self) -> int:
        return len(self.items)

    def features(self, i: int) -> np.ndarray:
        return self.feats[self.offsets[i] : self.offsets[i + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def hours(self) -> float:
        return float(self.offsets[-1]) / 100 / 3600

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "feats.npy", self.feats)
        np.save(folder / "offsets.npy", self.offsets)
        if self.audio is not None:
            lens = np.array([0] + [len(a) for a in self.audio], np.int64).cumsum()
            np.save(
                folder / "audio.npy",
                np.concatenate(self.audio) if self.audio else np.zeros(0, np.int16),
            )
            np.save(folder / "audio_offsets.npy", lens)
        (folder / "items.json").write_text(json.dumps(self.items), encoding="utf-8")
        stats = {"build_seconds": round(self.build_seconds, 1)}
        (folder / "stats.json").write_text(json.dumps(stats), encoding="utf-8")
        (folder / "DONE").touch()

    @classmethod
    def load(cls, folder: Path) -> FeatureSet:
        stats_file = folder / "stats.json"
        stats = json.loads(stats_file.read_text(encoding="utf-8")) if stats_file.exists() else {}
        audio = None
        if (folder / "audio.npy").exists():
            flat = np.load(folder / "audio.npy")
            offs = np.load(folder / "audio_offsets.npy")
            audio = [flat[offs[i] : offs[i + 1]] for i in range(len(offs) - 1)]
        return cls(
            np.load(folder / "feats.npy"),
            np.load(folder / "offsets.npy"),
            json.loads((folder / "items.json").read_text(encoding="utf-8")),
            audio,
            float(stats.get("build_seconds", 0.0)),
        )


# The evaluation sets, and the asterisk prompts held out for them, come from this seed whatever
# the run's --seed: runs with different seeds are scored on the same audio, so their scores
# differ by training alone (0, the shipped recipe's seed, keeps its sets as they were).
EVAL_SEED = 0


def plan_train(plan: DataPlan, gen: SentenceGenerator, seed: int) -> list[tuple[Utterance, str]]:
    """(utterance, group) pairs of the training set."""
    rng = random.Random(seed)
    gen = gen.with_mix(plan.sentence_mix)
    out: list[tuple[Utterance, str]] = []
    for text in gen.sentences(plan.espeak, seed + 1):
        voice = synth.espeak_train_voice(rng)
        utt = Utterance(
            "espeak", voice, text, rng.getrandbits(31), rng.randint(120, 220), rng.randint(20, 80)
        )
        out.append((utt, "espeak"))
    pitch = random.Random(seed + 101)  # its own stream, as for voice change below
    for k, voice in enumerate(synth.FESTIVAL_TRAIN_VOICES):
        for text in gen.sentences(plan.festival_per_voice, seed + 10 + k):
            utt = Utterance("festival", voice, text, rng.getrandbits(31))
            if plan.festival_f0 and voice.endswith("_diphone"):
                lo, hi = plan.festival_f0
                utt = replace(utt, f0=round(math.exp(pitch.uniform(math.log(lo), math.log(hi)))))
            out.append((utt, "festival"))
    if plan.gnuspeech:
        # Its own streams: the other sources' utterances are the same with or without it.
        speakers = random.Random(seed + 202)
        for text in gen.sentences(plan.gnuspeech, seed + 201):
            utt = Utterance("gnuspeech", "gnuspeech", text, speakers.getrandbits(31))
            out.append((utt, "gnuspeech"))
    if plan.piper:
        # Its own streams too. One recorded man's voice: a share of it is made into other
        # speakers (augment.change_voice), whatever the plan's voice_change says.
        deliveries, change = random.Random(seed + 302), random.Random(seed + 303)
        for text in gen.sentences(plan.piper, seed + 301):
            utt = Utterance(
                "piper",
                "joe",
                text,
                deliveries.getrandbits(31),
                voice_change=change.random() < PIPER_VOICE_CHANGE,
            )
            out.append((utt, "piper"))
    if plan.kokoro:
        # Its own streams as well: a training voice each, or a mix of two.
        voices, deliveries = random.Random(seed + 402), random.Random(seed + 403)
        for text in gen.sentences(plan.kokoro, seed + 401):
            voice = voices.choice(synth.KOKORO_TRAIN_VOICES)
            if voices.random() < synth.KOKORO_MIXED:
                other = voices.choice([v for v in synth.KOKORO_TRAIN_VOICES if v != voice])
                voice = f"{voice}+{other}"
            out.append((Utterance("kokoro", voice, text, deliveries.getrandbits(31)), "kokoro"))
    prompts, _ = synth.split_asterisk(synth.asterisk_prompts(), EVAL_SEED)
    for p in prompts[: plan.asterisk_max_train]:
        for _ in range(plan.asterisk_copies):
            out.append(
                (Utterance("asterisk", str(p.path), p.text, rng.getrandbits(31)), "asterisk")
            )
    for _ in range(plan.noise):
        out.append((Utterance("noise", "", "", rng.getrandbits(31)), "noise"))
    if plan.voice_change > 0:
        # Its own random stream: every utterance is otherwise the same as without it.
        pick = random.Random(seed + 99)
        out = [
            (replace(u, voice_change=True), g)
            if u.engine in plan.voice_change_on and pick.random() < plan.voice_change
            else (u, g)
            for u, g in out
        ]
    rng.shuffle(out)
    return out


def plan_eval(plan: DataPlan, gen: SentenceGenerator) -> dict[str, list[tuple[Utterance, str]]]:
    """Evaluation sets by group, the same for every training seed (EVAL_SEED); their texts
    come from other random streams than training's."""
    seed = EVAL_SEED
    rng = random.Random(seed + 1000)
    n = plan.eval_per_voice

    def texts(k: int) -> list[str]:
        return gen.sentences(n, seed + 2000 + k)

    sets: dict[str, list[tuple[Utterance, str]]] = {}
    sets["espeak_heldout"] = [
        (
            Utterance(
                "espeak",
                v,
                t,
                rng.getrandbits(31),
                rng.randint(140, 200),
                rng.randint(35, 65),
                False,
            ),
            v,
        )
        for k, v in enumerate(synth.ESPEAK_HELDOUT_VOICES)
        for t in texts(k)
    ]
    sets["espeak_heldout_noisy"] = [
        (replace(u, seed=u.seed + 1, noisy_eval=True), v) for u, v in sets["espeak_heldout"]
    ]
    sets["flite_heldout"] = [
        (Utterance("flite", v, t, rng.getrandbits(31), augment=False), v)
        for k, v in enumerate(synth.FLITE_HELDOUT_VOICES)
        for t in texts(10 + k)
    ]
    _, held = synth.split_asterisk(synth.asterisk_prompts(), seed)
    sets["asterisk_heldout"] = [
        (Utterance("asterisk", str(p.path), p.text, rng.getrandbits(31), augment=False), "asterisk")
        for p in held[: plan.asterisk_max_eval]
    ]
    train_voices = []
    for t in gen.sentences(plan.eval_train_voices, seed + 3000):
        if rng.random() < 0.8:
            v = synth.espeak_train_voice(rng)
            utt = Utterance(
                "espeak",
                v,
                t,
                rng.getrandbits(31),
                rng.randint(140, 200),
                rng.randint(35, 65),
                False,
            )
        else:
            v = rng.choice(synth.FESTIVAL_TRAIN_VOICES)
            utt = Utterance("festival", v, t, rng.getrandbits(31), augment=False)
        train_voices.append((utt, v))
    sets["train_voices"] = train_voices
    if plan.kokoro:
        # Only for runs that train on Kokoro (others need not install it); its own stream,
        # so the sets above are the same audio with or without it.
        deliveries = random.Random(seed + 1400)
        sets["kokoro_heldout"] = [
            (Utterance("kokoro", v, t, deliveries.getrandbits(31), augment=False), v)
            for k, v in enumerate(synth.KOKORO_HELDOUT_VOICES)
            for t in texts(20 + k)
        ]
    return sets


def alsa_real_set(folder: Path = ALSA_SOUNDS) -> FeatureSet | None:
    """The alsa-utils channel-test recordings as an evaluation set (None when not installed).

    Read as the runtime reads a file: downmixed to mono, resampled to 16 kHz (scoring adds the
    quiet context, as for every set). The transcript is the file name ("Front_Left.wav" ->
    "front left"); Noise.wav is not speech and is skipped.
    """
    wavs = sorted(p for p in folder.glob("*_*.wav")) if folder.is_dir() else []
    if not wavs:
        log.info("%s: no alsa-utils recordings, the alsa_real evaluation set is skipped", folder)
        return None
    t0 = time.monotonic()
    feats: list[np.ndarray] = []
    audio: list[np.ndarray] = []
    items: list[dict[str, str]] = []
    for path in wavs:
        sound = read_audio(path)
        x = sound.samples
        if sound.sample_rate != SAMPLE_RATE:
            x = soxr.resample(x, sound.sample_rate, SAMPLE_RATE, quality="HQ")
        kept = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
        feats.append(compute_fbank(kept.astype(np.float32) / 32768.0).astype(np.float16))
        audio.append(kept)
        text = path.stem.lower().replace("_", " ")
        items.append({"text": text, "engine": "human", "voice": "alsa", "group": "alsa_real"})
    offsets = np.array([0] + [len(f) for f in feats], np.int64).cumsum()
    fs = FeatureSet(np.concatenate(feats), offsets, items, audio, time.monotonic() - t0)
    log.info("alsa_real: %d recordings from %s, %.1f s", len(fs), folder, fs.hours * 3600)
    return fs


def _render_chunk(
    chunk: list[tuple[Utterance, str]],
) -> list[tuple[np.ndarray, np.ndarray | None, dict[str, str]]]:
    """Worker: synthesize (festival batched), augment and featurize a chunk."""
    aug = Augmenter()
    eval_aug = noisy_eval_augmenter()
    out = []
    with tempfile.TemporaryDirectory(prefix="edge-asr-synth-") as d:
        tmp = Path(d)
        audio: dict[int, np.ndarray] = {}
        for voice in {u.voice for u, _ in chunk if u.engine == "festival"}:
            idx = [
                i for i, (u, _) in enumerate(chunk) if u.engine == "festival" and u.voice == voice
            ]
            stretches = [random.Random(chunk[i][0].seed).uniform(0.85, 1.2) for i in idx]
            texts = [chunk[i][0].text for i in idx]
            f0s = [chunk[i][0].f0 for i in idx]
            made = synth.festival_batch(voice, texts, stretches, tmp, f0s)
            for i, x in zip(idx, made, strict=True):
                audio[i] = x
        idx = [i for i, (u, _) in enumerate(chunk) if u.engine == "gnuspeech"]
        if idx:
            made = synth.gnuspeech_batch(
                [chunk[i][0].text for i in idx], [chunk[i][0].seed for i in idx], tmp
            )
            for i, x in zip(idx, made, strict=True):
                audio[i] = x
        for i, (utt, group) in enumerate(chunk):
            x = audio[i] if i in audio else synth.synthesize(utt, tmp)
            rng = np.random.default_rng(utt.seed)
            if utt.noisy_eval:
                x = eval_aug(x, rng)
                kept = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
            elif utt.augment:
                if utt.engine not in ("noise",) and len(x):
                    aug.remember(x)
                x = aug(x, rng, telephone=utt.engine == "asterisk", voice_change=utt.voice_change)
                kept = None
            else:
                x = pad_clean(x, rng) if utt.engine != "asterisk" else x
                kept = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
            feats = compute_fbank(x).astype(np.float16)
            meta = {"text": utt.text, "engine": utt.engine, "voice": utt.voice, "group": group}
            out.append((feats, kept, meta))
    return out


def build(
    utts: list[tuple[Utterance, str]], folder: Path, workers: int, keep_audio: bool
) -> FeatureSet:
    """Render a set in ``workers`` processes (order and result fixed by the seeds) and cache it."""
    if (folder / "DONE").exists():
        fs = FeatureSet.load(folder)
        log.info("%s: cached, %d utterances, %.2f h", folder.name, len(fs), fs.hours)
        return fs
    t0 = time.monotonic()
    chunks = [utts[i : i + CHUNK] for i in range(0, len(utts), CHUNK)]
    feats: list[np.ndarray] = []
    items: list[dict[str, str]] = []
    audio: list[np.ndarray] = []
    ctx = mp.get_context("fork")
    with ctx.Pool(workers) as pool:
        for k, rendered in enumerate(pool.imap(_render_chunk, chunks)):
            for f, a, meta in rendered:
                feats.append(f)
                items.append(meta)
                if keep_audio and a is not None:
                    audio.append(a)
            if (k + 1) % 20 == 0 or k + 1 == len(chunks):
                log.info(
                    "%s: %d/%d utterances (%.0f s)",
                    folder.name,
                    len(items),
                    len(utts),
                    time.monotonic() - t0,
                )
    offsets = np.array([0] + [len(f) for f in feats], np.int64).cumsum()
    fs = FeatureSet(
        np.concatenate(feats),
        offsets,
        items,
        audio if keep_audio else None,
        time.monotonic() - t0,
    )
    fs.save(folder)
    counts = Counter(
        m["group"] if m["engine"] == "asterisk" or not keep_audio else m["voice"] for m in items
    )
    log.info(
        "%s: %d utterances, %.2f h in %.0f s: %s",
        folder.name,
        len(fs),
        fs.hours,
        time.monotonic() - t0,
        dict(counts),
    )
    return fs


def global_cmvn(fs: FeatureSet, chunk: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of every feature bin over a training set.

    Two passes over ``chunk`` frames at a time: a float64 copy of a full run's features (and
    numpy's temporaries for the variance) would need ~12 GB, a chunk needs ~0.7 GB.
    """
    n = len(fs.feats)
    total = np.zeros(fs.feats.shape[1], np.float64)
    for i in range(0, n, chunk):
        total += fs.feats[i : i + chunk].sum(axis=0, dtype=np.float64)
    mean = total / max(n, 1)
    squares = np.zeros_like(mean)
    for i in range(0, n, chunk):
        d = fs.feats[i : i + chunk].astype(np.float64) - mean
        squares += np.einsum("ij,ij->j", d, d)
    std = np.sqrt(np.maximum(squares / max(n, 1), 1e-6))
    return mean.astype(np.float32), std.astype(np.float32)


def plan_summary(utts: list[tuple[Utterance, str]]) -> dict[str, int]:
    return dict(Counter(g for _, g in utts))


def write_wav_examples(fs: FeatureSet, folder: Path, n: int) -> list[tuple[Path, str]]:
    """Write the first ``n`` kept evaluation audios as 16 kHz WAVs for the sherpa-onnx check."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    assert fs.audio is not None
    for i in range(min(n, len(fs.audio))):
        path = folder / f"{i:03d}.wav"
        sf.write(str(path), fs.audio[i], SAMPLE_RATE, subtype="PCM_16")
        out.append((path, fs.items[i]["text"]))
    return out
