"""Log-mel filterbank features, computed exactly as sherpa-onnx does for CTC models.

Training (``edge_asr.training``) and run time share this module, so a model never sees
features at run time that differ from the ones it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import kaldi_native_fbank as knf
import numpy as np

SAMPLE_RATE = 16000
FEATURE_DIM = 80


@dataclass(frozen=True)
class FbankConfig:
    """Kaldi fbank settings; the defaults match sherpa-onnx's offline recognizer."""

    sample_rate: int = SAMPLE_RATE
    num_bins: int = FEATURE_DIM
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    low_freq: float = 20.0
    high_freq: float = -400.0  # relative to Nyquist: 7600 Hz at 16 kHz
    dither: float = 0.0

    def options(self) -> knf.FbankOptions:
        # kaldi-native-fbank's own defaults differ from sherpa-onnx's: set every option.
        opts = knf.FbankOptions()
        opts.frame_opts.samp_freq = float(self.sample_rate)
        opts.frame_opts.frame_length_ms = self.frame_length_ms
        opts.frame_opts.frame_shift_ms = self.frame_shift_ms
        opts.frame_opts.dither = self.dither
        opts.frame_opts.snip_edges = False
        opts.frame_opts.remove_dc_offset = True
        opts.frame_opts.preemph_coeff = 0.97
        opts.frame_opts.window_type = "povey"
        opts.mel_opts.num_bins = self.num_bins
        opts.mel_opts.low_freq = self.low_freq
        opts.mel_opts.high_freq = self.high_freq
        opts.energy_floor = 0.0
        opts.use_energy = False
        opts.use_log_fbank = True
        opts.use_power = True
        return opts


DEFAULT_FBANK = FbankConfig()


def compute_fbank(samples: np.ndarray, config: FbankConfig = DEFAULT_FBANK) -> np.ndarray:
    """Return (frames, num_bins) float32 log-mel features of mono float samples in [-1, 1].

    ``samples`` must already be at ``config.sample_rate``.
    """
    fbank = knf.OnlineFbank(config.options())
    fbank.accept_waveform(float(config.sample_rate), np.ascontiguousarray(samples, np.float32))
    fbank.input_finished()
    n = fbank.num_frames_ready
    if n == 0:
        return np.zeros((0, config.num_bins), dtype=np.float32)
    return np.stack([fbank.get_frame(i) for i in range(n)]).astype(np.float32, copy=False)


CONTEXT_S = 0.25  # quiet the models heard around every training and evaluation utterance
QUIET_FRACTION = 0.05  # of the peak: quieter samples count as silence
_PAD_NOISE = 1e-4  # -80 dBFS at least: no microphone is digitally silent, nor was training audio


def with_quiet_context(samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
    """``samples`` with near-silence added where fewer than ``CONTEXT_S`` seconds of quiet
    come before the first or after the last loud sample; also the samples added in front.

    A file cut tight around the words (speech from its first millisecond) otherwise loses its
    first and last sounds to the model's edges. The padding is noise at the level of the audio's
    own quietest 10 ms (so a noisy room stays noisy), the same every time (seeded), so
    transcripts are repeatable. Audio with quiet ends is returned unchanged.
    """
    if samples.size == 0:
        return samples, 0
    magnitude = np.abs(samples)
    loud = np.flatnonzero(magnitude > max(float(magnitude.max()) * QUIET_FRACTION, 1e-3))
    if loud.size == 0:
        return samples, 0
    want = int(CONTEXT_S * sample_rate)
    head = max(0, want - int(loud[0]))
    tail = max(0, want - (samples.size - 1 - int(loud[-1])))
    if head == 0 and tail == 0:
        return samples, 0
    level = max(_noise_floor(samples, sample_rate), _PAD_NOISE)
    noise = (level * np.random.default_rng(0).standard_normal(head + tail)).astype(np.float32)
    return np.concatenate([noise[:head], samples.astype(np.float32), noise[head:]]), head


def _noise_floor(samples: np.ndarray, sample_rate: int) -> float:
    """RMS of the quietest 10 ms of ``samples``: the room's noise when speech fills the rest."""
    n = max(1, sample_rate // 100)
    if samples.size < n:
        return 0.0
    frames = samples[: samples.size // n * n].reshape(-1, n).astype(np.float64)
    return float(np.sqrt(np.mean(frames**2, axis=1)).min())
