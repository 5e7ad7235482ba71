"""``edge-asr ha``: show or remove the Home Assistant discovery configs of a site."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import TYPE_CHECKING, Any

from edge_asr.cli.run import add_settings_arguments, settings_overrides

if TYPE_CHECKING:
    from edge_asr.settings import Settings

EXIT_ERROR = 1
EXIT_CONFIG = 2
CONNECT_TIMEOUT_S = 10.0
PUBLISH_TIMEOUT_S = 10.0


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "ha",
        help="show or remove the Home Assistant discovery configs",
        description="--print shows the discovery configs the daemon publishes (no broker "
        "needed); --remove clears them, and the retained entity states, with empty retained "
        "messages, so the device leaves Home Assistant. Stop the daemon (or set "
        "homeassistant.enabled: false) first, or it publishes them again on its next connect. "
        "Settings as for 'run': flags > environment > --config YAML > defaults.",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument(
        "--remove", action="store_true", help="clear the site's discovery configs and states"
    )
    action.add_argument(
        "--print", action="store_true", help="print each config topic and payload, and exit"
    )
    add_settings_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge_asr.errors import ConfigError
    from edge_asr.mqtt.discovery import HaTopics, device_name, discovery_configs
    from edge_asr.mqtt.topics import Topics
    from edge_asr.settings import load_settings

    try:
        settings = load_settings(args.config, settings_overrides(args))
    except ConfigError as err:
        print(f"edge-asr: {err}", file=sys.stderr)
        return EXIT_CONFIG
    ha = HaTopics(
        Topics(settings.mqtt.base_topic, settings.site_id), settings.homeassistant.discovery_prefix
    )
    if args.print:
        configs = discovery_configs(ha, device_name(settings.homeassistant, settings.site_id))
        for topic, config in configs.items():
            print(topic, json.dumps(config, ensure_ascii=False))
        return 0
    try:
        removed = _remove(settings, ha.retained())
    except (ConfigError, OSError, RuntimeError) as err:
        print(f"edge-asr: {err}", file=sys.stderr)
        return EXIT_ERROR
    print(f"removed {removed} retained messages of site {settings.site_id!r} from Home Assistant")
    return 0


def _remove(settings: Settings, topics: list[str]) -> int:
    """Publish an empty retained message on each topic; wait for the broker to take them."""
    from edge_asr.mqtt.client import make_client

    mqtt_settings = settings.mqtt
    # Its own client id: reusing the daemon's would disconnect a running daemon.
    client = make_client(mqtt_settings, f"edge-asr-{settings.site_id}-ha-remove")
    connected = threading.Event()
    refused: list[str] = []

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            refused.append(str(reason))
        connected.set()

    def on_connect_fail(client: Any, userdata: Any) -> None:
        connected.set()  # without a reason: unreachable

    client.on_connect = on_connect
    client.on_connect_fail = on_connect_fail
    client.connect_async(mqtt_settings.host, mqtt_settings.port, keepalive=30)
    client.loop_start()
    try:
        if not connected.wait(CONNECT_TIMEOUT_S) or not (refused or client.is_connected()):
            raise RuntimeError(
                f"cannot reach the MQTT broker {mqtt_settings.host}:{mqtt_settings.port}"
            )
        if refused:
            raise RuntimeError(f"the MQTT broker refused the connection: {refused[0]}")
        infos = [client.publish(topic, b"", qos=1, retain=True) for topic in topics]
        for info in infos:
            info.wait_for_publish(PUBLISH_TIMEOUT_S)
            if not info.is_published():
                raise RuntimeError("the MQTT broker did not acknowledge the removal in time")
        return len(infos)
    finally:
        client.disconnect()
        client.loop_stop()
