"""``edge-asr run``: the always-on daemon (microphone → VAD → recognizer → MQTT)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from edge_asr.errors import ConfigError, EdgeAsrError

log = logging.getLogger(__name__)

EXIT_ERROR = 1
EXIT_CONFIG = 2

# flag dest -> settings key; only flags given on the command line become overrides.
_FLAG_KEYS = {
    "source": "audio.source",
    "device": "audio.device",
    "site_id": "site_id",
    "state_dir": "state_dir",
    "model_dir": "recognizer.model_dir",
    "decoding": "recognizer.decoding",
    "sentences": "recognizer.sentences",
    "mqtt_host": "mqtt.host",
    "mqtt_port": "mqtt.port",
}


class StopSignals:
    """What a stop signal asks for: ``"stop"`` (finish the utterance in progress, then exit),
    ``"now"`` or ``"ignore"`` (a stop is already under way).

    Only a second Ctrl-C means "now": a SIGINT after an earlier SIGINT. One Ctrl-C in a
    terminal reaches the whole process group, so a wrapper (``make run``'s script) that
    passes it on as TERM gives the daemon both signals in either order; neither order may
    cut the graceful stop short, and nor may a TERM from systemd while stopping.
    """

    def __init__(self) -> None:
        self._interrupts = 0

    def on(self, signum: int, stopping: bool) -> Literal["stop", "now", "ignore"]:
        if signum == signal.SIGINT:
            self._interrupts += 1
        if not stopping:
            return "stop"
        return "now" if signum == signal.SIGINT and self._interrupts > 1 else "ignore"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the always-on recognizer daemon",
        description="Listen on a microphone (or file, or stdin), detect utterances, recognize "
        "them and publish transcripts over MQTT. Settings come from flags > environment "
        "(EDGE_ASR_<SECTION>__<KEY>) > --config YAML > defaults.",
    )
    add_settings_arguments(parser)
    parser.add_argument(
        "--validate-config",
        action="store_true",
        help="check the settings and exit (0 if valid, 2 if not)",
    )
    parser.add_argument(
        "--example-config",
        action="store_true",
        help="print a YAML file with every setting, its default and description, and exit",
    )
    parser.add_argument("--source", help="mic | file:PATH | stdin")
    parser.add_argument("--device", help="input device index or name (see 'edge-asr devices')")
    parser.add_argument("--state-dir", type=Path, help="folder for state kept across restarts")
    parser.add_argument(
        "--model",
        "--model-dir",
        dest="model_dir",
        type=Path,
        metavar="DIR",
        help="model bundle folder (default: built-in)",
    )
    parser.add_argument("--decoding", help="greedy | vocabulary | sentences")
    parser.add_argument("--sentences", type=Path, help="sentences file for 'sentences' decoding")
    parser.add_argument(
        "--no-mqtt", action="store_true", help="do not publish to MQTT (mqtt.enabled=false)"
    )
    parser.add_argument(
        "--stdout", action="store_true", help="print final transcripts as JSON lines"
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help="read file sources as fast as possible instead of in real time",
    )
    parser.set_defaults(func=run)


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """The settings flags every command that works with the daemon's settings takes:
    --config, --site-id, --mqtt-host, --mqtt-port and --set (read by ``settings_overrides``)."""
    parser.add_argument("--config", type=Path, metavar="YAML", help="settings file")
    parser.add_argument("--site-id", help="this device's name in topics and messages")
    parser.add_argument("--mqtt-host", help="MQTT broker host")
    parser.add_argument("--mqtt-port", type=int, help="MQTT broker port")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any setting by its dotted key, e.g. --set vad.hangover_ms=500 (repeatable)",
    )


def settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the command line gives (flags and --set), as a nested dict."""
    import yaml

    flat: dict[str, Any] = {}
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. vad.threshold=0.6")
        try:
            flat[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            flat[key.strip()] = raw
    for dest, key in _FLAG_KEYS.items():
        value = getattr(args, dest, None)
        if value is not None:
            flat[key] = value
    if getattr(args, "no_mqtt", False):
        flat["mqtt.enabled"] = False
    if getattr(args, "stdout", False):
        flat["output.stdout"] = True
    if getattr(args, "fast", False):
        flat["audio.realtime"] = False
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *sections, leaf = key.split(".")
        target = nested
        for section in sections:
            child = target.setdefault(section, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {section} is a value, not a section")
            target = child
        target[leaf] = value
    return nested


def run(args: argparse.Namespace) -> int:
    from edge_asr.settings import example_yaml, load_settings

    if args.example_config:
        sys.stdout.write(example_yaml())
        return 0
    try:
        settings = load_settings(args.config, settings_overrides(args))
    except ConfigError as err:
        print(f"edge-asr: {err}", file=sys.stderr)
        return EXIT_CONFIG
    if args.validate_config:
        print("edge-asr: settings are valid")
        return 0

    from edge_asr.app import build_daemon

    try:
        daemon = build_daemon(settings, stdout=sys.stdout)
    except ConfigError as err:
        print(f"edge-asr: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except EdgeAsrError as err:
        print(f"edge-asr: {err}", file=sys.stderr)
        return EXIT_ERROR

    stop_signals = StopSignals()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        action = stop_signals.on(signum, daemon.stopping)
        if action == "stop":
            log.info("%s: finishing the current utterance and stopping", name)
            daemon.request_stop()
        elif action == "now":
            log.warning("second SIGINT: exiting now")
            os._exit(128 + signum)
        else:
            log.info("%s: already stopping", name)

    def on_hangup(signum: int, frame: FrameType | None) -> None:
        log.info("SIGHUP: reloading the sentences file")
        daemon.request_reload()  # in a thread: capture goes on meanwhile

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hangup)
    try:
        daemon.run()
    except EdgeAsrError as err:
        print(f"edge-asr: {err}", file=sys.stderr)
        return EXIT_ERROR
    log.info("stopped")
    return 0
