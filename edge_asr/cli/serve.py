"""``edge-asr serve``: the HTTP transcription service (POST audio, get the transcript)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from edge_asr.cli.services import (
    add_service_arguments,
    bad_setup,
    flags_given,
    load_recognizer,
    missing_extra,
    port_number,
)
from edge_asr.cli.transcribe import positive_int

log = logging.getLogger(__name__)

TOKEN_ENV = "EDGE_ASR_HTTP__TOKEN"  # read as the setting http.token


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the HTTP transcription service",
        description="Serve POST /transcribe, GET /health, /ready and /metrics (needs the "
        "[http] extra). Settings come from flags > environment (EDGE_ASR_RECOGNIZER__<KEY>, "
        "EDGE_ASR_HTTP__<KEY>) > --config YAML > defaults.",
    )
    parser.add_argument("--host", help="address to listen on (default: http.host, 127.0.0.1)")
    parser.add_argument("--port", type=port_number, help="(default: http.port, 8080)")
    parser.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help="require 'Authorization: Bearer <token>' with the token in FILE "
        f"(default: http.token_file, or ${TOKEN_ENV}) on /transcribe and /metrics",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=float,
        metavar="MB",
        help="refuse larger uploads with 413 (default: http.max_upload_mb, 25)",
    )
    parser.add_argument(
        "--max-pending",
        type=positive_int,
        metavar="N",
        help="requests under way at once (uploading, waiting, transcribing); more get 503 "
        "(default: http.max_pending, 8)",
    )
    add_service_arguments(parser, "http")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from edge_asr.service.http import HttpLimits, bind_socket, build_server, create_app
        from edge_asr.service.metrics import Metrics
    except ImportError as e:
        return missing_extra("serve", "http", e)
    from edge_asr.errors import EdgeAsrError
    from edge_asr.settings import load_settings

    try:
        settings = load_settings(args.config)
        http = settings.http
        if args.token_file is not None:
            http = http.model_copy(update={"token": None, "token_file": args.token_file})
        host = args.host or http.host
        port = args.port or http.port
        token = http.read_token()
        recognizer = load_recognizer(args, settings)
        sock = bind_socket(host, port)
    except EdgeAsrError as e:
        return bad_setup(str(e))
    flags = {
        "max_upload_mb": args.max_upload_mb,
        "max_duration_s": args.max_duration,
        "workers": args.workers,
        "max_pending": args.max_pending,
    }
    limits = HttpLimits.from_settings(http.model_copy(update=flags_given(flags)))
    model = f"{recognizer.model_name} {recognizer.model_version}"
    app = create_app(
        recognizer,
        lambda: (True, f"model {model} loaded"),
        Metrics(daemon=False),
        token=token,
        limits=limits,
    )
    server = build_server(app, host, port)
    log.info(
        "serving %s on http://%s:%d (%s)",
        model,
        host,
        port,
        "bearer token required" if token else "no token",
    )
    server.run(sockets=[sock])
    return 0 if server.started else 1
