"""`edge-asr health` reads what the daemon writes and answers with an exit code."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_asr.service.health import HealthReport, write_health

pytestmark = pytest.mark.timeout(60)


def report(**changes: object) -> HealthReport:
    values: dict[str, object] = {
        "pid": 1,
        "updated_at": time.time(),
        "listening": True,
        "audio_flowing": True,
        "worker_alive": True,
        "broker_connected": True,
        "spool_pending": 0,
        "status": "listening",
    }
    values.update(changes)
    return HealthReport.model_validate(values)


def health(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_asr", "health", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_healthy_daemon_exits_0(tmp_path: Path) -> None:
    write_health(tmp_path, report(broker_connected=False, spool_pending=3))
    result = health("--state-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "broker unreachable, spooling; 3 pending" in result.stdout


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"audio_flowing": False}, "no audio is arriving"),
        ({"worker_alive": False}, "worker is not running"),
        ({"updated_at": time.time() - 60}, "not updated for"),
    ],
)
def test_unhealthy_daemon_exits_1_and_says_why(
    tmp_path: Path, changes: dict[str, object], reason: str
) -> None:
    write_health(tmp_path, report(**changes))
    result = health("--state-dir", tmp_path)
    assert result.returncode == 1
    assert reason in result.stderr


def test_paused_daemon_without_audio_is_healthy(tmp_path: Path) -> None:
    write_health(tmp_path, report(listening=False, audio_flowing=False))
    assert health("--state-dir", tmp_path).returncode == 0


def test_waiting_for_a_missing_input_device_is_healthy_and_says_so(tmp_path: Path) -> None:
    waiting = "No audio input device found."
    write_health(
        tmp_path,
        report(audio_flowing=False, input_problem=waiting, status=f"waiting; {waiting}"),
    )
    result = health("--state-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    assert waiting in result.stdout


def test_no_daemon_exits_1(tmp_path: Path) -> None:
    result = health("--state-dir", tmp_path)
    assert result.returncode == 1
    assert "no health file" in result.stderr


def test_garbage_health_file_exits_1(tmp_path: Path) -> None:
    (tmp_path / "health.json").write_text("{not json")
    result = health("--state-dir", tmp_path)
    assert result.returncode == 1
    assert "unreadable health file" in result.stderr


def test_state_dir_comes_from_the_environment(tmp_path: Path) -> None:
    write_health(tmp_path, report())
    result = subprocess.run(
        [sys.executable, "-m", "edge_asr", "health", "-q"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"EDGE_ASR_STATE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
