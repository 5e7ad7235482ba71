"""Speech sources: espeak-ng, festival, flite and GnuSpeech synthesizers, and the asterisk prompts.

Every function returns mono float32 samples at 16 kHz.
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from edge_asr.asr.features import SAMPLE_RATE
from edge_asr.training.text import normalize

log = logging.getLogger(__name__)

# espeak-ng voices. Held-out ones are never trained on: the whole base voice en-gb-scotland
# and the variants f4, m5, klatt3 and travis (in any base voice).
ESPEAK_TRAIN_BASES = (
    "en-us", "en", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc",
)  # fmt: skip
ESPEAK_TRAIN_VARIANTS = (
    "", "m1", "m2", "m3", "m4", "m6", "m7", "m8", "f1", "f2", "f3", "f5", "klatt", "klatt2",
    "klatt4", "klatt5", "klatt6", "croak", "adam", "Alex", "Alicia", "Andrea", "Andy", "Annie",
    "aunty", "belinda", "benjamin", "boris", "caleb", "david", "ed", "edward", "Gene", "iven",
    "john", "linda", "Lee", "max", "Michael", "Mike", "paul", "pedro", "quincy", "rob",
    "robert", "steph", "steph2", "norbert", "shelby", "victor", "grandma", "grandpa", "anika",
    "zac", "Jacky", "Hugo", "Denis", "michel", "sandro",
)  # fmt: skip
ESPEAK_HELDOUT_VOICES = (
    "en-us+f4", "en-gb-scotland+m5", "en+klatt3", "en-us-nyc+travis", "en-gb-scotland",
)  # fmt: skip
FESTIVAL_TRAIN_VOICES = ("ked_diphone", "cmu_us_slt_arctic_hts")
FLITE_HELDOUT_VOICES = ("kal", "kal16", "awb", "rms", "slt")

ASTERISK_DIR = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
ASTERISK_TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")


@dataclass(frozen=True)
class Utterance:
    """One thing to synthesize (or load): engine, voice, prosody, text, and a seed."""

    engine: str  # espeak | festival | flite | gnuspeech | asterisk | noise
    voice: str  # for asterisk: the prompt's wav path
    text: str
    seed: int
    rate: int = 175  # espeak words per minute
    pitch: int = 50  # espeak 0..99
    augment: bool = True
    noisy_eval: bool = False  # evaluation copy with noise and reverb (audio kept)
    voice_change: bool = False  # training copy made into another speaker (augment.change_voice)
    f0: float = 0.0  # festival diphone voices: mean pitch in Hz (0: the voice's own)


def _to_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    samples = samples.astype(np.float32)
    if rate != SAMPLE_RATE:
        samples = soxr.resample(samples, rate, SAMPLE_RATE).astype(np.float32)
    return samples


def _read_wav(path: Path) -> np.ndarray:
    samples, rate = sf.read(str(path), dtype="float32", always_2d=False)
    return _to_16k(samples, rate)


def _read_and_remove(paths: list[Path]) -> list[np.ndarray]:
    """Samples of a batch synthesizer's output files, which are then deleted."""
    out = [_read_wav(p) for p in paths]
    for p in paths:
        p.unlink(missing_ok=True)
    return out


