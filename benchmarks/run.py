"""``make bench``: measure edge-asr against its peers in one run and print a table per section.

    python -m benchmarks.run [--quick] [--sections files,latency,footprint,memory,precision]
        [--rounds N] [--utterances N] [--idle-seconds S] [--ready-starts N]
        [--daemon-set KEY=VALUE]... [--compare-model DIR]...
        [--out benchmarks/results/latest.json] [--plot PNG]

Sections: ``files`` (edge-asr vs sherpa-onnx vs the floor vs pocketsphinx on the same clips),
``latency`` (end of speech to an MQTT subscriber through a virtual microphone and the daemon),
``footprint`` (start to READY, idle CPU, RSS, image sizes), ``memory`` (the daemon's parts
loaded one at a time: what each adds to RSS), ``precision`` (int8 vs fp32), ``training`` (one
training update in float32 vs ``--bf16``; needs torch).
``--compare-model DIR`` times another bundle (a candidate model, or a pretrained CTC model
dropped in) beside the built-in one in ``files``.
``--quick`` is the smoke run the tests do: a little of each, one round, no pocketsphinx.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.files import (
    PHRASES,
    Clip,
    Transcriber,
    edge_asr_engine,
    floor_engine,
    make_clips,
    pocketsphinx_engine,
    run_files,
    sherpa_engine,
)
from benchmarks.live import Footprint, Latency, footprint_json, latency_json, run_live
from benchmarks.memory import run_memory
from benchmarks.plot import plot
from benchmarks.precision import fp32_missing, run_precision
from benchmarks.training import run_training_steps, shipped_hidden, torch_missing
from edge_asr.asr.bundle import BUILTIN_MODEL_DIR, load_bundle
from edge_asr.errors import BundleError

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


SECTIONS = ("files", "latency", "footprint", "memory", "precision", "training")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: little of everything")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated, from {', '.join(SECTIONS)} (default: all)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument(
        "--utterances", type=int, default=32, help="latency: utterances played (default 32)"
    )
    parser.add_argument(
        "--idle-seconds", type=float, default=60.0, help="footprint: silence timed (default 60)"
    )
    parser.add_argument(
        "--ready-starts", type=int, default=3, help="footprint: daemon starts timed (default 3)"
    )
    parser.add_argument(
        "--daemon-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="latency, footprint: a daemon setting, e.g. audio.block_ms=32 (repeatable)",
    )
    parser.add_argument(
        "--compare-model",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="files: also time this model bundle beside the built-in one, greedy and (with a "
        "words.txt) vocabulary-constrained (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    parser.add_argument("--plot", type=Path, help="PNG to draw (default: --out with .png)")
    parser.add_argument("--cache", type=Path, default=HERE / ".cache")
    args = parser.parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # tables appear as sections finish
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; pick from {SECTIONS}")
    for bundle in args.compare_model:
        try:
            load_bundle(bundle)
        except BundleError as err:
            parser.error(f"--compare-model: {err}")
    if args.quick:
        args.rounds, args.utterances = 1, min(args.utterances, 3)
        args.idle_seconds, args.ready_starts = min(args.idle_seconds, 5.0), 1

    clips = make_clips(args.cache)
    if args.quick:
        clips = clips[:: max(1, len(clips) // 6)]
    info = machine_info()
    print(f"{info['cpu']} ({info['machine']}, {info['cores']} cores), {info['date']}")
    report: dict[str, object] = {"machine": info, "daemon_settings": args.daemon_set}
    if "files" in sections:
        report["files"] = files_section(
            clips, args.rounds, pocketsphinx=not args.quick, others=args.compare_model
        )
    if "latency" in sections or "footprint" in sections:
        latency, footprint = run_live(
            clips,
            args.utterances if "latency" in sections else 0,
            args.idle_seconds if "footprint" in sections else 0,
            args.ready_starts,
            args.daemon_set,
        )
        if latency is not None:
            report["latency"] = print_latency(latency)
        if footprint is not None:
            report["footprint"] = print_footprint(footprint)
    if "memory" in sections:
        report["memory"] = memory_section()
    if "precision" in sections:
        report["precision"] = precision_section(clips, args.rounds)
    if "training" in sections:
        report["training"] = training_section(args.rounds, updates=3 if args.quick else 20)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten: {args.out}")
    if "files" in report or "latency" in report:
        try:
            print(f"plot: {plot(report, args.plot or args.out.with_suffix('.png'))}")
        except ImportError:
            print("matplotlib not installed (pip install -e '.[bench]'): no plot", file=sys.stderr)
    return 0


def files_section(
    clips: list[Clip], rounds: int, pocketsphinx: bool, others: Sequence[Path] = ()
) -> dict[str, object]:
    words = sorted({w for line in _vocabulary() for w in line.split()})
    engines: dict[str, Transcriber] = {
        "edge-asr (greedy)": edge_asr_engine("greedy"),
        "edge-asr (vocabulary)": edge_asr_engine("vocabulary"),
    }
    for other in others:
        engines[f"{other} (greedy)"] = edge_asr_engine("greedy", other)
        if (other / "words.txt").is_file():
            engines[f"{other} (vocabulary)"] = edge_asr_engine("vocabulary", other)
    engines |= {
        "sherpa-onnx (greedy)": sherpa_engine(),
        "sherpa-onnx (greedy) + context": sherpa_engine(context=True),
        "floor (context+fbank+ORT+argmax)": floor_engine(),
    }
    if pocketsphinx:
        try:
            engines["pocketsphinx (JSGF)"] = pocketsphinx_engine(words)
        except ImportError:
            print("pocketsphinx not installed: skipped", file=sys.stderr)
    results = run_files(clips, engines, rounds)
    reference = results[0].seconds
    print(
        f"\nFile transcription: {len(clips)} clips, {results[0].audio_s:.1f} s of audio, "
        f"held-out voices, best of {rounds} interleaved round(s)"
    )
    width = max(len(r.name) for r in results)
    header = (
        f"{'engine':{width}} {'WER':>7} {'time s':>8} {'RTF':>8} {'× edge-asr':>10}   WER by voice"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        voices = ", ".join(f"{g} {w:.1%}" for g, w in r.errors_by_voice.items())
        print(
            f"{r.name:{width}} {r.wer:>7.1%} {r.seconds:>8.3f} {r.rtf:>8.4f} "
            f"{r.seconds / reference:>10.2f}   {voices}"
        )
    return {
        "clips": len(clips),
        "phrases": len(PHRASES),
        "rounds": rounds,
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
    }


def print_latency(latency: Latency) -> dict[str, object]:
    data = latency_json(latency)
    print(
        f"\nLatency: end of speech → subscriber has the final transcript (PulseAudio virtual "
        f"mic → edge-asr run → mosquitto), {data['received']} of {data['utterances']} "
        f"utterances answered"
    )
    if not latency.samples:
        print("no final transcript arrived")
        return data
    rows: list[tuple[str, ...]] = [
        ("p50", f"{data['p50_ms']:.0f} ms"),
        ("p95", f"{data['p95_ms']:.0f} ms", f"goal ≤ hangover + 100 = {data['goal_p95_ms']} ms"),
        ("max", f"{data['max_ms']:.0f} ms"),
        (
            "VAD hangover",
            f"{data['hangover_ms']} ms",
            f"counted in 32 ms frames: {data['hangover_frames_ms']:.0f} ms",
        ),
        (
            "beyond hangover p50 / p95",
            f"{data['beyond_hangover_p50_ms']:.0f} / {data['beyond_hangover_p95_ms']:.0f} ms",
        ),
        (
            "  VAD still hearing speech",
            f"{data['vad_release_after_speech_p50_ms']:.0f} ms",
            "p50, after the speech ended (Silero's tail)",
        ),
        (
            "  then blocks+ASR+MQTT",
            f"{data['after_hangover_end_p50_ms']:.0f} ms",
            "p50, after the hangover ran out",
        ),
        ("recognizer processing p50", f"{data['processing_p50_ms']:.1f} ms"),
        ("WER through the microphone", f"{data['wer']:.1%}"),
    ]
    for row in rows:
        print(f"{row[0]:28} {row[1]:>12}   {row[2] if len(row) > 2 else ''}")
    return data


def print_footprint(footprint: Footprint) -> dict[str, object]:
    data = footprint_json(footprint)
    print(f"\nFootprint of edge-asr run (x{len(footprint.ready_s)} start(s))")
    rows: list[tuple[str, ...]] = [
        (
            "start → READY=1 (median)",
            f"{data['ready_median_s']:.2f} s",
            f"goal ≤ 2 s; max {data['ready_max_s']:.2f} s",
        ),
        (
            f"idle CPU over {footprint.idle_seconds:.0f} s silence",
            f"{footprint.idle_cpu_percent:.2f} %",
            "of one core; goal ≤ 2 %",
        ),
        ("RSS idle", f"{footprint.idle_rss_mb:.0f} MB", "goal ≤ 120 MB"),
    ]
    if footprint.rss_after_speech_mb is not None:
        rows.append(
            (
                "RSS after the utterances",
                f"{footprint.rss_after_speech_mb:.0f} MB",
                f"peak {footprint.peak_rss_mb:.0f} MB",
            )
        )
    images = footprint.images
    if isinstance(images, str):
        rows.append(("docker images", images))
    else:  # the build's own tags; other tags (dry runs) are in the JSON only
        shown = {n: s for n, s in images.items() if ":local-" in n} or images
        rows += [(f"image {name}", size) for name, size in shown.items()]
    for row in rows:
        print(f"{row[0]:28} {row[1]:>12}   {row[2] if len(row) > 2 else ''}")
    return data


def memory_section() -> dict[str, object]:
    print("\nMemory: the daemon's parts loaded one at a time in a fresh process (RSS)")
    steps = run_memory()
    for step in steps:
        note = f"   failed: {step.error}" if step.error else ""
        print(f"{step.label:40} {step.added_mb:+8.1f} MB {step.rss_mb:8.1f} MB{note}")
    return {"steps": [vars(step) for step in steps]}


def precision_section(clips: list[Clip], rounds: int) -> dict[str, object]:
    print("\nint8 vs fp32: the same model, greedy decoding, the file clips")
    missing = fp32_missing()
    if missing is not None:
        print(f"skipped: {missing}")
        return {"skipped": missing}
    rows = run_precision(clips, rounds)
    reference = rows[0].result.seconds
    header = f"{'model':16} {'size MB':>8} {'WER':>7} {'time s':>8} {'RTF':>8} {'× int8':>7}"
    print(header)
    print("-" * len(header))
    for row in rows:
        r = row.result
        print(
            f"{row.name:16} {row.size_mb:>8.2f} {r.wer:>7.1%} {r.seconds:>8.3f} "
            f"{r.rtf:>8.4f} {r.seconds / reference:>7.2f}"
        )
    return {
        "clips": len(clips),
        "rounds": rounds,
        "models": [
            {
                "name": row.name,
                "file": str(row.file.relative_to(HERE.parent)),
                "size_mb": row.size_mb,
                "wer": row.result.wer,
                "seconds": row.result.seconds,
                "rtf": row.result.rtf,
                "ratio_to_int8": row.result.seconds / reference,
                "wer_by_voice_group": row.result.errors_by_voice,
            }
            for row in rows
        ],
    }


def training_section(rounds: int, updates: int) -> dict[str, object]:
    print(
        "\nTraining: one update of the built-in model's network, float32 vs --bf16 "
        "(and --bf16 --time-reduction 2)"
    )
    missing = torch_missing()
    if missing is not None:
        print(f"skipped: {missing}")
        return {"skipped": missing}
    from edge_asr.training.train import native_bf16

    hidden = shipped_hidden(BUILTIN_MODEL_DIR)
    rows = run_training_steps(rounds, updates, hidden)
    reference = rows[0].median
    native = native_bf16()
    print(f"network: LSTM {hidden} per direction (the built-in model's width)")
    print(f"native bfloat16 on this CPU: {'yes' if native else 'no (bf16 is emulated)'}")
    header = f"{'precision':10} {'updates':>8} {'median s':>9} {'min s':>7} {'× fp32':>7}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row.mode:10} {len(row.seconds):>8} {row.median:>9.3f} {min(row.seconds):>7.3f} "
            f"{row.median / reference:>7.2f}"
        )
    return {
        "rounds": rounds,
        "hidden": hidden,
        "native_bf16": native,
        "modes": [
            {
                "mode": row.mode,
                "seconds": row.seconds,
                "median_s": row.median,
                "ratio_to_fp32": row.median / reference,
            }
            for row in rows
        ],
    }


def _vocabulary() -> list[str]:
    path = HERE.parent / "edge_asr" / "training" / "data" / "vocabulary.txt"
    return [line for line in path.read_text().splitlines() if not line.startswith("#")]


if __name__ == "__main__":
    sys.exit(main())
