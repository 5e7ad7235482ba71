"""Speech for tests: espeak-ng (and flite) voices the built-in model never trained on."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

# Held out from training (edge_asr/training/synth.py): never heard by the built-in model.
HELDOUT_ESPEAK_VOICES = ("en-us+f4", "en-gb-scotland+m5", "en+klatt3")


def speak(
    text: str,
    path: Path,
    voice: str = HELDOUT_ESPEAK_VOICES[0],
    rate: int = 16000,
    channels: int = 1,
    speed: int = 150,
    pad_s: float = 0.0,
) -> Path:
    """Synthesize ``text`` with espeak-ng into a 16-bit WAV at ``rate`` with ``channels``,
    with ``pad_s`` seconds of silence added at both ends."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text],
        check=True,
        timeout=30,
    )
    subprocess.run(
        ["sox", "-q", str(raw), "-r", str(rate), "-c", str(channels), "-b", "16", str(path)]
        + (["pad", str(pad_s), str(pad_s)] if pad_s > 0 else []),
        check=True,
        timeout=30,
    )
    raw.unlink()
    return path


def have(program: str) -> bool:
    return shutil.which(program) is not None
