"""What the standalone network services (``serve``, ``wyoming``) share: their options, the
model they load, and how they report a bad setup."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from edge_asr.cli.transcribe import add_model_arguments, positive_int

if TYPE_CHECKING:
    from edge_asr.asr.recognizer import Recognizer
    from edge_asr.settings import Settings

EXIT_BAD_SETUP = 2
T = TypeVar("T")


def add_service_arguments(parser: argparse.ArgumentParser, section: str) -> None:
    """--config, the limits and the model options; flags given override the settings."""
    parser.add_argument("--config", type=Path, metavar="YAML", help="settings file (as 'run')")
    parser.add_argument(
        "--max-duration",
        type=float,
        metavar="SECONDS",
        help=f"refuse longer audio (default: the setting {section}.max_duration_s)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        help=f"transcriptions at once; more requests wait (default: {section}.workers, 1)",
    )
    add_model_arguments(parser)
    # Model flags default to None, so that only flags given override the settings.
    parser.set_defaults(decoding=None, threads=None, provider=None)


def given(flag: T | None, setting: T) -> T:
    """A flag's value if it was given, else the setting's."""
    return setting if flag is None else flag


def flags_given(flags: dict[str, Any]) -> dict[str, Any]:
    """The flags given (not None), by setting name: an update for a settings section."""
    return {key: value for key, value in flags.items() if value is not None}


def port_number(text: str) -> int:
    """argparse type: a TCP port, 1..65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not in 1..65535")
    return value


def load_recognizer(args: argparse.Namespace, settings: Settings) -> Recognizer:
    """The recognizer the flags and settings ask for; EdgeAsrError if it cannot be loaded."""
    from edge_asr.asr.recognizer import Recognizer

    rec = settings.recognizer
    return Recognizer.load(
        given(args.model, rec.model_dir),
        given(args.threads, rec.num_threads),
        given(args.provider, rec.provider),
        given(args.decoding, rec.decoding),
        given(args.sentences, rec.sentences),
    )


def bad_setup(message: str) -> int:
    """Say what is wrong in one line; the exit code of a bad setup."""
    print(f"edge-asr: error: {message}", file=sys.stderr)
    return EXIT_BAD_SETUP


def missing_extra(command: str, extra: str, error: ImportError) -> int:
    return bad_setup(
        f"'{command}' needs the [{extra}] extra ({error.name} is missing): "
        f"pip install 'edge-asr[{extra}]'"
    )
