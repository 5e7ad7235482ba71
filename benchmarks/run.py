"""``make bench``: measure edge-asr against its peers in one run and print a table.

    python -m benchmarks.run [--quick] [--rounds N] [--out benchmarks/results/latest.json]

``--quick`` is the smoke run CI does: few clips, one round, no pocketsphinx.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.files import (
    PHRASES,
    Transcriber,
    edge_asr_engine,
    floor_engine,
    make_clips,
    pocketsphinx_engine,
    run_files,
    sherpa_engine,
)

HERE = Path(__file__).resolve().parent


def machine_info() -> dict[str, object]:
    import onnxruntime

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few clips, one round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    parser.add_argument("--cache", type=Path, default=HERE / ".cache")
    args = parser.parse_args(argv)

    clips = make_clips(args.cache)
    if args.quick:
        clips = clips[:: max(1, len(clips) // 6)]
    words = sorted({w for line in _vocabulary() for w in line.split()})
    engines: dict[str, Transcriber] = {
        "edge-asr (greedy)": edge_asr_engine("greedy"),
        "edge-asr (vocabulary)": edge_asr_engine("vocabulary"),
        "sherpa-onnx (greedy)": sherpa_engine(),
        "floor (fbank+ORT+argmax)": floor_engine(),
    }
    if not args.quick:
        try:
            engines["pocketsphinx (JSGF)"] = pocketsphinx_engine(words)
        except ImportError:
            print("pocketsphinx not installed: skipped", file=sys.stderr)
    results = run_files(clips, engines, 1 if args.quick else args.rounds)

    reference = results[0].seconds
    info = machine_info()
    print(
        f"\nFile transcription: {len(clips)} clips, {results[0].audio_s:.1f} s of audio, "
        f"held-out voices; {info['cpu']} ({info['machine']}), {info['date']}"
    )
    header = f"{'engine':28} {'WER':>7} {'time s':>8} {'RTF':>8} {'× edge-asr':>10}   WER by voice"
    print(header)
    print("-" * len(header))
    for r in results:
        voices = ", ".join(f"{g} {w:.1%}" for g, w in r.errors_by_voice.items())
        print(
            f"{r.name:28} {r.wer:>7.1%} {r.seconds:>8.3f} {r.rtf:>8.4f} "
            f"{r.seconds / reference:>10.2f}   {voices}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "machine": info,
                "files": {
                    "clips": len(clips),
                    "phrases": len(PHRASES),
                    "engines": [
                        {
                            "name": r.name,
                            "wer": r.wer,
                            "seconds": r.seconds,
                            "rtf": r.rtf,
                            "ratio_to_edge_asr": r.seconds / reference,
                            "wer_by_voice_group": r.errors_by_voice,
                        }
                        for r in results
                    ],
                },
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwritten: {args.out}")
    return 0


def _vocabulary() -> list[str]:
    path = HERE.parent / "edge_asr" / "training" / "data" / "vocabulary.txt"
    return [line for line in path.read_text().splitlines() if not line.startswith("#")]


if __name__ == "__main__":
    sys.exit(main())
