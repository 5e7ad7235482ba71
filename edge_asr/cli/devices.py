"""``edge-asr devices``: list audio input devices and their native sample rates."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from edge_asr.errors import EdgeAsrError


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "devices",
        help="list audio input devices",
        description="List input devices (index, name, host API, channels, native rate); "
        "'*' marks the default. Use the index or name with 'edge-asr run --device'.",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge_asr.audio.capture import describe_devices, list_input_devices

    try:
        devices = list_input_devices()
    except EdgeAsrError as err:
        print(f"edge-asr: {err}", file=sys.stderr)
        return 1
    print(describe_devices(devices))
    return 0 if devices else 1
