"""Waveform augmentation: voice change, speed, reverb, telephone band, silence padding, noise,
gain."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import soxr

from edge_asr.asr.features import SAMPLE_RATE

NOISE_KINDS = ("white", "pink", "brown", "babble", "hum")


def colored_noise(n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise of a colour: white, pink (1/f), brown (1/f^2) or mains hum."""
    if n <= 0:
        return np.zeros(0, np.float32)
    if kind == "hum":
        t = np.arange(n) / SAMPLE_RATE
        f0 = rng.choice([50.0, 60.0])
        x = sum(
            rng.uniform(0.2, 1) * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6))
            for k in (1, 2, 3)
        )
        x = x + 0.3 * rng.standard_normal(n)
    else:
        white = rng.standard_normal(n)
        if kind == "white":
            x = white
        else:
            spec = np.fft.rfft(white)
            freqs = np.maximum(np.fft.rfftfreq(n, 1 / SAMPLE_RATE), 20.0)
            spec /= np.sqrt(freqs) if kind == "pink" else freqs
            x = np.fft.irfft(spec, n)
    x = np.asarray(x, np.float64)
    return (x / (np.sqrt(np.mean(x**2)) + 1e-9)).astype(np.float32)


def synthetic_rir(rng: np.random.Generator) -> np.ndarray:
    """Room impulse response: direct path plus exponentially decaying noise tail."""
    rt60 = rng.uniform(0.15, 0.8)
    n = int(SAMPLE_RATE * min(rt60, 0.6))
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    pre = int(SAMPLE_RATE * rng.uniform(0.002, 0.01))
    tail[:pre] = 0
    rir = tail * rng.uniform(0.1, 0.6) / (np.sqrt(np.sum(tail**2)) + 1e-9)
    rir[0] = 1.0
    return rir.astype(np.float32)


def _fft_convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    n = len(x) + len(h) - 1
    size = 1 << (n - 1).bit_length()
    y = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)[: len(x)]
    return y.astype(np.float32)


# change_voice's random draws (the model card quotes them): formant ratio, new pitch median
# (Hz), pitch range factor, the chance the median is kept; and where the pitch must stay (Hz).
VOICE_FORMANT_RATIO = (0.84, 1.2)
VOICE_PITCH_HZ = (85.0, 260.0)
VOICE_PITCH_RANGE = (0.7, 1.3)
VOICE_KEEP_PITCH = 0.25
VOICE_PITCH_BOUNDS = (60.0, 450.0)


def change_voice(
    x: np.ndarray,
    rng: np.random.Generator,
    formant_ratio: tuple[float, float] = VOICE_FORMANT_RATIO,
    pitch_hz: tuple[float, float] = VOICE_PITCH_HZ,
    pitch_range: tuple[float, float] = VOICE_PITCH_RANGE,
    keep_pitch: float = VOICE_KEEP_PITCH,
) -> np.ndarray:
    """The utterance as another speaker might say it: Praat's "Change gender" (PSOLA).

    Formants are scaled by a random ratio (vocal-tract length), the pitch median moved to a
    random value (kept with probability ``keep_pitch``) and the pitch range scaled; timing stays.
    A change that would take the pitch out of VOICE_PITCH_BOUNDS keeps the range instead (Praat can
    loop for ever on far too low pitch). Needs praat-parselmouth (the ``[train]`` extra).
    Audio Praat can't analyse (no voiced frames) comes back unchanged.
    """
    import parselmouth
    from parselmouth.praat import call, run

    ratio = float(np.exp(rng.uniform(np.log(formant_ratio[0]), np.log(formant_ratio[1]))))
    median = 0.0 if rng.random() < keep_pitch else float(np.exp(rng.uniform(*np.log(pitch_hz))))
    spread = float(rng.uniform(*pitch_range))
    seed = int(rng.integers(2**31))
    sound = parselmouth.Sound(x.astype(np.float64), sampling_frequency=SAMPLE_RATE)
    with warnings.catch_warnings():  # "no voiced segments found": fine, it stays as it is
        warnings.simplefilter("ignore", parselmouth.PraatWarning)
        f0 = sound.to_pitch(pitch_floor=75.0, pitch_ceiling=600.0).selected_array["frequency"]
        f0 = f0[f0 > 0]
        if len(f0) == 0:
            return x
        if not _pitch_in_bounds(f0, median, spread):
            spread = 1.0
            if not _pitch_in_bounds(f0, median, spread):
                median = 0.0
        # Praat draws random numbers too: seed them from ``rng`` so the result repeats.
        run(f"random_initializeWithSeedUnsafelyButPredictably ({seed})")
        try:
            changed = call(sound, "Change gender", 75, 600, ratio, median, spread, 1.0)
        except parselmouth.PraatError:
            return x
        finally:
            run("random_initializeSafelyAndUnpredictably ()")
    y = np.asarray(changed.values[0], np.float32)
    return y if np.all(np.isfinite(y)) else x


