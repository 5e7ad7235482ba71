"""File transcription, side by side: edge-asr vs sherpa-onnx vs the floor vs pocketsphinx.

All engines get the same decoded 16 kHz samples in memory (file reading is not timed) and
run single-threaded. Rounds are interleaved (engine A, B, C, A, B, C, ...) and each engine's
best round counts, so a noisy neighbour hurts all engines alike.

The utterances are synthesized by this script with voices the built-in model never trained
on (held-out espeak-ng variants and the whole flite engine), so the WER column means
something.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from edge_asr.asr.bundle import BUILTIN_MODEL_DIR
from edge_asr.asr.features import compute_fbank, with_quiet_context
from edge_asr.asr.scoring import word_errors

PHRASES = [
    "turn on the kitchen light",
    "turn off the bedroom lights",
    "set the thermostat to twenty one degrees",
    "set a timer for five minutes",
    "open the garage door",
    "close the living room curtains",
    "what is the weather",
    "what time is it",
    "play music in the office",
    "dim the hallway lights to thirty percent",
    "lock the front door",
    "turn the volume down",
    "stop the alarm",
    "switch on the fan in the basement",
    "lower the blinds in the bathroom",
    "cancel the timer",
]
ESPEAK_VOICES = ["en-us+f4", "en-gb-scotland+m5", "en+klatt3"]
FLITE_VOICES = ["kal", "awb", "slt"]

EXTRA_PRONUNCIATIONS = [("unmute", "AH N M Y UW T")]

Transcriber = Callable[[np.ndarray], str]


@dataclass(frozen=True)
class Clip:
    text: str
    voice: str
    samples: np.ndarray  # float32 mono 16 kHz

    @property
    def duration_s(self) -> float:
        return len(self.samples) / 16000


def _to_16k(src: Path, dst: Path) -> None:
    subprocess.run(
        ["sox", "-q", str(src), "-r", "16000", "-c", "1", "-b", "16", str(dst)],
        check=True,
        timeout=60,
    )


def make_clips(cache: Path) -> list[Clip]:
    """Synthesize (once; cached) every phrase in every held-out voice."""
    cache.mkdir(parents=True, exist_ok=True)
    clips = []
    voices = [("espeak", v) for v in ESPEAK_VOICES]
    if shutil.which("flite"):
        voices += [("flite", v) for v in FLITE_VOICES]
    for engine, voice in voices:
        for i, text in enumerate(PHRASES):
            path = cache / f"{engine}-{voice.replace('+', '_')}-{i:02d}.wav"
            if not path.exists():
                with tempfile.TemporaryDirectory() as tmp:
                    raw = Path(tmp) / "raw.wav"
                    if engine == "espeak":
                        cmd = ["espeak-ng", "-v", voice, "-w", str(raw), text]
                    else:
                        cmd = ["flite", "-voice", voice, "-t", text, "-o", str(raw)]
                    subprocess.run(cmd, check=True, timeout=60, capture_output=True)
                    _to_16k(raw, path)
            samples, _ = sf.read(str(path), dtype="float32")
            clips.append(Clip(text, f"{engine}:{voice}", samples))
    return clips


def edge_asr_engine(decoding: str, model_dir: Path | None = None) -> Transcriber:
    """edge-asr's recognizer on the built-in model, or on the bundle in ``model_dir``."""
    from edge_asr.asr.recognizer import Recognizer

    recognizer = Recognizer.load(model_dir, decoding=decoding)
    return lambda samples: recognizer.transcribe(samples, 16000).text


def floor_engine() -> Transcriber:
    """The least work that gives a transcript: fbank, one ORT run, argmax, collapse; with the
    quiet context edge-asr adds (``with_quiet_context``), so both do the same work."""
    import onnxruntime as ort

    from edge_asr.asr.tokens import TokenTable

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(BUILTIN_MODEL_DIR / "model.int8.onnx"), options, providers=["CPUExecutionProvider"]
    )
    table = TokenTable.from_file(BUILTIN_MODEL_DIR / "tokens.txt")
    names = [i.name for i in session.get_inputs()]

    def run(samples: np.ndarray) -> str:
        feats = compute_fbank(with_quiet_context(samples, 16000)[0])
        out = session.run(None, {names[0]: feats[None], names[1]: np.array([len(feats)])})
        best = out[0][0].argmax(axis=1)
        ids = [int(t) for i, t in enumerate(best) if t != 0 and (i == 0 or best[i - 1] != t)]
        return table.decode(ids)

    return run


