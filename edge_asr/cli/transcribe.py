"""``edge-asr transcribe FILE…``: recognize audio files, as text or one JSON object per file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_BAD_FILE = 1
EXIT_BAD_SETUP = 2


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "transcribe",
        help="transcribe audio files",
        description="Transcribe audio files (any format and rate libsndfile reads).",
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="audio files")
    parser.add_argument("--json", action="store_true", help="print one JSON object per file")
    add_model_arguments(parser)
    parser.add_argument(
        "--max-duration",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="reject files longer than this (default: 3600)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: for several files on a terminal)",
    )
    parser.set_defaults(func=run, default_log_level="WARNING")


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is less than 1")
    return value


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that choose and tune the model; shared by commands that recognize speech."""
    parser.add_argument(
        "--model", type=Path, metavar="DIR", help="model bundle folder (default: built-in)"
    )
    parser.add_argument(
        "--sentences",
        type=Path,
        metavar="FILE",
        help="only recognize sentences of this file (see README: sentences files)",
    )
    parser.add_argument(
        "--decoding",
        choices=["greedy", "vocabulary", "sentences"],
        default="vocabulary",
        help="greedy: anything; vocabulary: the model's word list; sentences: --sentences "
        "(default: vocabulary, or sentences when --sentences is given)",
    )
    parser.add_argument(
        "--threads", type=positive_int, default=1, help="onnxruntime threads (default: 1)"
    )
    parser.add_argument(
        "--provider",
        default="CPUExecutionProvider",
        help="onnxruntime execution provider (default: CPUExecutionProvider)",
    )


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from edge_asr.asr.recognizer import Recognizer
    from edge_asr.audio.files import read_audio
    from edge_asr.errors import EdgeAsrError

    try:
        recognizer = Recognizer.load(
            args.model, args.threads, args.provider, args.decoding, args.sentences
        )
    except EdgeAsrError as e:
        print(f"edge-asr: error: {e}", file=sys.stderr)
        return EXIT_BAD_SETUP

    failed = 0
    many = len(args.files) > 1
    show_progress = args.progress if args.progress is not None else many and sys.stderr.isatty()
    bar = tqdm(
        args.files,
        unit="file",
        disable=not show_progress,
        file=sys.stderr,
        leave=False,
    )
    for path in bar:
        try:
            audio = read_audio(path, args.max_duration)
            result = recognizer.transcribe(audio.samples, audio.sample_rate)
        except EdgeAsrError as e:
            failed += 1
            bar.write(f"edge-asr: error: {e}", file=sys.stderr)
            continue
        if args.json:
            record: dict[str, Any] = {
                "file": str(path),
                "text": result.text,
                "confidence": result.confidence,
                "duration_s": result.duration_s,
                "processing_ms": result.processing_ms,
            }
            if result.intent is not None:
                record["intent"] = result.intent
            line = json.dumps(record, ensure_ascii=False)
        else:
            line = f"{path}: {result.text}" if many else result.text
        bar.write(line, file=sys.stdout)
    return EXIT_BAD_FILE if failed else 0
