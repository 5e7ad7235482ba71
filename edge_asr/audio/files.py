"""Reading audio files of any format soundfile knows, with checks that name the problem."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from edge_asr.errors import AudioError, AudioFormatError, AudioTooLongError

DEFAULT_MAX_DURATION_S = 3600.0
# Telephone audio is 8 kHz; studio audio up to 384 kHz. Outside that a header is broken.
MIN_SAMPLE_RATE = 4000
MAX_SAMPLE_RATE = 384000


@dataclass(frozen=True)
class Audio:
    """Mono float32 samples in [-1, 1] and their rate."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def to_mono(data: np.ndarray) -> np.ndarray:
    """Average channels of a (frames, channels) array into one float32 channel."""
    if data.ndim == 1:
        return data.astype(np.float32, copy=False)
    return data.mean(axis=1, dtype=np.float32)


def read_audio(path: Path | str, max_duration_s: float = DEFAULT_MAX_DURATION_S) -> Audio:
    """Read an audio file as mono float32; AudioError says what is wrong with a bad one."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory")
    return _decode(str(path), lambda: str(path), max_duration_s)


def read_audio_bytes(
    data: bytes, max_duration_s: float = DEFAULT_MAX_DURATION_S, name: str = "audio"
) -> Audio:
    """Decode audio held in memory (an upload), with the same checks as ``read_audio``.

    ``name`` starts each error message, e.g. the uploaded file's name.
    """
    if not data:
        raise AudioError(f"{name}: contains no audio (empty body)")
    return _decode(name, lambda: io.BytesIO(data), max_duration_s)


def _decode(name: str, open_source: Any, max_duration_s: float) -> Audio:
    """Check what libsndfile says about the source, then decode it; ``open_source()`` gives a
    fresh path or file object for each of the two reads."""
    try:
        info = sf.info(open_source())
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise AudioFormatError(f"{name}: not a readable audio file ({_reason(e)})") from None
    if info.channels < 1:
        raise AudioError(f"{name}: has no audio channels")
    if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"{name}: sample rate {info.samplerate} Hz is outside "
            f"{MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz (broken header?)"
        )
    if info.frames <= 0:
        raise AudioError(f"{name}: contains no audio")
    duration = info.frames / info.samplerate
    if duration > max_duration_s:
        raise AudioTooLongError(
            f"{name}: {duration:.1f} s long, more than the {max_duration_s:g} s limit"
        )
    try:
        data, rate = sf.read(open_source(), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as e:
        raise AudioFormatError(f"{name}: cannot decode audio ({_reason(e)})") from None
    if data.size == 0:
        raise AudioError(f"{name}: contains no audio")
    if not np.isfinite(data).all():
        raise AudioError(f"{name}: contains NaN or infinite samples")
    # Float files may hold samples beyond full scale; the model expects [-1, 1].
    return Audio(np.clip(to_mono(data), -1.0, 1.0), int(rate))


def _reason(error: Exception) -> str:
    """libsndfile's complaint without the path it repeats."""
    lines = str(error).strip().splitlines()
    text = lines[-1] if lines else type(error).__name__
    return re.sub(r"^Error opening .*?: ", "", text).rstrip(".")
