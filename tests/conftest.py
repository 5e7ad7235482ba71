"""Fixtures that start real parts: mosquitto, a private PulseAudio with a virtual microphone
(benchmarks/rig.py), espeak-ng speech, the daemon as a subprocess, and an MQTT subscriber.
All are stopped after use.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

# Shared with `make bench`, which runs the daemon on the same virtual microphone.
from benchmarks.rig import Broker, Pulse, free_port, running_pulse, wait_until
from benchmarks.rig import stop_process as _stop_process

REPO = Path(__file__).resolve().parent.parent
BUILTIN_MODEL = REPO / "edge_asr" / "models" / "home-en"


# --- model ----------------------------------------------------------------------------


def _write_blank_bundle(directory: Path) -> Path:
    """A valid bundle whose model always outputs blank: text is always empty.

    Lets transport, VAD and sequence tests run before a trained model exists.
    """
    import onnx
    from onnx import TensorProto, helper

    symbols = ["<blk>", "\u2581", *"abcdefghijklmnopqrstuvwxyz'"]
    vocab = len(symbols)
    scores = np.full(vocab, -20.0, dtype=np.float32)
    scores[0] = 0.0
    nodes = [
        helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=1),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["z", "scores"], ["log_probs"]),
        helper.make_node("Identity", ["x_lens"], ["log_probs_len"]),
    ]
    graph = helper.make_graph(
        nodes,
        "blank",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", 80]),
            helper.make_tensor_value_info("x_lens", TensorProto.INT64, ["N"]),
        ],
        [
            helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, ["N", "T", vocab]),
            helper.make_tensor_value_info("log_probs_len", TensorProto.INT64, ["N"]),
        ],
        initializer=[
            helper.make_tensor("axes", TensorProto.INT64, [1], [2]),
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
            helper.make_tensor("scores", TensorProto.FLOAT, [vocab], scores.tolist()),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    for key, value in {
        "model_name": "blank-test",
        "model_version": "0",
        "language": "en",
        "subsampling_factor": "1",
    }.items():
        model.metadata_props.add(key=key, value=value)
    directory.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(directory / "model.onnx"))
    (directory / "tokens.txt").write_text(
        "".join(f"{s} {i}\n" for i, s in enumerate(symbols)), encoding="utf-8"
    )
    (directory / "words.txt").write_text("ok\n", encoding="utf-8")
    return directory


@dataclass(frozen=True)
class ModelUnderTest:
    path: Path
    real: bool  # a trained model (transcript content can be checked)


@pytest.fixture(scope="session")
def test_model(tmp_path_factory: pytest.TempPathFactory) -> ModelUnderTest:
    """EDGE_ASR_TEST_MODEL_DIR, else the built-in bundle, else an always-blank bundle."""
    configured = os.environ.get("EDGE_ASR_TEST_MODEL_DIR")
    if configured:
        return ModelUnderTest(Path(configured), real=True)
    if any((BUILTIN_MODEL / name).is_file() for name in ("model.int8.onnx", "model.onnx")):
        return ModelUnderTest(BUILTIN_MODEL, real=True)
    pytest.importorskip("onnx", reason="onnx is needed to build the stand-in test model")
    return ModelUnderTest(_write_blank_bundle(tmp_path_factory.mktemp("blank-model")), real=False)


@pytest.fixture(scope="session")
def recognizer(test_model: ModelUnderTest) -> Any:
    """The test model, loaded in the test process (to compare a service's answers with)."""
    from edge_asr.asr.recognizer import Recognizer

    return Recognizer.load(test_model.path)


def expected_text(recognizer: Any, path: Path) -> str:
    """What ``recognizer`` itself makes of an audio file."""
    from edge_asr.audio.files import read_audio

    audio = read_audio(path)
    return str(recognizer.transcribe(audio.samples, audio.sample_rate).text)


@pytest.fixture(scope="session")
def kitchen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A WAV of the command 'turn on the kitchen light' in a voice the built-in model never
    heard (needs espeak-ng and sox)."""
    from speech import speak

    return speak("turn on the kitchen light", tmp_path_factory.mktemp("kitchen") / "kitchen.wav")


# --- mosquitto ------------------------------------------------------------------------


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[[], Broker]]:
    """Make brokers (not started) on free ports; all are stopped at the end."""
    made: list[Broker] = []

    def make() -> Broker:
        directory = tmp_path / f"mosquitto{len(made)}"
        directory.mkdir()
        broker = Broker(free_port(), directory)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.stop()


@pytest.fixture
def broker(broker_factory: Callable[[], Broker]) -> Broker:
    """A running mosquitto on a free port."""
    if not shutil.which("mosquitto"):
        pytest.skip("mosquitto is not installed")
    b = broker_factory()
    b.start()
    return b


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int  # as delivered: min(published QoS, the subscription's QoS 1)
    at: float

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    """An MQTT client in the test collecting every message under a topic filter."""

    def __init__(self, broker: Broker, topic: str = "edge-asr/#", persistent: bool = False) -> None:
        """``persistent``: a session the broker keeps (clean_session off), reconnecting by
        itself, so QoS 1 messages published while it is away are delivered later."""
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[Received] = []
        self._lock = threading.Condition()
        self._subscribed = threading.Event()
        self._topic = topic
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-{free_port()}",
            clean_session=not persistent,
        )
        self._client.reconnect_delay_set(min_delay=1, max_delay=1)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *a: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect(broker.host, broker.port, keepalive=30)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("test subscriber could not subscribe")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            client.subscribe(self._topic, qos=1)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._lock:
            self.messages.append(
                Received(msg.topic, msg.payload, msg.retain, msg.qos, time.monotonic())
            )
            self._lock.notify_all()

    def on(self, suffix: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.topic.endswith("/" + suffix)]

    def wait_for(self, suffix: str, count: int = 1, timeout: float = 30.0) -> list[Received]:
        """Wait until ``count`` messages on ``…/suffix`` arrived; fail the test otherwise."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while (
                len(found := [m for m in self.messages if m.topic.endswith("/" + suffix)]) < count
            ):
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(
                        f"waited {timeout:.0f} s for {count} message(s) on .../{suffix}; got "
                        f"{[(m.topic, m.payload[:200]) for m in self.messages]}"
                    )
                self._lock.wait(left)
            return found

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self._client.publish(topic, payload, qos=qos).wait_for_publish(10)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def subscriber_factory() -> Iterator[Callable[[Broker], Subscriber]]:
    made: list[Subscriber] = []

    def make(broker: Broker, topic: str = "edge-asr/#", persistent: bool = False) -> Subscriber:
        sub = Subscriber(broker, topic, persistent)
        made.append(sub)
        return sub

    yield make
    for sub in made:
        sub.close()


