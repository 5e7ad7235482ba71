"""``edge-asr serve``: the HTTP transcription service (POST audio, get the transcript)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from edge_asr.cli.transcribe import add_model_arguments, positive_int

log = logging.getLogger(__name__)

EXIT_BAD_SETUP = 2
TOKEN_ENV = "EDGE_ASR_HTTP__TOKEN"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the HTTP transcription service",
        description="Serve POST /transcribe, GET /health, /ready and /metrics (needs the "
        "[http] extra). Model settings come from flags > environment "
        "(EDGE_ASR_RECOGNIZER__<KEY>) > --config YAML > defaults.",
    )
    parser.add_argument("--config", type=Path, metavar="YAML", help="settings file (as 'run')")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument("--port", type=port_number, default=8080, help="(default: 8080)")
    parser.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help="require 'Authorization: Bearer <token>' with the token in FILE "
        f"(or in ${TOKEN_ENV}) on /transcribe and /metrics",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=float,
        default=25.0,
        metavar="MB",
        help="refuse larger uploads with 413 (default: 25)",
    )
    parser.add_argument(
        "--max-pending",
        type=positive_int,
        default=8,
        metavar="N",
        help="requests under way at once (uploading, waiting, transcribing); more get 503 "
        "(default: 8)",
    )
    add_limit_arguments(parser)
    add_model_arguments(parser)
    model_defaults_from_settings(parser)
    parser.set_defaults(func=run)


def add_limit_arguments(parser: argparse.ArgumentParser, max_duration_s: float = 300.0) -> None:
    """Options shared by the network services."""
    parser.add_argument(
        "--max-duration",
        type=float,
        default=max_duration_s,
        metavar="SECONDS",
        help=f"refuse longer audio (default: {max_duration_s:g})",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="transcriptions at once; more requests wait (default: 1)",
    )


def model_defaults_from_settings(parser: argparse.ArgumentParser) -> None:
    """Model flags default to None, so that only flags given override the settings."""
    parser.set_defaults(decoding=None, threads=None, provider=None)


def port_number(text: str) -> int:
    """argparse type: a TCP port, 1..65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not in 1..65535")
    return value


def load_recognizer(args: argparse.Namespace) -> Any:
    """The recognizer the flags and settings ask for; EdgeAsrError if it cannot be loaded."""
    from edge_asr.asr.recognizer import Recognizer
    from edge_asr.settings import load_settings

    settings = load_settings(args.config).recognizer
    return Recognizer.load(
        args.model if args.model is not None else settings.model_dir,
        args.threads if args.threads is not None else settings.num_threads,
        args.provider or "CPUExecutionProvider",
        args.decoding or settings.decoding,
        args.sentences if args.sentences is not None else settings.sentences,
    )


def read_token(path: Path | None) -> str | None:
    """The bearer token from a file (first line) or the environment; None for no token."""
    from edge_asr.errors import ConfigError

    if path is not None:
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(f"token file {path}: {e.strerror}") from None
        if not text:
            raise ConfigError(f"token file {path}: is empty")
        return text.splitlines()[0].strip()
    return os.environ.get(TOKEN_ENV, "").strip() or None


def run(args: argparse.Namespace) -> int:
    try:
        from edge_asr.service.http import HttpLimits, build_server, create_app
        from edge_asr.service.metrics import Metrics
    except ImportError as e:
        print(
            f"edge-asr: error: 'serve' needs the [http] extra ({e.name} is missing): "
            "pip install 'edge-asr[http]'",
            file=sys.stderr,
        )
        return EXIT_BAD_SETUP
    from edge_asr.errors import EdgeAsrError

    try:
        token = read_token(args.token_file)
        recognizer = load_recognizer(args)
    except EdgeAsrError as e:
        print(f"edge-asr: error: {e}", file=sys.stderr)
        return EXIT_BAD_SETUP
    limits = HttpLimits(
        max_upload_bytes=int(args.max_upload_mb * 1e6),
        max_duration_s=args.max_duration,
        workers=args.workers,
        max_pending=args.max_pending,
    )
    model = f"{recognizer.model_name} {recognizer.model_version}"
    app = create_app(
        recognizer,
        lambda: (True, f"model {model} loaded"),
        Metrics(daemon=False),
        token=token,
        limits=limits,
    )
    server = build_server(app, args.host, args.port)
    log.info(
        "serving %s on http://%s:%d (%s)",
        model,
        args.host,
        args.port,
        "bearer token required" if token else "no token",
    )
    server.run()
    return 0 if server.started else 1
