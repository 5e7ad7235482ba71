"""Health the daemon keeps current on disk, for ``edge-asr health`` and container checks.

The daemon rewrites ``health.json`` in its state folder every second (atomically); a checker
in another process (Docker's HEALTHCHECK, a Kubernetes probe, a person) reads it. A file that
stopped changing means a hung daemon, which a socket-based check could miss.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

HEALTH_FILE = "health.json"
DEFAULT_MAX_AGE_S = 10.0


class HealthReport(BaseModel):
    """What the daemon says about itself."""

    model_config = ConfigDict(extra="ignore")

    pid: int
    updated_at: float = Field(description="time.time() of the write")
    listening: bool = Field(description="False while paused by request or stopping")
    paused: bool = Field(default=False, description="listening paused by request")
    stopping: bool = Field(default=False, description="shutting down")
    audio_flowing: bool = Field(description="audio blocks arrived within the last seconds")
    input_problem: str | None = Field(
        default=None,
        description="why no audio can arrive while the daemon waits for its input device "
        "(missing, unplugged, its audio server gone); waiting is not unhealthy",
    )
    worker_alive: bool = Field(description="the recognizer worker thread is running")
    broker_connected: bool
    broker_error: str | None = Field(
        default=None, description="why the broker refuses us (e.g. bad credentials), if it does"
    )
    spool_pending: int = Field(ge=0, description="transcripts waiting for the broker")
    status: str = Field(description="one line for people, as in systemctl status")

    def problems(self, now: float, max_age_s: float = DEFAULT_MAX_AGE_S) -> list[str]:
        """Why the daemon is unhealthy; empty when it is healthy.

        A disconnected broker is not a problem by itself: transcripts wait in the spool.
        """
        found = []
        age = now - self.updated_at
        if age > max_age_s:
            found.append(f"health not updated for {age:.0f} s (daemon hung or stopped)")
        # Waiting for a known-missing device is the daemon doing its job; silence without a
        # reason is not (a stalled driver or a hang).
        if (self.listening or self.paused) and not self.audio_flowing and not self.input_problem:
            found.append("no audio is arriving from the input")
        if not self.worker_alive:
            found.append("the recognizer worker is not running")
        return found


def write_health(state_dir: Path, report: HealthReport) -> None:
    """Replace the health file atomically (readers never see half a file)."""
    path = state_dir / HEALTH_FILE
    tmp = path.with_name(f".{HEALTH_FILE}.{os.getpid()}.tmp")
    tmp.write_text(report.model_dump_json(), encoding="utf-8")
    os.replace(tmp, path)


def check_health(state_dir: Path, max_age_s: float = DEFAULT_MAX_AGE_S) -> tuple[bool, str]:
    """(healthy, one line saying why) from the daemon's health file."""
    path = state_dir / HEALTH_FILE
    try:
        report = HealthReport.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return False, f"{path}: no health file (is the daemon running with this state_dir?)"
    except (OSError, ValueError, ValidationError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return False, f"{path}: unreadable health file ({first})"
    problems = report.problems(time.time(), max_age_s)
    if problems:
        return False, "unhealthy: " + "; ".join(problems)
    if report.broker_connected:
        broker = "broker connected"
    elif report.broker_error:
        broker = f"{report.broker_error}, spooling"
    else:
        broker = "broker unreachable, spooling"
    return True, f"healthy: {report.status}; {broker}; {report.spool_pending} pending"
