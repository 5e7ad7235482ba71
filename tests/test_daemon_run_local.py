"""deploy/run-local.sh (behind `make run`): starts mosquitto if none listens, then the daemon."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import REPO, Broker, ModelUnderTest, Pulse, Subscriber, free_port, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SCRIPT = REPO / "deploy" / "run-local.sh"


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.2):
            return True
    except OSError:
        return False


@pytest.fixture
def run_local(
    tmp_path: Path, test_model: ModelUnderTest
) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(port: int, pulse: Pulse | None, *args: str) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_ASR_", "PULSE_"))}
        env.update(
            EDGE_ASR_MQTT__HOST="127.0.0.1",
            EDGE_ASR_MQTT__PORT=str(port),
            EDGE_ASR_STATE_DIR=str(tmp_path / "state"),
            EDGE_ASR_RECOGNIZER__MODEL_DIR=str(test_model.path),
            TMPDIR=str(tmp_path),
        )
        env.update(pulse.env if pulse else {"XDG_RUNTIME_DIR": str(tmp_path / "no-audio")})
        proc = subprocess.Popen(
            [str(SCRIPT), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )  # fmt: skip
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_starts_a_broker_and_the_daemon_and_ctrl_c_stops_both_gracefully(
    run_local: Callable[..., subprocess.Popen[str]],
    pulse: Pulse,
    make_speech: Callable[..., Path],
    tmp_path: Path,
) -> None:
    port = free_port()
    proc = run_local(port, pulse)
    assert wait_until(lambda: _listening(port), 15), "run-local.sh did not start mosquitto"
    sub = Subscriber(Broker(port, tmp_path))
    try:
        sub.wait_for("status", timeout=60)
        time.sleep(2.0)  # first audio from a fresh PulseAudio
        pulse.play(make_speech("turn on the kitchen light"))
        sub.wait_for("transcript", timeout=30)
    finally:
        sub.close()
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal reaches the whole group
    output, _ = proc.communicate(timeout=30)
    assert f"mosquitto_sub -h 127.0.0.1 -p {port} -t 'edge-asr/#' -v" in output
    assert "started mosquitto" in output and "stopped the mosquitto" in output
    # The daemon gets the group's SIGINT and (if still running then) the script's TERM, in
    # either order: the first starts the graceful stop, the other is no second Ctrl-C.
    first = "SIGINT" if "SIGINT: finishing" in output else "SIGTERM"
    assert f"{first}: finishing the current utterance" in output, output
    assert "exiting now" not in output and "edge_asr.cli.run: stopped" in output, output
    assert not _listening(port)


def test_uses_a_broker_that_is_already_running(
    run_local: Callable[..., subprocess.Popen[str]], broker: Broker
) -> None:
    proc = run_local(broker.port, None)
    output, _ = proc.communicate(timeout=60)
    assert "using the MQTT broker already listening" in output
    assert proc.returncode == 1  # no input device here
    assert broker.proc is not None and broker.proc.poll() is None


def test_without_input_device_explains_how_to_use_a_file(
    run_local: Callable[..., subprocess.Popen[str]],
) -> None:
    port = free_port()
    proc = run_local(port, None)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "No audio input device found" in output and "--source file:" in output
    assert "Traceback" not in output
    assert not _listening(port)  # the broker it started is gone again
