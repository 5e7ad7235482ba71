"""The sd_notify protocol spoken to a real unix datagram socket, as systemd would listen."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_asr.service.systemd import SystemdNotifier

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def receive(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.splitlines())


def test_ready_status_and_stopping(notify_socket: socket.socket) -> None:
    notifier = SystemdNotifier()
    notifier.ready("listening on default mic")
    assert receive(notify_socket) == {"READY": "1", "STATUS": "listening on default mic"}
    notifier.status("broker down, spooling 3 transcripts")
    assert receive(notify_socket) == {"STATUS": "broker down, spooling 3 transcripts"}
    notifier.stopping()
    assert receive(notify_socket)["STOPPING"] == "1"


def test_watchdog_pings_at_half_interval_only_while_healthy(
    notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    healthy = {"now": True}
    notifier = SystemdNotifier()
    assert notifier.watchdog_interval_s == pytest.approx(0.2)
    notifier.start_watchdog(lambda: healthy["now"])
    assert receive(notify_socket) == {"WATCHDOG": "1"}
    assert receive(notify_socket) == {"WATCHDOG": "1"}
    healthy["now"] = False
    notify_socket.settimeout(0.3)
    # drain a ping that may have been in flight, then expect silence
    with contextlib.suppress(TimeoutError):
        receive(notify_socket)
    with pytest.raises(TimeoutError):
        receive(notify_socket)
    notifier.stopping()


def test_watchdog_for_another_pid_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert SystemdNotifier().watchdog_interval_s is None


def test_without_notify_socket_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    SystemdNotifier().ready("x")  # no error, no effect


def test_a_receiver_that_stops_reading_never_blocks_the_daemon(
    notify_socket: socket.socket,
) -> None:
    import threading
    import time

    notifier = SystemdNotifier()
    done = threading.Event()

    def flood() -> None:
        for i in range(5000):  # far more than a unix datagram queue holds
            notifier.status(f"{i} transcripts since start " + "x" * 200)
        done.set()

    threading.Thread(target=flood, daemon=True).start()
    started = time.monotonic()
    while not done.is_set() and time.monotonic() - started < 10:
        time.sleep(0.01)  # other threads (capture) must keep running meanwhile
    assert done.is_set(), "notify blocked on a full socket"
    assert time.monotonic() - started < 5


def test_transcript_log_records_carry_utterance_id_and_seq_for_the_journal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    from datetime import datetime, timezone

    import numpy as np

    from edge_asr.app import RecognitionWorker
    from edge_asr.asr.bundle import BUILTIN_MODEL_DIR
    from edge_asr.asr.recognizer import Recognizer
    from edge_asr.audio.vad import Utterance
    from edge_asr.service.state import SequenceCounter

    worker = RecognitionWorker(
        Recognizer.load(BUILTIN_MODEL_DIR), [], SequenceCounter(tmp_path), "hall", 4
    )
    now = datetime.now(timezone.utc)
    utterance = Utterance("u-1", np.zeros(8000, np.float32), 16000, now, now, "silence")
    with caplog.at_level(logging.INFO, logger="edge_asr.app"):
        worker.start()
        worker.submit_final(utterance)
        worker.close(10)
    (record,) = [r for r in caplog.records if r.getMessage().startswith("transcript 1:")]
    # JournalHandler sends upper-case record attributes as journal fields.
    assert record.UTTERANCE_ID == "u-1"  # type: ignore[attr-defined]
    assert record.SEQ == 1  # type: ignore[attr-defined]