def _pitch_in_bounds(f0: np.ndarray, median: float, spread: float) -> bool:
    """Whether moving the median of ``f0`` to ``median`` (0: kept) and scaling its range by
    ``spread`` keeps nearly all of it within VOICE_PITCH_BOUNDS, whether the range scales in Hz
    or in semitones."""
    lo, hi = VOICE_PITCH_BOUNDS
    old = float(np.median(f0))
    new = median or old
    shifted = f0 * (new / old)
    in_hz = new + (shifted - new) * spread
    in_semitones = new * (shifted / new) ** spread
    low, high = np.percentile(np.concatenate([in_hz, in_semitones]), [1, 99])
    return bool(low >= lo and high <= hi)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if len(x) else 0.0


@dataclass
class Augmenter:
    """Random, seeded waveform augmentation; keeps a few recent utterances for babble."""

    p_speed: float = 0.6
    p_reverb: float = 0.3
    p_telephone: float = 0.15
    p_noise: float = 0.75
    snr_db: tuple[float, float] = (5.0, 30.0)
    gain_db: tuple[float, float] = (-20.0, 6.0)
    pad_s: tuple[float, float] = (0.1, 1.0)
    _babble: list[np.ndarray] = field(default_factory=list)

    def remember(self, speech: np.ndarray) -> None:
        self._babble.append(speech)
        del self._babble[:-20]

    def noise(self, n: int, rng: np.random.Generator) -> np.ndarray:
        kind = str(rng.choice(NOISE_KINDS))
        if kind == "babble" and len(self._babble) >= 3:
            out = np.zeros(n, np.float32)
            for _ in range(int(rng.integers(2, 6))):
                src = self._babble[int(rng.integers(len(self._babble)))]
                src = np.resize(src, n) if len(src) < n else src[:n]
                out += np.roll(src, int(rng.integers(n))) / (_rms(src) + 1e-9)
            return out / (_rms(out) + 1e-9)
        return colored_noise(n, "pink" if kind == "babble" else kind, rng)

    def __call__(
        self,
        x: np.ndarray,
        rng: np.random.Generator,
        telephone: bool = False,
        voice_change: bool = False,
    ) -> np.ndarray:
        """Augmented copy of ``x``; ``telephone`` marks audio already at 8 kHz bandwidth,
        ``voice_change`` makes another speaker of it first (``change_voice``)."""
        x = x.astype(np.float32)
        if voice_change and len(x):
            x = change_voice(x, rng)
        if len(x) and rng.random() < self.p_speed:
            factor = rng.uniform(0.9, 1.1)
            x = soxr.resample(x, SAMPLE_RATE * factor, SAMPLE_RATE).astype(np.float32)
        if len(x) and rng.random() < self.p_reverb:
            x = _fft_convolve(x, synthetic_rir(rng))
        if not telephone and len(x) and rng.random() < self.p_telephone:
            x = soxr.resample(x, SAMPLE_RATE, 8000)
            x = soxr.resample(x, 8000, SAMPLE_RATE)[: len(x) * 2].astype(np.float32)
        peak = float(np.max(np.abs(x))) if len(x) else 0.0
        if peak > 0:
            x = x / peak * 0.5
        speech_rms = _rms(x) if len(x) else 0.05
        # Skewed towards short pads (mean ~0.4 s): long silences cost training time, teach little.
        lo, hi = self.pad_s
        head = int(SAMPLE_RATE * (lo + (hi - lo) * rng.random() ** 2))
        tail = int(SAMPLE_RATE * (lo + (hi - lo) * rng.random() ** 2))
        x = np.concatenate([np.zeros(head, np.float32), x, np.zeros(tail, np.float32)])
        if rng.random() < self.p_noise or speech_rms == 0.0:
            snr = rng.uniform(*self.snr_db)
            level = max(speech_rms, 0.02) * 10 ** (-snr / 20)
            x = x + level * self.noise(len(x), rng)
        else:
            # A trace of noise: digital silence never happens at a microphone.
            x = x + 1e-4 * rng.standard_normal(len(x)).astype(np.float32)
        gain = 10 ** (rng.uniform(*self.gain_db) / 20)
        peak = float(np.max(np.abs(x))) if len(x) else 0.0
        if peak * gain > 0.99:
            gain = 0.99 / peak
        return (x * gain).astype(np.float32)


def pad_clean(x: np.ndarray, rng: np.random.Generator, seconds: float = 0.25) -> np.ndarray:
    """Evaluation audio: the utterance with a little near-silence around it."""
    n = int(SAMPLE_RATE * seconds)
    x = np.concatenate([np.zeros(n, np.float32), x.astype(np.float32), np.zeros(n, np.float32)])
    return x + 1e-4 * rng.standard_normal(len(x)).astype(np.float32)
