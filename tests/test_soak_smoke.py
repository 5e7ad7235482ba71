"""``make soak`` is not in CI (it runs for an hour); a short run keeps it working."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


@pytest.mark.timeout(240)
def test_soak_runs_briefly_and_reports_memory_growth(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--minutes", "0.25", "--every", "4"]
        + ["--sample", "3", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=200,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "RSS after warm-up" in result.stdout and "MB/hour" in result.stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["transcripts_received"] == report["utterances_spoken"] >= 5
    assert len(report["samples"]) >= 4
    assert 30 < report["rss_end_mb"] < 1000


def test_soak_refuses_nonsense_arguments() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--minutes", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert "must be positive" in result.stderr