def sherpa_engine(context: bool = False) -> Transcriber:
    """sherpa-onnx on the same bundle, greedy; ``context``: given the samples with the quiet
    context edge-asr adds (sherpa-onnx adds none), so it sees what edge-asr's model sees."""
    import sherpa_onnx

    recognizer = sherpa_onnx.OfflineRecognizer.from_zipformer_ctc(
        model=str(BUILTIN_MODEL_DIR / "model.int8.onnx"),
        tokens=str(BUILTIN_MODEL_DIR / "tokens.txt"),
        num_threads=1,
        sample_rate=16000,
        feature_dim=80,
        decoding_method="greedy_search",
    )

    def run(samples: np.ndarray) -> str:
        if context:
            samples = with_quiet_context(samples, 16000)[0]
        stream = recognizer.create_stream()
        stream.accept_waveform(16000, samples)
        recognizer.decode_stream(stream)
        return " ".join(stream.result.text.split())

    return run


def pocketsphinx_engine(words: list[str]) -> Transcriber:
    """pocketsphinx's bundled en-us model with a JSGF grammar of 1..8 vocabulary words."""
    from pocketsphinx import Decoder, get_model_path

    folder = Path(tempfile.mkdtemp())
    grammar = folder / "commands.gram"
    # cmudict lacks a few of our words; give them pronunciations of their parts.
    dictionary = folder / "commands.dict"
    base = Path(get_model_path()) / "en-us" / "cmudict-en-us.dict"
    dictionary.write_text(base.read_text() + "".join(f"{w} {p}\n" for w, p in EXTRA_PRONUNCIATIONS))
    word_rule = " | ".join(sorted(words))
    optional = " ".join(["[<word>]"] * 7)
    grammar.write_text(
        "#JSGF V1.0;\ngrammar commands;\n"
        f"<word> = ({word_rule});\npublic <command> = <word> {optional};\n"
    )
    # bestpath=False: its bestpath step takes tens of seconds with a bounded grammar.
    decoder = Decoder(
        samprate=16000,
        jsgf=str(grammar),
        dict=str(dictionary),
        bestpath=False,
        loglevel="FATAL",
    )

    def run(samples: np.ndarray) -> str:
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return hyp.hypstr if hyp is not None else ""

    return run


@dataclass
class EngineResult:
    name: str
    wer: float
    seconds: float  # best round
    audio_s: float
    errors_by_voice: dict[str, float]

    @property
    def rtf(self) -> float:
        return self.seconds / self.audio_s


def run_files(
    clips: list[Clip], engines: dict[str, Transcriber], rounds: int
) -> list[EngineResult]:
    best = {name: float("inf") for name in engines}
    texts: dict[str, list[str]] = {}
    for engine in engines.values():
        engine(clips[0].samples)  # warm up
    for _ in range(rounds):
        for name, engine in engines.items():
            out = []
            start = time.perf_counter()
            for clip in clips:
                out.append(engine(clip.samples))
            best[name] = min(best[name], time.perf_counter() - start)
            texts[name] = out
    audio = sum(c.duration_s for c in clips)
    results = []
    for name in engines:
        errors = words = 0
        by_voice: dict[str, list[int]] = {}
        for clip, hyp in zip(clips, texts[name], strict=True):
            e, n = word_errors(clip.text, hyp), len(clip.text.split())
            errors += e
            words += n
            group = clip.voice.split(":")[0]
            acc = by_voice.setdefault(group, [0, 0])
            acc[0] += e
            acc[1] += n
        results.append(
            EngineResult(
                name,
                errors / words,
                best[name],
                audio,
                {g: e / n for g, (e, n) in by_voice.items()},
            )
        )
    return results