def espeak(voice: str, text: str, rate: int, pitch: int, tmp: Path) -> np.ndarray:
    out = tmp / "espeak.wav"
    cmd = ["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "-w", str(out), text]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return _read_wav(out)


def flite(voice: str, text: str, tmp: Path) -> np.ndarray:
    out = tmp / "flite.wav"
    subprocess.run(
        ["flite", "-voice", voice, "-t", text, "-o", str(out)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return _read_wav(out)


# A diphone voice's pitch spread, relative to its mean (ked_diphone's own: 15 Hz at 105 Hz).
FESTIVAL_F0_SPREAD = 0.14


def festival_batch(
    voice: str,
    texts: list[str],
    stretches: list[float],
    tmp: Path,
    f0s: list[float] | None = None,
) -> list[np.ndarray]:
    """Synthesize many texts in one festival process (its start-up dominates otherwise).

    ``f0s`` moves a diphone voice's mean pitch (Hz; 0 keeps the voice's own). It sets the
    linear-regression intonation targets, which HTS voices do not use.
    """
    lines = [f"(voice_{voice})", "(set! own_f0 int_lr_params)"]
    paths = []
    for i, (text, stretch) in enumerate(zip(texts, stretches, strict=True)):
        path = tmp / f"fest{i}.wav"
        paths.append(path)
        safe = text.replace('"', "").replace("\\", "")
        f0 = f0s[i] if f0s else 0.0
        # model_f0_*: the statistics of the F0 model the diphone voices share (f2b's), as
        # ked_diphone sets them; only the target changes.
        lines.append(
            "(set! int_lr_params own_f0)"
            if f0 <= 0
            else f"(set! int_lr_params '((target_f0_mean {f0:.1f}) "
            f"(target_f0_std {f0 * FESTIVAL_F0_SPREAD:.1f}) (model_f0_mean 170) (model_f0_std 34)))"
        )
        lines.append(
            f"(Parameter.set 'Duration_Stretch {stretch:.3f})"
            f'(set! u (utt.synth (Utterance Text "{safe}")))'
            f'(utt.save.wave u "{path}" \'riff)'
        )
    script = tmp / "batch.scm"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    subprocess.run(
        ["festival", "--batch", str(script)],
        check=True,
        capture_output=True,
        timeout=60 + 5 * len(texts),
    )
    return _read_and_remove(paths)


# GnuSpeech: an articulatory (tube-model) synthesizer, run by node from its WebAssembly build
# (npm package pinned in gnuspeech/package-lock.json; training only). Each utterance gets its own
# speaker, drawn from its seed: vocal-tract length (its presets: male 17.5, female 15, large
# child 12.5 cm), glottal pitch (semitones; male -12, female 0), breathiness, glottal pulse
# fall time, tempo, and how far its intonation moves (a factor on GnuSpeech's own). GnuSpeech's
# random intonation is off (it is seeded from the clock), so a seed always gives the same audio.
GNUSPEECH_DIR = Path(__file__).parent / "gnuspeech"
GNUSPEECH_SPEAKER = {
    "tract_cm": (13.0, 18.5),
    "pitch_st": (-14.0, 3.0),
    "breathiness": (0.3, 2.5),
    "tn": (20.0, 36.0),
    "tempo": (0.8, 1.25),
    "intonation": (0.5, 1.6),
}


class SynthesizerMissing(RuntimeError):
    """A synthesizer the data plan needs is not installed; the message says how to get it."""


def gnuspeech_speaker(seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    return {k: round(rng.uniform(lo, hi), 3) for k, (lo, hi) in GNUSPEECH_SPEAKER.items()}


def ensure_gnuspeech() -> None:
    """Install the pinned GnuSpeech package next to its script if it is missing."""
    if (GNUSPEECH_DIR / "node_modules" / "@echogarden" / "gnuspeech-wasm").is_dir():
        return
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise SynthesizerMissing(
            "GnuSpeech training data needs Node.js and npm (apt-get install nodejs npm)"
        )
    log.info("installing GnuSpeech (npm ci in %s)", GNUSPEECH_DIR)
    proc = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"],
        cwd=GNUSPEECH_DIR,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SynthesizerMissing(f"npm ci in {GNUSPEECH_DIR} failed: {last}")


def gnuspeech_batch(texts: list[str], seeds: list[int], tmp: Path) -> list[np.ndarray]:
    """Synthesize many texts in one node process, each with the speaker of its seed."""
    ensure_gnuspeech()
    jobs, paths = [], []
    for i, (text, seed) in enumerate(zip(texts, seeds, strict=True)):
        path = tmp / f"gnuspeech{i}.wav"
        paths.append(path)
        jobs.append(json.dumps({"text": text, "out": str(path), **gnuspeech_speaker(seed)}))
    proc = subprocess.run(
        ["node", str(GNUSPEECH_DIR / "synth.mjs")],
        input="\n".join(jobs) + "\n",
        capture_output=True,
        text=True,
        timeout=60 + 5 * len(texts),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"GnuSpeech failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return _read_and_remove(paths)


def synthesize(utt: Utterance, tmp: Path) -> np.ndarray:
    """Samples for one utterance (festival is better batched with ``festival_batch``)."""
    if utt.engine == "espeak":
        return espeak(utt.voice, utt.text, utt.rate, utt.pitch, tmp)
    if utt.engine == "flite":
        return flite(utt.voice, utt.text, tmp)
    if utt.engine == "festival":
        return festival_batch(utt.voice, [utt.text], [1.0], tmp, [utt.f0])[0]
    if utt.engine == "gnuspeech":
        return gnuspeech_batch([utt.text], [utt.seed], tmp)[0]
    if utt.engine == "asterisk":
        return _read_wav(Path(utt.voice))
    if utt.engine == "noise":
        rng = np.random.default_rng(utt.seed)
        return np.zeros(int(SAMPLE_RATE * rng.uniform(0.3, 2.5)), np.float32)
    raise ValueError(f"unknown engine {utt.engine!r}")


@dataclass(frozen=True)
class AsteriskPrompt:
    name: str
    path: Path
    text: str


def asterisk_prompts() -> list[AsteriskPrompt]:
    """Prompts of the real speaker with a normalized transcript; non-speech ones skipped."""
    if not ASTERISK_TRANSCRIPTS.exists() or not ASTERISK_DIR.exists():
        log.warning("asterisk sounds not installed: training without real speech")
        return []
    prompts = []
    with gzip.open(ASTERISK_TRANSCRIPTS, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(";") or ":" not in line:
                continue
            name, raw = line.split(":", 1)
            raw = raw.strip()
            # Bracketed or parenthesized text is not speech ("[beep tone]", "(silence)").
            if not raw or any(c in raw for c in "[]()"):
                continue
            path = ASTERISK_DIR / f"{name.strip()}.wav"
            text = normalize(raw)
            if path.exists() and text:
                prompts.append(AsteriskPrompt(name.strip(), path, text))
    return sorted(prompts, key=lambda p: p.name)


def split_asterisk(
    prompts: list[AsteriskPrompt], seed: int, heldout_fraction: float = 0.2
) -> tuple[list[AsteriskPrompt], list[AsteriskPrompt]]:
    """(train, held-out) split of the prompts, fixed by the seed."""
    order = list(prompts)
    random.Random(seed + 7919).shuffle(order)
    n_held = round(len(order) * heldout_fraction)
    return order[n_held:], order[:n_held]


def espeak_train_voice(rng: random.Random) -> str:
    base = rng.choice(ESPEAK_TRAIN_BASES)
    variant = rng.choice(ESPEAK_TRAIN_VARIANTS)
    return f"{base}+{variant}" if variant else base
