"""A live-microphone stand-in: raw PCM written to the daemon's stdin in real time."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time

import numpy as np
from conftest import Daemon

RATE = 16000
CHUNK_S = 0.05


class StdinFeeder:
    """Writes 16 kHz s16le PCM to the daemon's stdin in real time: silence, or queued speech."""

    def __init__(self, daemon: Daemon, speed: float = 1.0, flowing: bool = True) -> None:
        """``speed`` > 1 feeds faster than real time (the stdin source does not mind);
        ``flowing=False`` starts the daemon but writes nothing until ``flow(True)``."""
        self._period = CHUNK_S / speed
        proc = daemon.start(stdin=subprocess.PIPE).proc
        assert proc is not None and proc.stdin is not None
        self._pipe = proc.stdin
        self._queue: list[np.ndarray] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._flowing = threading.Event()
        if flowing:
            self._flowing.set()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def say(self, samples: np.ndarray, silence_after_s: float = 1.2) -> None:
        """Queue speech followed by silence (long enough to end the utterance)."""
        with self._lock:
            self._idle.clear()
            self._queue.append(samples)
            self._queue.append(np.zeros(int(silence_after_s * RATE), dtype=np.float32))

    def wait_said(self, timeout: float = 60.0) -> None:
        assert self._idle.wait(timeout), "feeder did not finish playing in time"

    def flow(self, on: bool) -> None:
        """Start or stop writing (the pipe stays open, as a microphone that went quiet)."""
        if on:
            self._flowing.set()
        else:
            self._flowing.clear()

    def _run(self) -> None:
        chunk = int(CHUNK_S * RATE)
        pending = np.zeros(0, dtype=np.float32)
        next_at = time.monotonic()
        while not self._stop.is_set():
            if not self._flowing.is_set():
                self._flowing.wait(0.1)
                next_at = time.monotonic()
                continue
            if pending.size == 0:
                with self._lock:
                    if self._queue:
                        pending = self._queue.pop(0)
                    else:
                        self._idle.set()
            out, pending = (pending[:chunk], pending[chunk:]) if pending.size else (None, pending)
            if out is None or out.size < chunk:
                pad = np.zeros(chunk - (0 if out is None else out.size), dtype=np.float32)
                out = pad if out is None else np.concatenate([out, pad])
            try:
                self._pipe.write((np.clip(out, -1, 1) * 32767).astype("<i2").tobytes())
                self._pipe.flush()
            except (BrokenPipeError, ValueError):
                return
            next_at += self._period
            time.sleep(max(0.0, next_at - time.monotonic()))

    def close(self) -> None:
        """Stop writing and close the pipe (the daemon sees the end of its input)."""
        self._stop.set()
        self._thread.join(5)
        with contextlib.suppress(BrokenPipeError):
            self._pipe.close()
