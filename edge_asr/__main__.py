"""The ``edge-asr`` command line: parse arguments, hand over to the subcommand's module."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from edge_asr import __version__
from edge_asr.memory import return_large_buffers

# subcommand -> module with ``add_parser(subparsers)`` that sets ``func`` on its parser.
SUBCOMMANDS = {
    "transcribe": "edge_asr.cli.transcribe",
    "run": "edge_asr.cli.run",
    "devices": "edge_asr.cli.devices",
    "health": "edge_asr.cli.health",
    "serve": "edge_asr.cli.serve",
    "wyoming": "edge_asr.cli.wyoming",
    "ha": "edge_asr.cli.ha",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-asr", description="Offline speech recognition for small Linux boxes."
    )
    parser.add_argument("--version", action="version", version=f"edge-asr {__version__}")
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging verbosity (default: INFO; WARNING for commands whose output is the "
        "result, like transcribe)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMANDS.values():
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    return_large_buffers()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level or getattr(args, "default_log_level", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
