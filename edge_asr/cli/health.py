"""``edge-asr health``: exit 0 if the running daemon is healthy, 1 if not (container checks)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "health",
        help="check the running daemon (exit 0 healthy, 1 not)",
        description="Read the daemon's health file and exit 0 if it is healthy, 1 if not. "
        "The state folder comes from --state-dir, else from the same settings as 'run' "
        "(--config, EDGE_ASR_STATE_DIR, defaults).",
    )
    parser.add_argument("--state-dir", type=Path, help="the daemon's state folder")
    parser.add_argument("--config", type=Path, help="settings file the daemon uses")
    parser.add_argument(
        "--max-age",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="health older than this counts as a hung daemon (default: 10)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no output, exit code only")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge_asr.errors import EdgeAsrError
    from edge_asr.service.health import check_health
    from edge_asr.settings import load_settings

    state_dir = args.state_dir
    if state_dir is None:
        try:
            state_dir = load_settings(args.config).resolved_state_dir()
        except EdgeAsrError as e:
            print(f"edge-asr: error: {e}", file=sys.stderr)
            return 1
    healthy, message = check_health(state_dir, args.max_age)
    if not args.quiet:
        print(message, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1
