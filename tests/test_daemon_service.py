"""The daemon as a service: systemd notify (READY, WATCHDOG, STOPPING) over a real datagram
socket, and the health file that `edge-asr health` reads."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, Daemon, wait_until, write_wav

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


class NotifySocket:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[str] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self._sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def fields(self) -> list[str]:
        return [line for message in list(self.messages) for line in message.splitlines()]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    # A short path: unix socket paths are limited to ~100 characters.
    directory = Path(os.path.realpath("/tmp")) / f"notify-{os.getpid()}-{time.monotonic_ns()}"
    directory.mkdir()
    sock = NotifySocket(directory / "notify")
    yield sock
    sock.close()
    (directory / "notify").unlink(missing_ok=True)
    directory.rmdir()


@pytest.fixture
def silence_wav(tmp_path: Path) -> Path:
    return write_wav(tmp_path / "silence.wav", np.zeros(60 * 16000))


def health(state_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_asr", "health", "--state-dir", str(state_dir)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_systemd_hears_ready_watchdog_pings_and_stopping(
    daemon_factory: Callable[..., Daemon], notify_socket: NotifySocket, silence_wav: Path
) -> None:
    daemon = daemon_factory(
        "--source", f"file:{silence_wav}",
        env={"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "1000000"},
    ).start()  # fmt: skip
    assert wait_until(lambda: "READY=1" in notify_socket.fields(), 30), daemon.log
    assert wait_until(lambda: notify_socket.fields().count("WATCHDOG=1") >= 3, 10)
    assert daemon.stop() == 0
    fields = notify_socket.fields()
    assert "STOPPING=1" in fields
    assert fields.index("READY=1") < fields.index("WATCHDOG=1") < fields.index("STOPPING=1")


def test_waiting_for_a_missing_microphone_is_ready_and_pets_the_watchdog(
    daemon_factory: Callable[..., Daemon], notify_socket: NotifySocket
) -> None:
    daemon = daemon_factory(
        "--no-mqtt",  # no PulseAudio: no input devices
        env={
            "NOTIFY_SOCKET": str(notify_socket.path),
            "WATCHDOG_USEC": "1000000",
            "EDGE_ASR_AUDIO__WAIT_FOR_DEVICE": "true",
        },
    ).start()
    assert wait_until(lambda: "READY=1" in notify_socket.fields(), 30), daemon.log
    status = next(f for f in notify_socket.fields() if f.startswith("STATUS="))
    assert "waiting for the input device" in status and "No audio input device" in status
    assert wait_until(lambda: notify_socket.fields().count("WATCHDOG=1") >= 3, 10)
    assert daemon.stop() == 0


def test_without_wait_for_device_a_missing_microphone_ends_the_daemon(
    daemon_factory: Callable[..., Daemon], notify_socket: NotifySocket
) -> None:
    daemon = daemon_factory("--no-mqtt", env={"NOTIFY_SOCKET": str(notify_socket.path)}).start()
    assert daemon.wait_exit(30) == 1
    assert "READY=1" not in notify_socket.fields()


def test_health_file_says_healthy_while_running_and_not_after_stopping(
    daemon_factory: Callable[..., Daemon], silence_wav: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    daemon = daemon_factory("--source", f"file:{silence_wav}", state_dir=state).start()
    daemon.wait_listening()
    assert wait_until(lambda: health(state).returncode == 0, 10), health(state).stderr
    assert "healthy: listening" in health(state).stdout
    assert daemon.stop() == 0
    result = health(state)
    assert result.returncode == 1  # a daemon that stopped is not healthy


def test_no_watchdog_ping_while_no_audio_arrives(
    daemon_factory: Callable[..., Daemon], notify_socket: NotifySocket
) -> None:
    daemon = daemon_factory(
        "--source", "stdin",
        env={"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "400000"},
    )  # fmt: skip
    proc = daemon.start(stdin=subprocess.PIPE).proc
    assert proc is not None and proc.stdin is not None
    proc.stdin.write(np.zeros(16000, dtype="<i2").tobytes())  # 1 s, then the pipe goes quiet
    proc.stdin.flush()
    assert wait_until(lambda: "READY=1" in notify_socket.fields(), 30), daemon.log
    daemon.wait_for_log("withholding the systemd watchdog ping", timeout=15)
    proc.stdin.close()
    assert daemon.wait_exit(30) == 0
