"""Real parts for end-to-end runs, shared by the tests and ``make bench``: mosquitto on a free
port, a private PulseAudio whose null sink is a virtual microphone, waiting, and stopping
processes.

Nothing here imports edge_asr or pytest; failures raise ``RigError`` with the part's log.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class RigError(RuntimeError):
    """A real part (PulseAudio, mosquitto, the daemon) did not start or answer."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def stop_process(proc: subprocess.Popen[Any], timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


@dataclass
class Broker:
    """A mosquitto on 127.0.0.1:port that can be stopped and started again."""

    port: int
    directory: Path
    host: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = None
    extra_config: str = ""  # more listeners etc.; per_listener_settings is on
    persistent: bool = False  # keep sessions and queued messages across restarts
    users: dict[str, str] = field(default_factory=dict)  # if set, only these may connect

    def start(self) -> None:
        conf = self.directory / "mosquitto.conf"
        # As root, mosquitto switches to the 'mosquitto' user, which cannot read our temp files.
        user = "user root\n" if os.geteuid() == 0 else ""
        persistence = (
            f"persistence true\npersistence_location {self.directory}/\n"
            if self.persistent
            else "persistence false\n"
        )
        access = "allow_anonymous true\n"
        if self.users:
            passwords = self.directory / "passwords"
            passwords.write_text("", encoding="utf-8")
            for name, password in self.users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(passwords), name, password],
                    check=True,
                    capture_output=True,
                    timeout=30,
                )
            access = f"allow_anonymous false\npassword_file {passwords}\n"
        conf.write_text(
            f"{user}per_listener_settings true\n{persistence}log_dest stderr\n"
            f"listener {self.port} 127.0.0.1\n{access}{self.extra_config}",
            encoding="utf-8",
        )
        log = open(self.directory / "mosquitto.log", "ab")  # noqa: SIM115 - closed with proc
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(conf)], stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        if not wait_until(self._listening, timeout=10):
            self.stop()
            raise RigError(f"mosquitto did not start on port {self.port}")

    def _listening(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), 0.2):
            return True
        return False

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


@dataclass
class Pulse:
    """A private PulseAudio whose null sink ``vsink`` (16 kHz mono) is the default mic."""

    runtime_dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {
            "PULSE_SERVER": f"unix:{self.runtime_dir}/pulse/native",
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
        }

    def start(self) -> None:
        env = {
            **os.environ,
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "HOME": str(self.runtime_dir),
        }
        with open(self.runtime_dir / "pulse.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    "pulseaudio",
                    "--daemonize=no",
                    "--system=no",
                    "--exit-idle-time=-1",
                    "-n",
                    "--use-pid-file=no",
                    "--load=module-native-protocol-unix auth-anonymous=1",
                    "--load=module-null-sink sink_name=vsink format=s16le rate=16000 channels=1",
                ],
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        if not wait_until(self._ready, timeout=15, interval=0.2):
            log_text = (self.runtime_dir / "pulse.log").read_text(errors="replace")
            self.stop()
            raise RigError("private PulseAudio did not start: " + log_text)

    def _ready(self) -> bool:
        info = subprocess.run(
            ["pactl", "info"], env={**os.environ, **self.env}, capture_output=True, timeout=5
        )
        return info.returncode == 0

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def play(self, wav: Path, timeout: float = 30.0) -> None:
        """Play a WAV into the virtual microphone; returns when playback ended."""
        subprocess.run(
            ["paplay", "--device=vsink", str(wav)],
            env={**os.environ, **self.env},
            check=True,
            timeout=timeout,
        )


@contextlib.contextmanager
def running_pulse() -> Iterator[Pulse]:
    """A started private PulseAudio, stopped and its folder removed on exit."""
    import shutil

    # Short path: unix socket paths are limited to ~100 characters.
    server = Pulse(Path(tempfile.mkdtemp(prefix="pa-")))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.runtime_dir, ignore_errors=True)
