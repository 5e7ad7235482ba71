"""``edge-asr wyoming``: a Wyoming speech-to-text server for Home Assistant and other clients."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edge_asr.cli.serve import add_limit_arguments, load_recognizer, model_defaults_from_settings
from edge_asr.cli.transcribe import add_model_arguments, positive_int

EXIT_BAD_SETUP = 2
DEFAULT_URI = "tcp://127.0.0.1:10300"  # this machine only, unless told otherwise


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "wyoming",
        help="run a Wyoming speech-to-text server (Home Assistant)",
        description="Answer Wyoming 'describe' and 'transcribe' + audio requests (needs the "
        "[wyoming] extra). Model settings come from flags > environment "
        "(EDGE_ASR_RECOGNIZER__<KEY>) > --config YAML > defaults.",
    )
    parser.add_argument(
        "--uri",
        default=DEFAULT_URI,
        help=f"tcp://HOST:PORT or unix://PATH to listen on (default: {DEFAULT_URI}; "
        "tcp://0.0.0.0:10300 for other machines)",
    )
    parser.add_argument("--config", type=Path, metavar="YAML", help="settings file (as 'run')")
    parser.add_argument(
        "--no-streaming",
        action="store_true",
        help="send only 'transcript', not transcript-start/-chunk/-stop",
    )
    parser.add_argument(
        "--max-clients",
        type=positive_int,
        default=8,
        metavar="N",
        help="connections at once; more get an error event (default: 8)",
    )
    add_limit_arguments(parser, max_duration_s=60.0)
    add_model_arguments(parser)
    model_defaults_from_settings(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    try:
        from edge_asr.service.wyoming import WyomingLimits, WyomingServer
    except ImportError as e:
        print(
            f"edge-asr: error: 'wyoming' needs the [wyoming] extra ({e.name} is missing): "
            "pip install 'edge-asr[wyoming]'",
            file=sys.stderr,
        )
        return EXIT_BAD_SETUP
    from edge_asr.errors import EdgeAsrError

    try:
        recognizer = load_recognizer(args)
    except EdgeAsrError as e:
        print(f"edge-asr: error: {e}", file=sys.stderr)
        return EXIT_BAD_SETUP
    server = WyomingServer(
        recognizer,
        WyomingLimits(
            max_duration_s=args.max_duration, workers=args.workers, max_clients=args.max_clients
        ),
        streaming=not args.no_streaming,
    )

    async def serve_until_signal() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await server.serve(args.uri, stopping)

    try:
        asyncio.run(serve_until_signal())
    except EdgeAsrError as e:
        print(f"edge-asr: error: {e}", file=sys.stderr)
        return EXIT_BAD_SETUP
    except OSError as e:
        print(f"edge-asr: error: cannot listen on {args.uri}: {e.strerror}", file=sys.stderr)
        return EXIT_BAD_SETUP
    return 0