# --- PulseAudio virtual microphone ----------------------------------------------------


@pytest.fixture
def pulse() -> Iterator[Pulse]:
    """A running private PulseAudio (stopped, and its folder removed, afterwards)."""
    for tool in ("pulseaudio", "paplay", "pactl"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")
    with running_pulse() as server:  # RigError with the server's log if it does not start
        yield server


# --- speech ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="session")
def make_speech(speech_dir: Path) -> Callable[..., Path]:
    """``make_speech(text, voice="en-us", lead_s=0.5, tail_s=0.5)`` → 16 kHz mono WAV path.

    Spoken by espeak-ng, resampled to 16 kHz, with digital silence before and after.
    """
    if not shutil.which("espeak-ng"):
        pytest.skip("espeak-ng is not installed")
    import soxr

    def make(text: str, voice: str = "en-us", lead_s: float = 0.5, tail_s: float = 0.5) -> Path:
        stem = f"{voice}-{abs(hash((text, lead_s, tail_s))):x}"
        out = speech_dir / f"{stem}.wav"
        if out.exists():
            return out
        raw = speech_dir / f"{stem}.raw.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), text],
            check=True,
            timeout=30,
        )
        data, rate = sf.read(str(raw), dtype="float32")
        data = soxr.resample(data, rate, 16000)
        speech = 0.8 * data / max(1e-6, float(np.abs(data).max()))
        lead, tail = np.zeros(int(lead_s * 16000)), np.zeros(int(tail_s * 16000))
        audio = np.concatenate([lead, speech, tail]).astype(np.float32)
        sf.write(str(out), audio, 16000, subtype="PCM_16")
        return out

    return make


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    sf.write(str(path), samples.astype(np.float32), rate, subtype="PCM_16")
    return path


# --- the daemon -----------------------------------------------------------------------


@dataclass
class Daemon:
    """``python -m edge_asr run`` as a subprocess, with its log in a file."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    stdout_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.stdout_path = self.log_path.with_suffix(".stdout")

    def start(self, stdin: Any = subprocess.DEVNULL) -> Daemon:
        with open(self.log_path, "ab") as err, open(self.stdout_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge_asr", "--log-level", "DEBUG", "run", *self.args],
                env=self.env,
                stdin=stdin,
                stdout=out,
                stderr=err,
                cwd=REPO,
                start_new_session=True,
            )
        return self

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, text: str, timeout: float = 60.0) -> None:
        def seen() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(f"daemon exited ({self.proc.returncode}) before '{text}':\n{self.log}")
            return text in self.log

        if not wait_until(seen, timeout, interval=0.1):
            pytest.fail(f"daemon did not log '{text}' within {timeout:.0f} s:\n{self.log[-5000:]}")

    def wait_listening(self, timeout: float = 60.0) -> None:
        self.wait_for_log("listening (first audio received)", timeout)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            pytest.fail(f"daemon did not stop within {timeout:.0f} s after SIGTERM:\n{self.log}")

    def wait_exit(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"daemon still running after {timeout:.0f} s:\n{self.log[-5000:]}")


@pytest.fixture
def daemon_factory(tmp_path: Path, test_model: ModelUnderTest) -> Iterator[Callable[..., Daemon]]:
    """``daemon_factory(*args, broker=…, pulse=…, state_dir=…, env=…)`` → a Daemon (not started).

    The environment is clean of EDGE_ASR_* settings except those given; the model is the test
    model. Every daemon is killed at the end if still running.
    """
    made: list[Daemon] = []

    def make(
        *args: str,
        broker: Broker | None = None,
        pulse: Pulse | None = None,
        state_dir: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> Daemon:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_ASR_", "PULSE_"))}
        base["PYTHONPATH"] = str(REPO)
        base["EDGE_ASR_STATE_DIR"] = str(state_dir or tmp_path / "state")
        base["EDGE_ASR_RECOGNIZER__MODEL_DIR"] = str(test_model.path)
        if broker is not None:
            base["EDGE_ASR_MQTT__HOST"] = broker.host
            base["EDGE_ASR_MQTT__PORT"] = str(broker.port)
        else:
            base["EDGE_ASR_MQTT__ENABLED"] = "false"
        if pulse is not None:
            base.update(pulse.env)
        else:
            # No audio server: PortAudio finds no input devices.
            base["XDG_RUNTIME_DIR"] = str(tmp_path / "no-audio")
        base.update(env or {})
        daemon = Daemon(list(args), base, tmp_path / f"daemon{len(made)}.log")
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        if daemon.proc is not None:
            _stop_process(daemon.proc, timeout=10)
