"""``edge-asr wyoming``: a Wyoming speech-to-text server for Home Assistant and other clients."""

from __future__ import annotations

import argparse
from typing import Any

from edge_asr.cli.services import (
    add_service_arguments,
    bad_setup,
    flags_given,
    load_recognizer,
    missing_extra,
)
from edge_asr.cli.transcribe import positive_int


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
        help="tcp://HOST:PORT or unix://PATH to listen on (default: the setting wyoming.uri, "
        "tcp://127.0.0.1:10300: this machine only; tcp://0.0.0.0:10300 for other machines)",
    )
    parser.add_argument(
        "--no-streaming",
        action="store_true",
        help="send only 'transcript', not transcript-start/-chunk/-stop",
    )
    parser.add_argument(
        "--max-clients",
        type=positive_int,
        metavar="N",
        help="connections at once; more get an error event (default: wyoming.max_clients, 8)",
    )
    add_service_arguments(parser, "wyoming")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    try:
        from edge_asr.service.wyoming import WyomingLimits, WyomingServer, listen_socket
    except ImportError as e:
        return missing_extra("wyoming", "wyoming", e)
    from edge_asr.errors import EdgeAsrError
    from edge_asr.settings import load_settings

    try:
        settings = load_settings(args.config)
        flags = {
            "max_duration_s": args.max_duration,
            "workers": args.workers,
            "max_clients": args.max_clients,
        }
        wyoming = settings.wyoming.model_copy(update=flags_given(flags))
        uri = args.uri or wyoming.uri
        recognizer = load_recognizer(args, settings)
        sock = listen_socket(uri)
    except EdgeAsrError as e:
        return bad_setup(str(e))
    server = WyomingServer(
        recognizer,
        WyomingLimits.from_settings(wyoming),
        streaming=wyoming.streaming and not args.no_streaming,
    )

    async def serve_until_signal() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await server.serve(uri, stopping, sock)

    asyncio.run(serve_until_signal())
    return 0
