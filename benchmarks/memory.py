"""Where the daemon's memory goes: load its parts one at a time in a fresh process.

Each step runs in the same child interpreter, in the order the daemon loads them, and the
resident set (VmRSS) is read after each; the difference is what that part added. Shared
libraries count once, where they are first loaded, so the split depends on the order.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

# Run in the child: one step per entry, (label, code). The code sees the names earlier steps made.
STEPS: tuple[tuple[str, str], ...] = (
    # as edge-asr's main() does first: big freed buffers go back to the system
    ("Python interpreter", "import edge_asr.memory\nedge_asr.memory.return_large_buffers()"),
    ("numpy", "import numpy"),
    ("onnxruntime", "import onnxruntime"),
    ("pydantic-settings (edge_asr.settings)", "import edge_asr.settings"),
    ("paho-mqtt", "import paho.mqtt.client"),
    ("sounddevice + PortAudio (initialized)", "import sounddevice; sounddevice.query_devices()"),
    (
        "built-in model session (warmed up)",
        "from edge_asr.asr.recognizer import Recognizer\nrec = Recognizer.load()",
    ),
    ("Silero VAD session", "from edge_asr.audio.vad import SileroVad\nvad = SileroVad()"),
    ("recognizing a 10 s utterance", "rec.transcribe(numpy.zeros(160000, numpy.float32), 16000)"),
    ("the rest of the daemon's modules", "import edge_asr.app"),
)

CHILD = """
import json, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1000
env = {}
for label, code in json.loads(sys.argv[1]):
    try:
        exec(code, env)
        print(json.dumps([label, rss(), None]), flush=True)
    except Exception as e:
        print(json.dumps([label, rss(), f"{type(e).__name__}: {e}"]), flush=True)
"""


@dataclass(frozen=True)
class Step:
    label: str
    rss_mb: float  # after the step
    added_mb: float
    error: str | None = None


def run_memory(timeout_s: float = 120.0) -> list[Step]:
    """The steps' RSS in one fresh interpreter (MB = 10^6 bytes)."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(STEPS)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=True,
    ).stdout
    steps, before = [], 0.0
    for line in out.splitlines():
        label, rss, error = json.loads(line)
        steps.append(Step(label, rss, rss - before, error))
        before = rss
    return steps
