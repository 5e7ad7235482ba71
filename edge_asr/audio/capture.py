"""Audio sources: a sound device, a file, or raw PCM on stdin.

Each yields ``AudioBlock``s of float32 mono samples at 16 kHz until its input ends or
``stop()`` is called. Devices are opened at 16 kHz where they take it (a sound server or the
device itself converts), else at their native rate and resampled here with soxr; the
sounddevice callback only hands blocks over, never works or blocks.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import sys
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np
import soxr

from edge_asr.errors import AudioError

log = logging.getLogger(__name__)

TARGET_RATE = 16000
_GET_TIMEOUT_S = 0.25
# Blocks come every ~64 ms: a second without one means the device stalled or went away.
_STALL_S = 1.0
# A freshly opened stream (PulseAudio especially) may take a few seconds to deliver at all.
_FIRST_BLOCK_S = 5.0
# Capped at 4 s so a device that comes back is capturing again within 5 s.
_REOPEN_DELAYS_S = (0.5, 1.0, 2.0, 4.0)
# How often a missing device (not plugged in at start) is looked for.
_DEVICE_POLL_S = 4.0


@dataclass(frozen=True)
class AudioBlock:
    """Consecutive samples and the wall-clock time (epoch seconds) of the block's end."""

    samples: np.ndarray  # float32, mono, TARGET_RATE
    end_time: float


class AudioSource(Protocol):
    """What the daemon reads audio from."""

    @property
    def overruns(self) -> int:
        """Blocks lost because the reader fell behind (0 for sources that wait)."""

    @property
    def input_problem(self) -> str | None:
        """Why no audio can arrive while the source waits for its input to come back."""

    def blocks(self) -> Generator[AudioBlock, None, None]:
        """Blocks until the input ends or ``stop()`` is called."""

    def stop(self) -> None:
        """Make ``blocks()`` end soon; safe from any thread or a signal handler."""


class _StreamSource:
    """A source that waits for its input (nothing is lost) and has no device to lose."""

    def __init__(self) -> None:
        self._stopped = threading.Event()

    @property
    def overruns(self) -> int:
        return 0

    @property
    def input_problem(self) -> str | None:
        return None

    def stop(self) -> None:
        self._stopped.set()


