"""The daemon on the real path: latency from the end of speech to an MQTT subscriber, and the
daemon's footprint (start to READY, idle CPU, RSS).

Speech is played with ``paplay`` into a private PulseAudio null sink whose monitor is the
daemon's microphone; ``edge-asr run`` runs as a subprocess publishing to a mosquitto on a free
port; a subscriber in this process stamps each final transcript when it arrives.

The end of speech is measured, not guessed: a recorder in this process listens to the same
virtual microphone and stamps the last sample of speech (above -50 dBFS; the clips are padded
with digital silence) when it reaches a capture client, just as the daemon's own capture sees
it. ``paplay`` returning is not used: it returns ~50 ms after that moment.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from benchmarks.files import Clip
from benchmarks.rig import Broker, Pulse, RigError, free_port, running_pulse, stop_process
from edge_asr.asr.scoring import word_errors
from edge_asr.settings import VadSettings

ROOT = Path(__file__).resolve().parent.parent
RATE = 16000
SPEECH_LEVEL = 10 ** (-50 / 20)  # a sample above this is speech (the padding is digital zero)
LEAD_S, TAIL_S, GAP_S = 0.3, 0.1, 0.4
VAD_FRAME_MS = 512 * 1000 / RATE  # the endpointer decides per 32 ms frame


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q))


# --- the parts ------------------------------------------------------------------------


class NotifySocket:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET.

    Like systemd it reads every message as it comes: a full socket buffer would block the
    daemon's next notify.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.2)
        self._ready_at: float | None = None
        self._ready = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, name="notify-socket", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self._sock.recv(4096).decode(errors="replace")
            except TimeoutError:
                continue
            except OSError:
                return
            if "READY=1" in data.splitlines() and not self._ready.is_set():
                self._ready_at = time.monotonic()
                self._ready.set()

    def wait_ready(self, timeout: float) -> float | None:
        """time.monotonic() when READY=1 arrived, or None after ``timeout`` seconds."""
        self._ready.wait(timeout)
        return self._ready_at

    def close(self) -> None:
        self._closed.set()
        self._thread.join(2)
        self._sock.close()
        self.path.unlink(missing_ok=True)


@dataclass
class DaemonProcess:
    """``python -m edge_asr run`` on the virtual microphone, publishing to the broker."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(
        cls,
        broker: Broker,
        pulse: Pulse,
        folder: Path,
        notify: Path,
        settings: Sequence[str] = (),
    ) -> DaemonProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_ASR_", "PULSE_"))}
        env.update(pulse.env)
        env.update(
            {
                "PYTHONPATH": str(ROOT),
                "NOTIFY_SOCKET": str(notify),
                "EDGE_ASR_STATE_DIR": str(folder / "state"),
                "EDGE_ASR_MQTT__HOST": broker.host,
                "EDGE_ASR_MQTT__PORT": str(broker.port),
            }
        )
        env.pop("WATCHDOG_USEC", None)
        log_path = folder / "daemon.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "edge_asr", "run", "--site-id", "bench"]
                + [arg for setting in settings for arg in ("--set", setting)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=ROOT,
                start_new_session=True,
            )
        return cls(proc, log_path)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def cpu_seconds(self) -> float:
        """User + system CPU time of the daemon (all its threads) so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory_mb(self) -> dict[str, float]:
        """Resident set now (VmRSS) and its peak so far (VmHWM), in MB (10^6 bytes)."""
        values = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024 / 1e6
        return {"rss_mb": values["VmRSS"], "peak_rss_mb": values["VmHWM"]}

    def stop(self) -> None:
        stop_process(self.proc, timeout=15)


@dataclass
class Final:
    received: float  # time.time() when the subscriber got it
    payload: dict[str, Any]

    @property
    def ended_at(self) -> float:
        return datetime.fromisoformat(self.payload["ended_at"].replace("Z", "+00:00")).timestamp()


class TranscriptSubscriber:
    """Collects the daemon's final transcripts, stamped with the wall clock on arrival."""

    def __init__(self, broker: Broker) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.finals: list[Final] = []
        self.online = threading.Event()
        self._changed = threading.Condition()
        subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{free_port()}")

        def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            if not reason.is_failure:
                client.subscribe("edge-asr/bench/#", qos=1)

        def on_message(client: Any, userdata: Any, msg: Any) -> None:
            received = time.time()
            if msg.topic.endswith("/transcript"):
                with self._changed:
                    self.finals.append(Final(received, json.loads(msg.payload)))
                    self._changed.notify_all()
            elif msg.topic.endswith("/status") and b"online" in msg.payload:
                self.online.set()

        self._client.on_connect = on_connect
        self._client.on_subscribe = lambda *a: subscribed.set()
        self._client.on_message = on_message
        self._client.connect(broker.host, broker.port, keepalive=30)
        self._client.loop_start()
        if not subscribed.wait(10):
            raise RigError("benchmark subscriber could not subscribe")

    def wait_final_after(self, moment: float, timeout: float) -> tuple[Final | None, int]:
        """The first final whose audio ends after ``moment`` (epoch s), and how many finals
        ended before it since the last call (an utterance cut in two)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for i, final in enumerate(self.finals):
                    if final.ended_at > moment:
                        early = i
                        del self.finals[: i + 1]
                        return final, early
                left = deadline - time.monotonic()
                if left <= 0:
                    early = len(self.finals)
                    self.finals.clear()
                    return None, early
                self._changed.wait(left)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class SpeechEndClock:
    """Listens to the virtual microphone like the daemon does and remembers the wall time
    at which the latest speech sample arrived."""

    def __init__(self, pulse: Pulse) -> None:
        os.environ.update(pulse.env)  # PortAudio reads it when it (re)initializes
        import sounddevice as sd

        sd._terminate()
        sd._initialize()
        self._blocks: queue.SimpleQueue[tuple[np.ndarray, float]] = queue.SimpleQueue()
        self._last_speech = 0.0
        self._stream = sd.InputStream(
            samplerate=RATE,
            channels=1,
            dtype="float32",
            blocksize=RATE * 32 // 1000,
            callback=lambda data, frames, t, status: self._blocks.put((data.copy(), time.time())),
        )
        self._stream.start()

    def last_speech(self) -> float:
        """Epoch seconds of the last speech sample captured so far (0 if none)."""
        while True:
            try:
                block, end = self._blocks.get_nowait()
            except queue.Empty:
                return self._last_speech
            loud = np.flatnonzero(np.abs(block[:, 0]) > SPEECH_LEVEL)
            if loud.size:
                self._last_speech = end - (len(block) - loud[-1] - 1) / RATE

    def close(self) -> None:
        self._stream.stop()
        self._stream.close()


@contextlib.contextmanager
def live_rig() -> Iterator[tuple[Broker, Pulse, Path]]:
    """mosquitto, PulseAudio and a scratch folder; all stopped and removed on exit."""
    for tool in ("mosquitto", "pulseaudio", "paplay", "pactl"):
        if not shutil.which(tool):
            raise RigError(f"{tool} is not installed (make deps-test installs it)")
    # Short path: unix socket paths are limited to ~100 characters.
    folder = Path(tempfile.mkdtemp(prefix="bench-"))
    (folder / "mosquitto").mkdir()
    broker = Broker(free_port(), folder / "mosquitto")
    try:
        broker.start()
        with running_pulse() as pulse:
            yield broker, pulse, folder
    finally:
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def running_daemon(
    broker: Broker, pulse: Pulse, folder: Path, name: str, settings: Sequence[str] = ()
) -> Iterator[tuple[DaemonProcess, float]]:
    """A daemon started fresh; yields it and its seconds from spawn to READY=1."""
    workdir = folder / name
    workdir.mkdir()
    notify = NotifySocket(folder / f"{name}.sock")
    start = time.monotonic()
    daemon = DaemonProcess.start(broker, pulse, workdir, notify.path, settings)
    try:
        ready = notify.wait_ready(timeout=60)
        if ready is None or daemon.proc.poll() is not None:
            raise RigError(f"daemon sent no READY=1 within 60 s:\n{daemon.log_tail()}")
        yield daemon, ready - start
    finally:
        daemon.stop()
        notify.close()


# --- the measurements -----------------------------------------------------------------


@dataclass
class Footprint:
    ready_s: list[float]  # spawn to READY=1, one per start
    idle_seconds: float
    idle_cpu_percent: float  # of one core
    idle_rss_mb: float
    rss_after_speech_mb: float | None = None
    peak_rss_mb: float | None = None
    images: dict[str, str] | str = "not built"


@dataclass
class Sample:
    text: str
    voice: str
    heard: str
    latency_ms: float  # end of speech -> subscriber has the final
    ended_at_ms: float  # the message's ended_at minus the end of speech (kept trailing audio)
    processing_ms: float
    split: int  # finals that ended before the end of speech (the utterance was cut)


@dataclass
class Latency:
    hangover_ms: int
    hangover_frames_ms: float  # the hangover as the endpointer counts it, in 32 ms frames
    kept_trailing_ms: float  # silence after speech kept in the utterance (pre-roll frames)
    samples: list[Sample] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)  # played, but no final arrived

    def summary(self) -> dict[str, float]:
        latencies = [s.latency_ms for s in self.samples]
        beyond = [s.latency_ms - self.hangover_ms for s in self.samples]
        return {
            "utterances": len(self.samples) + len(self.missed),
            "received": len(self.samples),
            "p50_ms": percentile(latencies, 50),
            "p95_ms": percentile(latencies, 95),
            "max_ms": max(latencies),
            "beyond_hangover_p50_ms": percentile(beyond, 50),
            "beyond_hangover_p95_ms": percentile(beyond, 95),
            "processing_p50_ms": percentile([s.processing_ms for s in self.samples], 50),
            # ended_at is the end of the kept trailing audio: what is left is how long the VAD
            # still heard speech after it ended, and the rest is blocks, recognizer and MQTT.
            "vad_release_after_speech_p50_ms": percentile(
                [s.ended_at_ms - self.kept_trailing_ms for s in self.samples], 50
            ),
            "after_hangover_end_p50_ms": percentile(
                [
                    s.latency_ms - s.ended_at_ms - (self.hangover_frames_ms - self.kept_trailing_ms)
                    for s in self.samples
                ],
                50,
            ),
            "wer": sum(word_errors(s.text, s.heard) for s in self.samples)
            / max(1, sum(len(s.text.split()) for s in self.samples)),
        }


def _padded(clip: Clip, path: Path) -> Path:
    lead, tail = np.zeros(int(LEAD_S * RATE)), np.zeros(int(TAIL_S * RATE))
    loud = np.flatnonzero(np.abs(clip.samples) > SPEECH_LEVEL)
    speech = clip.samples[loud[0] : loud[-1] + 1]  # the clip's own silence is not speech
    sf.write(str(path), np.concatenate([lead, speech, tail]), RATE, subtype="PCM_16")
    return path


def measure_latency(
    broker: Broker, pulse: Pulse, folder: Path, clips: list[Clip], daemon: DaemonProcess
) -> Latency:
    """Play each clip into the virtual microphone, one at a time, and time its final."""
    vad = VadSettings()
    result = Latency(
        vad.hangover_ms,
        max(1, round(vad.hangover_ms / VAD_FRAME_MS)) * VAD_FRAME_MS,
        round(vad.pre_roll_ms / VAD_FRAME_MS) * VAD_FRAME_MS,
    )
    subscriber = TranscriptSubscriber(broker)
    clock = SpeechEndClock(pulse)
    try:
        time.sleep(1.0)  # the recorder's stream is running
        for i, clip in enumerate(clips):
            if daemon.proc.poll() is not None:
                raise RigError(f"daemon exited during the latency run:\n{daemon.log_tail()}")
            wav = _padded(clip, folder / f"utterance{i:02d}.wav")
            before = clock.last_speech()
            pulse.play(wav)
            time.sleep(0.1)  # blocks the recorder may still have in flight
            end = clock.last_speech()
            if end <= before:
                raise RigError(f"the recorder heard nothing of {wav.name}")
            final, split = subscriber.wait_final_after(end - 0.2, timeout=10)
            if final is None:
                result.missed.append(clip.text)
                continue
            result.samples.append(
                Sample(
                    clip.text,
                    clip.voice,
                    final.payload["text"],
                    round(1000 * (final.received - end), 1),
                    round(1000 * (final.ended_at - end), 1),
                    float(final.payload["processing_ms"]),
                    split,
                )
            )
            time.sleep(GAP_S)
    finally:
        clock.close()
        subscriber.close()
    return result


def docker_images() -> dict[str, str] | str:
    """Sizes of local ``edge-asr`` images as docker reports them, or "not built"."""
    if not shutil.which("docker"):
        return "not built"
    try:
        listed = subprocess.run(
            ["docker", "image", "ls", "edge-asr", "--format", "{{.Tag}}\t{{.Size}}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        return "not built"
    sizes = dict(line.split("\t", 1) for line in listed.stdout.splitlines() if "\t" in line)
    return {f"edge-asr:{tag}": size for tag, size in sorted(sizes.items())} or "not built"


def run_live(
    clips: list[Clip],
    utterances: int,
    idle_s: float,
    ready_starts: int,
    settings: Sequence[str] = (),
) -> tuple[Latency | None, Footprint | None]:
    """One daemon does it all: READY, ``idle_s`` of silence, then the utterances; further
    fresh starts only time READY. ``utterances`` 0 or ``idle_s`` 0 skips that part.
    ``settings`` (``KEY=VALUE``) go to every daemon as ``--set``."""
    latency: Latency | None = None
    footprint: Footprint | None = None
    with live_rig() as (broker, pulse, folder):
        with running_daemon(broker, pulse, folder, "daemon0", settings) as (daemon, ready_s):
            readies = [ready_s]
            if idle_s > 0:
                time.sleep(3.0)  # MQTT connect, first health write: not idle yet
                cpu, start = daemon.cpu_seconds(), time.monotonic()
                time.sleep(idle_s)
                used = daemon.cpu_seconds() - cpu
                elapsed = time.monotonic() - start
                footprint = Footprint(
                    readies, elapsed, 100 * used / elapsed, daemon.memory_mb()["rss_mb"]
                )
            if utterances > 0:
                chosen = clips[:: max(1, len(clips) // utterances)][:utterances]
                latency = measure_latency(broker, pulse, folder, chosen, daemon)
                if footprint is not None:
                    memory = daemon.memory_mb()
                    footprint.rss_after_speech_mb = memory["rss_mb"]
                    footprint.peak_rss_mb = memory["peak_rss_mb"]
        if footprint is not None:
            for i in range(1, ready_starts):
                with running_daemon(broker, pulse, folder, f"daemon{i}", settings) as (_, seconds):
                    readies.append(seconds)
            footprint.images = docker_images()
    return latency, footprint


def latency_json(latency: Latency) -> dict[str, Any]:
    return {
        "hangover_ms": latency.hangover_ms,
        "hangover_frames_ms": latency.hangover_frames_ms,
        "kept_trailing_ms": latency.kept_trailing_ms,
        "goal_p95_ms": latency.hangover_ms + 100,
        **latency.summary(),
        "missed": latency.missed,
        "samples": [asdict(s) for s in latency.samples],
    }


def footprint_json(footprint: Footprint) -> dict[str, Any]:
    return {
        **asdict(footprint),
        "ready_median_s": statistics.median(footprint.ready_s),
        "ready_max_s": max(footprint.ready_s),
    }
