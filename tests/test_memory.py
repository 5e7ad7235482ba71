"""The malloc setting every edge-asr command makes first (``edge_asr.memory``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(60)

CHECK = "import edge_asr.memory as m; print(m.return_large_buffers())"


def run_check(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_mmap_threshold_is_fixed_on_glibc() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    assert run_check(env) == "True"


def test_a_threshold_the_user_set_is_left_alone() -> None:
    assert run_check({**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}) == "False"