class _Resampler:
    """Stateful resampling of consecutive chunks to TARGET_RATE (a no-op at 16 kHz)."""

    def __init__(self, in_rate: int) -> None:
        self._stream = (
            soxr.ResampleStream(in_rate, TARGET_RATE, 1, dtype="float32", quality="HQ")
            if in_rate != TARGET_RATE
            else None
        )

    def __call__(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        if self._stream is None:
            return samples
        return self._stream.resample_chunk(samples, last=last)


def _mono(data: np.ndarray) -> np.ndarray:
    if data.ndim == 1:
        return data.astype(np.float32, copy=False)
    if data.shape[1] == 1:
        return data[:, 0].astype(np.float32, copy=False)
    return data.mean(axis=1, dtype=np.float32)


# --- sound devices -------------------------------------------------------------------


@dataclass(frozen=True)
class InputDevice:
    """An input device as PortAudio reports it."""

    index: int
    name: str
    host_api: str
    channels: int
    default_rate: int
    is_default: bool


def list_input_devices() -> list[InputDevice]:
    """Every device with input channels; empty if there are none (or no audio system)."""
    import sounddevice as sd

    try:
        devices = sd.query_devices()
        apis = sd.query_hostapis()
        default_in = sd.default.device[0]
    except sd.PortAudioError as err:
        raise AudioError(f"cannot list audio devices: {err}") from None
    found = []
    for info in devices:
        if info["max_input_channels"] <= 0:
            continue
        found.append(
            InputDevice(
                index=int(info["index"]),
                name=str(info["name"]),
                host_api=str(apis[info["hostapi"]]["name"]),
                channels=int(info["max_input_channels"]),
                default_rate=int(info["default_samplerate"]),
                is_default=int(info["index"]) == default_in,
            )
        )
    return found


def capture_rate_for(device: InputDevice, asked: int | None, takes: Callable[[int], bool]) -> int:
    """The rate to open ``device`` at: ``asked`` if set, else 16 kHz if the device ``takes`` it,
    else its native rate.

    At 16 kHz nothing is resampled here: soxr's filter holds back ~22 ms of audio, which the
    end of every utterance waits for. Sound servers (PulseAudio, PipeWire) convert with a good
    filter, and many USB microphones deliver 16 kHz themselves.
    """
    if asked:
        return asked
    if device.default_rate != TARGET_RATE and takes(TARGET_RATE):
        return TARGET_RATE
    return device.default_rate


def describe_devices(devices: list[InputDevice]) -> str:
    """Lines like ``* 1  default (ALSA)  32 ch  44100 Hz``; '*' marks the default."""
    if not devices:
        return "  (no input devices found)"
    return "  index  name (host API)  channels  native rate   (* = default)\n" + "\n".join(
        f"{'*' if d.is_default else ' '} {d.index:>2}  {d.name} ({d.host_api})  "
        f"{d.channels} ch  {d.default_rate} Hz"
        for d in devices
    )


def _no_device_help(problem: str, devices: list[InputDevice]) -> str:
    return (
        f"{problem}\nInput devices:\n{describe_devices(devices)}\n"
        "Choose one with --device INDEX|NAME, or read audio from a file instead:\n"
        "  edge-asr run --source file:speech.wav\n"
        "or pipe raw 16 kHz 16-bit mono PCM: ... | edge-asr run --source stdin"
    )


def resolve_input_device(spec: str | int | None) -> InputDevice:
    """The device an ``audio.device`` setting names: index, (part of) a name, or the default."""
    devices = list_input_devices()
    if spec is None or spec == "":
        default = next((d for d in devices if d.is_default), None)
        if default is None:
            default = devices[0] if devices else None
        if default is None:
            raise AudioError(_no_device_help("No audio input device found.", devices))
        return default
    if isinstance(spec, int) or spec.strip().isdigit():
        index = int(spec)
        match = next((d for d in devices if d.index == index), None)
        if match is None:
            raise AudioError(_no_device_help(f"No input device with index {index}.", devices))
        return match
    wanted = spec.lower()
    exact = [d for d in devices if d.name.lower() == wanted]
    partial = [d for d in devices if wanted in d.name.lower()]
    matches = exact or partial
    if not matches:
        raise AudioError(_no_device_help(f"No input device named like {spec!r}.", devices))
    if len(matches) > 1:
        log.info("device %r matches %d devices; using %s", spec, len(matches), matches[0].name)
    return matches[0]


class MicSource:
    """Captures from a sound device; reopens it if it goes away.

    A device that is missing or cannot be opened at start is an error, unless
    ``wait_for_device``: then the source looks for it every few seconds (a service whose USB
    microphone is plugged in later). Meanwhile ``input_problem`` says what it waits for.
    """

    def __init__(
        self,
        device: str | int | None = None,
        capture_rate: int | None = None,
        channels: int = 1,
        block_ms: int = 64,
        queue_blocks: int = 64,
        wait_for_device: bool = False,
    ) -> None:
        self._spec = device
        self._wait = wait_for_device
        self._problem: str | None = None
        self._device: InputDevice | None = None
        try:
            self._device = resolve_input_device(device)
        except AudioError as err:
            if not wait_for_device:
                raise
            self._problem = str(err).splitlines()[0]
            log.warning("%s\nWaiting for it (looking every %.0f s).", err, _DEVICE_POLL_S)
        self._capture_rate = capture_rate
        self._rate = 0  # set when the device is opened
        self._block_ms = block_ms
        self._channels = channels
        self._queue: queue.Queue[tuple[np.ndarray, float]] = queue.Queue(maxsize=queue_blocks)
        self._stopped = threading.Event()
        self._lost = threading.Event()
        self._overruns = 0  # written by the audio callback only
        self._overflows = 0

    @property
    def device(self) -> InputDevice | None:
        return self._device

    @property
    def input_problem(self) -> str | None:
        return self._problem

    @property
    def overruns(self) -> int:
        return self._overruns + self._overflows

    def stop(self) -> None:
        self._stopped.set()

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        # Audio thread: copy and hand over, nothing else (no logging, no blocking).
        if status.input_overflow:
            self._overflows += 1
        try:
            self._queue.put_nowait((indata.copy(), time.time()))
        except queue.Full:
            self._overruns += 1

    def _open(self, device: InputDevice) -> Any:
        import sounddevice as sd

        def takes(rate: int) -> bool:
            try:
                sd.check_input_settings(
                    device=device.index, channels=self._channels, dtype="float32", samplerate=rate
                )
            except (sd.PortAudioError, ValueError):
                return False
            return True

        self._rate = capture_rate_for(device, self._capture_rate, takes)
        stream = sd.InputStream(
            device=device.index,
            samplerate=self._rate,
            channels=self._channels,
            dtype="float32",
            blocksize=max(1, self._rate * self._block_ms // 1000),
            callback=self._callback,
            finished_callback=self._lost.set,
        )
        stream.start()
        return stream

    def blocks(self) -> Generator[AudioBlock, None, None]:
        import sounddevice as sd

        attempt = 1 if self._wait else 0
        while not self._stopped.is_set():
            device = self._device
            if device is None:  # not plugged in at start
                if not self._stopped.wait(_DEVICE_POLL_S):
                    self._find_again()
                continue
            self._lost.clear()
            try:
                stream = self._open(device)
            except sd.PortAudioError as err:
                problem = (
                    f"cannot open input device {device.index} ({device.name}) "
                    f"at {self._rate} Hz: {err}"
                )
                if attempt == 0 and not self._stopped.is_set():
                    # The first open failing is a setup problem: say so and stop.
                    raise AudioError(problem) from None
                self._problem = problem
                delay = _REOPEN_DELAYS_S[min(attempt - 1, len(_REOPEN_DELAYS_S) - 1)]
                # Said at first, then about once a minute: a device can stay away for days.
                level = logging.WARNING if attempt <= 4 or attempt % 15 == 0 else logging.DEBUG
                log.log(level, "input device still unavailable (%s); retry in %.1f s", err, delay)
                attempt += 1
                self._stopped.wait(delay)
                self._find_again()
                continue
            log.info(
                "capturing from device %d (%s) at %d Hz, %d channel(s)",
                device.index,
                device.name,
                self._rate,
                self._channels,
            )
            attempt = 1
            try:
                yield from self._read(stream, device)
            finally:
                _close(stream)
            if not self._stopped.is_set():
                log.warning("input device %s stopped delivering audio; reopening", device.name)
                self._problem = f"input device {device.name} stopped delivering audio"
                self._stopped.wait(_REOPEN_DELAYS_S[0])

    def _find_again(self) -> None:
        """Look for the device anew: a re-plugged USB microphone gets a new index, and
        PortAudio only sees devices that appeared after it is re-initialized."""
        import sounddevice as sd

        known = self._device
        try:
            sd._terminate()
            sd._initialize()
            # A device first chosen by index or as the default is followed by its name.
            by_name = known is not None and (self._spec is None or isinstance(self._spec, int))
            found = resolve_input_device(known.name if by_name and known else self._spec)
        except (AudioError, sd.PortAudioError, OSError) as err:
            log.debug("looking for the input device again: %s", str(err).splitlines()[0])
            return
        if known is None:
            log.info("input device %s (index %d) is there now", found.name, found.index)
        elif found.index != known.index:
            log.info("input device %s is now index %d", found.name, found.index)
        self._device = found

    def _read(self, stream: Any, device: InputDevice) -> Generator[AudioBlock, None, None]:
        resample = _Resampler(self._rate)
        last_block = last_poll = time.monotonic()
        allowed = _FIRST_BLOCK_S
        while not self._stopped.is_set():
            try:
                data, captured = self._queue.get(timeout=_GET_TIMEOUT_S)
            except queue.Empty:
                now = time.monotonic()
                if now - last_poll > _STALL_S:  # we were suspended (SIGSTOP, load), not the device
                    last_block = now
                last_poll = now
                if self._lost.is_set() or not stream.active:
                    return
                if time.monotonic() - last_block > allowed:
                    log.warning("no audio from %s for %.0f s", device.name, allowed)
                    return
                continue
            last_block = time.monotonic()
            allowed = _STALL_S
            self._problem = None
            samples = resample(_mono(data))
            if samples.size:
                yield AudioBlock(samples, captured)


def _close(stream: Any) -> None:
    # Closing can hang when the audio server vanished; never let it block shutdown.
    closer = threading.Thread(target=_close_quietly, args=(stream,), daemon=True)
    closer.start()
    closer.join(timeout=2.0)
    if closer.is_alive():
        log.warning("closing the input stream timed out; continuing")


def _close_quietly(stream: Any) -> None:
    try:
        stream.abort()
        stream.close()
    except Exception as err:  # any PortAudio error here is harmless
        log.debug("closing input stream: %s", err)


# --- files ----------------------------------------------------------------------------


class FileSource(_StreamSource):
    """Reads an audio file block by block, in real time or as fast as possible."""

    def __init__(self, path: Path, realtime: bool = True, block_ms: int = 64) -> None:
        import soundfile as sf

        super().__init__()
        self._path = path
        self._realtime = realtime
        self._block_ms = block_ms
        if not path.is_file():
            raise AudioError(f"{path}: no such file")
        try:
            info = sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError, OSError) as err:
            raise AudioError(f"{path}: not a readable audio file ({err})") from None
        if info.frames <= 0 or info.samplerate <= 0:
            raise AudioError(f"{path}: contains no audio")
        self._rate = int(info.samplerate)

    def blocks(self) -> Generator[AudioBlock, None, None]:
        import soundfile as sf

        resample = _Resampler(self._rate)
        frames = max(1, self._rate * self._block_ms // 1000)
        start = time.time()
        delivered = 0  # output samples so far
        log.info(
            "reading %s (%d Hz, %s)",
            self._path,
            self._rate,
            "real time" if self._realtime else "fast",
        )
        with sf.SoundFile(str(self._path)) as f:
            while not self._stopped.is_set():
                data = f.read(frames, dtype="float32", always_2d=True)
                last = len(data) < frames
                samples = resample(_mono(data), last=last)
                if samples.size:
                    delivered += samples.size
                    end_time = start + delivered / TARGET_RATE
                    if self._realtime:
                        self._stopped.wait(max(0.0, end_time - time.time()))
                    yield AudioBlock(samples, end_time)
                if last:
                    return


# --- stdin ----------------------------------------------------------------------------


class StdinSource(_StreamSource):
    """Raw signed 16-bit little-endian mono PCM from a pipe; ends at end of input."""

    def __init__(
        self, sample_rate: int = TARGET_RATE, block_ms: int = 64, stream: BinaryIO | None = None
    ) -> None:
        self._rate = sample_rate
        self._stream = stream if stream is not None else sys.stdin.buffer
        super().__init__()
        self._block_bytes = max(2, sample_rate * block_ms // 1000 * 2)

    def blocks(self) -> Generator[AudioBlock, None, None]:
        resample = _Resampler(self._rate)
        fd = self._stream.fileno()
        pending = b""
        log.info("reading raw 16-bit PCM at %d Hz from stdin", self._rate)
        while not self._stopped.is_set():
            # select() with a timeout, so a stop request is noticed while the pipe is quiet.
            ready, _, _ = select.select([fd], [], [], _GET_TIMEOUT_S)
            if not ready:
                continue
            chunk = os.read(fd, self._block_bytes)
            last = not chunk
            pending += chunk
            usable = len(pending) - len(pending) % 2
            pcm = np.frombuffer(pending[:usable], dtype="<i2")
            pending = pending[usable:]
            samples = resample(pcm.astype(np.float32) / 32768.0, last=last)
            if samples.size:
                yield AudioBlock(samples, time.time())
            if last:
                return


def open_source(
    source: str,
    *,
    device: str | int | None = None,
    capture_rate: int | None = None,
    channels: int = 1,
    block_ms: int = 64,
    queue_blocks: int = 64,
    realtime: bool = True,
    stdin_rate: int = TARGET_RATE,
    wait_for_device: bool = False,
) -> AudioSource:
    """The source an ``audio.source`` setting names: ``mic``, ``file:PATH`` or ``stdin``."""
    if source == "mic":
        return MicSource(device, capture_rate, channels, block_ms, queue_blocks, wait_for_device)
    if source == "stdin":
        return StdinSource(stdin_rate, block_ms)
    if source.startswith("file:"):
        return FileSource(Path(source.removeprefix("file:")).expanduser(), realtime, block_ms)
    raise AudioError(f"unknown audio source {source!r}; use mic, stdin or file:PATH")
