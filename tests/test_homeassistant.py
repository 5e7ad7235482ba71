"""Home Assistant MQTT discovery: configs checked against HA's documented options, entity
states from a real daemon on a real mosquitto, the Listening switch, rediscovery when HA comes
online, and ``edge-asr ha --remove``."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, Broker, Daemon, Subscriber, wait_until
from messages import transcript

from edge_asr.app import DaemonState
from edge_asr.mqtt.discovery import (
    ENTITIES,
    HA_STATE_MAX,
    HaTopics,
    HomeAssistantDiscovery,
    discovery_configs,
    event_payload,
)
from edge_asr.mqtt.topics import Topics

# What HA's MQTT docs (home-assistant.io/integrations/<platform>.mqtt) list per platform.
REQUIRED = {
    "event": {"state_topic", "event_types"},
    "sensor": {"state_topic"},
    "binary_sensor": {"state_topic"},
    "switch": {"command_topic"},
}
COMMON_OPTIONS = {
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "default_entity_id",
    "device",
    "enabled_by_default",
    "encoding",
    "entity_category",
    "entity_picture",
    "icon",
    "json_attributes_template",
    "json_attributes_topic",
    "name",
    "object_id",
    "origin",
    "payload_available",
    "payload_not_available",
    "qos",
    "unique_id",
}
PLATFORM_OPTIONS = {
    "event": {"state_topic", "event_types", "value_template", "device_class"},
    "sensor": {
        "state_topic",
        "value_template",
        "device_class",
        "state_class",
        "unit_of_measurement",
        "expire_after",
        "force_update",
        "last_reset_value_template",
        "suggested_display_precision",
        "options",
    },
    "binary_sensor": {
        "state_topic",
        "value_template",
        "device_class",
        "payload_on",
        "payload_off",
        "expire_after",
        "force_update",
        "off_delay",
    },
    "switch": {
        "command_topic",
        "command_template",
        "state_topic",
        "value_template",
        "device_class",
        "payload_on",
        "payload_off",
        "state_on",
        "state_off",
        "optimistic",
        "retain",
    },
}
DEVICE_OPTIONS = {
    "configuration_url",
    "connections",
    "hw_version",
    "identifiers",
    "manufacturer",
    "model",
    "model_id",
    "name",
    "serial_number",
    "suggested_area",
    "sw_version",
    "via_device",
}
ORIGIN_OPTIONS = {"name", "sw_version", "support_url"}
AVAILABILITY_OPTIONS = {"topic", "value_template", "payload_available", "payload_not_available"}
SAFE_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def check_discovery_config(topic: str, config: dict[str, Any]) -> None:
    """Fail with the reason if ``config`` (on ``topic``) is not what HA's docs accept."""
    prefix, platform, node_id, object_id, last = topic.split("/")
    assert (prefix, last) == ("homeassistant", "config"), topic
    assert platform in REQUIRED, f"{topic}: platform {platform} not expected"
    assert set(node_id) <= SAFE_ID_CHARS and set(object_id) <= SAFE_ID_CHARS, topic
    missing = REQUIRED[platform] - set(config)
    assert not missing, f"{topic}: required {sorted(missing)} missing"
    unknown = set(config) - COMMON_OPTIONS - PLATFORM_OPTIONS[platform]
    assert not unknown, f"{topic}: options HA does not document: {sorted(unknown)}"
    # The device registry needs unique_id and identifiers or connections.
    assert config["unique_id"], topic
    device = config["device"]
    assert device.get("identifiers") or device.get("connections"), topic
    assert set(device) <= DEVICE_OPTIONS, f"{topic}: device {sorted(set(device))}"
    assert config["origin"]["name"] and set(config["origin"]) <= ORIGIN_OPTIONS, topic
    for item in config["availability"]:
        assert item["topic"] and set(item) <= AVAILABILITY_OPTIONS, topic
    if platform == "event":
        assert config["event_types"] and all(isinstance(t, str) for t in config["event_types"])
    if "entity_category" in config:
        assert config["entity_category"] in ("config", "diagnostic"), topic
    for key in ("state_topic", "command_topic", "json_attributes_topic"):
        if key in config:
            assert "+" not in config[key] and "#" not in config[key], topic


def render(template: str, payload: dict[str, Any]) -> str:
    """A value template as HA renders it (Jinja with ``value_json``)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment().from_string(template).render(value_json=payload)


KITCHEN = HaTopics(Topics("edge-asr", "kitchen"), "homeassistant")


# --- payloads, without a broker -------------------------------------------------------


def test_every_discovery_config_has_what_home_assistant_requires() -> None:
    configs = discovery_configs(KITCHEN, "edge-asr kitchen")
    assert len(configs) == len(ENTITIES) == 6
    platforms = sorted(topic.split("/")[1] for topic in configs)
    assert platforms == ["binary_sensor", "event", "sensor", "sensor", "sensor", "switch"]
    for topic, config in configs.items():
        check_discovery_config(topic, config)
        assert config["availability"][0]["topic"] == "edge-asr/kitchen/status"
        assert config["device"]["identifiers"] == ["edge_asr_kitchen"]


def test_the_config_check_catches_a_missing_required_key() -> None:
    topic, config = next(iter(discovery_configs(KITCHEN, "x").items()))
    broken = {k: v for k, v in config.items() if k != "event_types"}
    with pytest.raises(AssertionError, match="event_types"):
        check_discovery_config(topic, broken)
    with pytest.raises(AssertionError, match="stat_topic"):
        check_discovery_config(topic, {**config, "stat_topic": "x"})


def test_unique_ids_are_stable_per_site_and_differ_between_sites() -> None:
    def ids(ha: HaTopics) -> list[str]:
        return [c["unique_id"] for c in discovery_configs(ha, "any name").values()]

    kitchen = ids(KITCHEN)
    assert kitchen == ids(HaTopics(Topics("other-base", "kitchen"), "homeassistant"))
    assert len(set(kitchen)) == len(kitchen)
    hall = ids(HaTopics(Topics("edge-asr", "hall"), "homeassistant"))
    assert not set(kitchen) & set(hall)
    dotted = HaTopics(Topics("edge-asr", "flat.2"), "homeassistant")
    for topic in discovery_configs(dotted, "x"):
        check_discovery_config(topic, discovery_configs(dotted, "x")[topic])


def test_templates_render_the_states_home_assistant_expects() -> None:
    configs = {t.split("/")[3]: c for t, c in discovery_configs(KITCHEN, "x").items()}
    long_text = "turn on the light " * 30
    state = render(configs["last_transcript"]["value_template"], {"text": long_text})
    assert state == long_text[:HA_STATE_MAX] and len(state) == HA_STATE_MAX
    assert render(configs["last_transcript"]["value_template"], {"text": "hi"}) == "hi"
    speech, listening = configs["speech"]["value_template"], configs["listening"]["value_template"]
    assert render(speech, {"listening": True, "speaking": True}) == "ON"
    assert render(speech, {"listening": True, "speaking": False}) == "OFF"
    assert render(listening, {"listening": False, "speaking": False}) == "OFF"
    assert render(listening, {"listening": True, "speaking": False}) == "ON"
    availability = configs["speech"]["availability"][0]["value_template"]
    assert render(availability, {"state": "offline"}) == "offline"
    assert render(configs["spool_depth"]["value_template"], {"spool_depth": 3}) == "3"


def test_event_payload_names_the_event_type_and_carries_the_text() -> None:
    fired = event_payload(transcript("what time is it"))
    assert fired["event_type"] == "transcript" and fired["text"] == "what time is it"
    assert fired["seq"] == 1 and fired["confidence"] == 0.9
    assert event_payload(transcript("  "))["event_type"] == "unrecognized"


class FakePublisher:
    def __init__(self) -> None:
        self.connected = True
        self.published: list[tuple[str, bytes, bool]] = []
        self.handlers: dict[str, Callable[[str, bytes], None]] = {}
        self.on_connect: list[Callable[[], None]] = []

    def add_on_connect(self, callback: Callable[[], None]) -> None:
        self.on_connect.append(callback)

    def subscribe(self, topic: str, handler: Callable[[str, bytes], None]) -> None:
        self.handlers[topic] = handler

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        if self.connected:
            self.published.append((topic, payload, retain))

    def on(self, topic: str) -> list[Any]:
        return [json.loads(p) if p else None for t, p, _ in self.published if t == topic]


class FakeDaemon:
    def __init__(self) -> None:
        self.paused = False
        self.speaking = False
        self.spool = 0
        self.listeners: list[Callable[[DaemonState], None]] = []

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def status(self) -> dict[str, Any]:
        return {"model": {"name": "home-en", "version": "1"}, "spool_pending": self.spool}

    def add_listener(self, on_change: Callable[[DaemonState], None]) -> None:
        self.listeners.append(on_change)


def make_discovery(interval: float = 60.0) -> tuple[HomeAssistantDiscovery, Any, Any]:
    publisher, daemon = FakePublisher(), FakeDaemon()
    discovery = HomeAssistantDiscovery(
        publisher,  # type: ignore[arg-type]
        daemon,  # type: ignore[arg-type]
        KITCHEN,
        "edge-asr kitchen",
        diagnostics_interval_s=interval,
    )
    discovery.attach()
    return discovery, publisher, daemon


def test_switch_commands_pause_and_resume_and_confirm_the_state() -> None:
    _, publisher, daemon = make_discovery()
    command = publisher.handlers[KITCHEN.listening_set]
    command(KITCHEN.listening_set, b"OFF")
    assert daemon.paused
    assert publisher.on(KITCHEN.state)[-1] == {"listening": False, "speaking": False}
    command(KITCHEN.listening_set, b"on")
    assert not daemon.paused
    assert publisher.on(KITCHEN.state)[-1] == {"listening": True, "speaking": False}
    before = len(publisher.published)
    command(KITCHEN.listening_set, b"\xffmaybe")
    assert not daemon.paused and len(publisher.published) == before


def test_configs_and_states_are_published_on_connect_and_when_ha_comes_online() -> None:
    _, publisher, daemon = make_discovery()
    (on_connect,) = publisher.on_connect
    on_connect()
    retained = {t for t, _, r in publisher.published if r}
    assert {KITCHEN.config(e) for e in ENTITIES} | {KITCHEN.state, KITCHEN.diagnostics} == retained
    publisher.published.clear()
    publisher.handlers[KITCHEN.ha_status](KITCHEN.ha_status, b"offline")
    assert publisher.published == []
    publisher.handlers[KITCHEN.ha_status](KITCHEN.ha_status, b"online")
    assert len([t for t, _, _ in publisher.published if t.endswith("/config")]) == len(ENTITIES)


def test_transcripts_fire_the_event_and_set_the_last_transcript() -> None:
    discovery, publisher, _ = make_discovery()
    discovery.publish_final(transcript("open the garage door", seq=7))
    discovery.publish_final(transcript("", seq=8))
    assert [e["event_type"] for e in publisher.on(KITCHEN.event)] == ["transcript", "unrecognized"]
    (last,) = publisher.on(KITCHEN.transcript)  # the empty one does not replace it
    assert last["text"] == "open the garage door" and last["seq"] == 7
    publisher.connected = False
    discovery.publish_final(transcript("while away", seq=9))  # dropped, never replayed
    assert len(publisher.on(KITCHEN.event)) == 2


@pytest.mark.timeout(60)
def test_diagnostics_are_published_when_they_change_not_every_interval() -> None:
    discovery, publisher, daemon = make_discovery(interval=0.05)
    discovery.start()
    try:
        assert wait_until(lambda: publisher.on(KITCHEN.diagnostics), timeout=5)
        time.sleep(0.3)  # several intervals, nothing changed
        assert len(publisher.on(KITCHEN.diagnostics)) == 1
        daemon.spool = 4
        assert wait_until(lambda: len(publisher.on(KITCHEN.diagnostics)) == 2, timeout=5)
        assert publisher.on(KITCHEN.diagnostics)[-1]["spool_depth"] == 4
        assert publisher.on(KITCHEN.diagnostics)[-1]["model"] == "home-en 1"
    finally:
        discovery.close(2.0)


# --- MqttPublisher's on-connect hook, on a real broker ---------------------------------


@pytest.mark.timeout(60)
def test_on_connect_callbacks_run_after_every_connect(broker: Broker) -> None:
    from edge_asr.mqtt.client import MqttPublisher
    from edge_asr.settings import MqttSettings

    publisher = MqttPublisher(
        MqttSettings(host=broker.host, port=broker.port, reconnect_max_s=1, persistent=False),
        Topics("edge-asr", "hook"),
    )
    connects: list[bool] = []
    publisher.add_on_connect(lambda: connects.append(publisher.connected))
    publisher.start()
    try:
        assert wait_until(lambda: len(connects) == 1, timeout=10)
        broker.stop()
        broker.start()
        assert wait_until(lambda: len(connects) == 2, timeout=20)
        assert connects == [True, True]  # publish() already works inside the callback
    finally:
        publisher.close(1.0)


# --- the daemon, end to end -----------------------------------------------------------

SITE = "kitchen"
PREFIX = f"edge-asr/{SITE}"
HA_ENV = {
    "EDGE_ASR_SITE_ID": SITE,
    "EDGE_ASR_HOMEASSISTANT__ENABLED": "true",
    "EDGE_ASR_HOMEASSISTANT__DIAGNOSTICS_INTERVAL_S": "1",
}


def _configs(sub: Subscriber) -> dict[str, dict[str, Any]]:
    with sub._lock:
        return {
            m.topic: m.json()
            for m in sub.messages
            if m.topic.startswith("homeassistant/") and m.topic.endswith("/config") and m.payload
        }


def _retained_now(broker: Broker, subscriber_factory: Callable[..., Subscriber]) -> list[Any]:
    """Retained messages a new subscriber gets for HA (configs and entity states)."""
    found = []
    for topic in ("homeassistant/#", f"{PREFIX}/ha/#"):
        sub = subscriber_factory(broker, topic)
        time.sleep(1.0)  # retained messages come right after the subscription
        found += [m for m in sub.messages if m.retain and m.payload]
    return found


def _speech_pcm(make_speech: Callable[..., Path], text: str) -> bytes:
    samples, _ = sf.read(str(make_speech(text, lead_s=0.5, tail_s=1.5)), dtype="float32")
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def _silence(seconds: float) -> bytes:
    return bytes(2 * int(16000 * seconds))


def _request(sub: Subscriber, command: str) -> dict[str, Any]:
    count = len(sub.on(f"response/{command}"))
    sub.publish(f"{PREFIX}/request/{command}", b"{}")
    answer: dict[str, Any] = sub.wait_for(f"response/{command}", count + 1, timeout=10)[-1].json()
    assert answer["status"] == "ok", answer
    return answer["data"]  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_daemon_publishes_valid_discovery_and_transcripts_reach_event_and_sensor(
    broker: Broker,
    subscriber_factory: Callable[..., Subscriber],
    daemon_factory: Callable[..., Daemon],
    make_speech: Callable[..., Path],
    test_model: Any,
) -> None:
    sub = subscriber_factory(broker, "#")
    wav = make_speech("turn on the kitchen light", tail_s=1.5)
    # In real time: HA events are only sent while connected, and --fast could finish first.
    daemon = daemon_factory("--source", f"file:{wav}", broker=broker, env=HA_ENV)
    assert daemon.start().wait_exit(60) == 0, daemon.log
    configs = _configs(sub)
    assert len(configs) == 6, list(configs)
    for topic, config in configs.items():
        check_discovery_config(topic, config)
    (event,) = [m.json() for m in sub.wait_for("ha/event")]
    assert event["event_type"] == "transcript" and event["seq"] == 1
    last = sub.wait_for("ha/transcript")[-1].json()
    assert last["text"] == event["text"] and last["site_id"] == SITE
    if test_model.real:
        assert {"kitchen", "light"} <= set(event["text"].split()), event["text"]
    states = [m.json() for m in sub.on("ha/state")]
    assert {"listening": True, "speaking": True} in states, states
    assert states[-1] == {"listening": True, "speaking": False}
    diagnostics = sub.wait_for("ha/diagnostics")[-1].json()
    assert diagnostics["model"] == f"{last['model']['name']} {last['model']['version']}"
    # Retained: a Home Assistant that starts later still finds them all.
    retained = _retained_now(broker, subscriber_factory)
    retained_topics = {m.topic for m in retained}
    assert set(configs) <= retained_topics
    assert {f"{PREFIX}/ha/{name}" for name in ("transcript", "state", "diagnostics")} <= (
        retained_topics
    )
    assert f"{PREFIX}/ha/event" not in retained_topics


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_switch_pauses_binary_sensor_follows_speech_and_ha_online_rediscovers(
    broker: Broker,
    subscriber_factory: Callable[..., Subscriber],
    daemon_factory: Callable[..., Daemon],
    make_speech: Callable[..., Path],
) -> None:
    sub = subscriber_factory(broker, "#")
    daemon = daemon_factory("--source", "stdin", broker=broker, env=HA_ENV)
    proc = daemon.start(stdin=subprocess.PIPE).proc
    assert proc is not None and proc.stdin is not None
    pcm = proc.stdin
    stop_feeding = threading.Event()

    def feed_silence() -> None:  # keeps audio flowing like a microphone would
        while not stop_feeding.is_set():
            try:
                pcm.write(_silence(0.1))
                pcm.flush()
            except (BrokenPipeError, ValueError):
                return
            time.sleep(0.1)

    feeder = threading.Thread(target=feed_silence, daemon=True)
    feeder.start()
    try:
        daemon.wait_listening()
        assert wait_until(lambda: len(_configs(sub)) == 6, timeout=20), sub.messages
        assert _request(sub, "status")["paused"] is False

        # The switch: OFF pauses, ON resumes; its state follows.
        sub.publish(f"{PREFIX}/ha/listening/set", b"OFF")
        assert wait_until(lambda: _request(sub, "status")["paused"] is True, timeout=10)
        assert sub.wait_for("ha/state")[-1].json()["listening"] is False
        sub.publish(f"{PREFIX}/ha/listening/set", b"ON")
        assert wait_until(lambda: _request(sub, "status")["paused"] is False, timeout=10)
        assert sub.wait_for("ha/state")[-1].json()["listening"] is True

        # The binary sensor: on during speech, off after it.
        stop_feeding.set()
        feeder.join(5)
        before = len(sub.on("ha/state"))
        pcm.write(_speech_pcm(make_speech, "what time is it"))
        pcm.flush()
        states = [m.json() for m in sub.wait_for("ha/state", before + 2, timeout=30)[before:]]
        assert states[:2] == [
            {"listening": True, "speaking": True},
            {"listening": True, "speaking": False},
        ]
        sub.wait_for("ha/event", 1, timeout=30)

        # HA restarts: it announces itself and gets every config again.
        count = len([m for m in sub.messages if m.topic.endswith("/config")])
        sub.publish("homeassistant/status", b"online")
        assert wait_until(
            lambda: len([m for m in sub.messages if m.topic.endswith("/config")]) == count + 6,
            timeout=10,
        )
    finally:
        stop_feeding.set()
        pcm.close()
    assert daemon.wait_exit(30) == 0, daemon.log
    # The daemon is gone: HA sees the entities unavailable.
    assert sub.wait_for(f"{SITE}/status", 2)[-1].json() == {"state": "offline"}


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_ha_remove_clears_discovery_configs_and_entity_states(
    broker: Broker,
    subscriber_factory: Callable[..., Subscriber],
    daemon_factory: Callable[..., Daemon],
    make_speech: Callable[..., Path],
) -> None:
    wav = make_speech("open the garage door")
    daemon = daemon_factory("--source", f"file:{wav}", broker=broker, env=HA_ENV)
    assert daemon.start().wait_exit(60) == 0, daemon.log
    before = _retained_now(broker, subscriber_factory)
    assert len([m for m in before if m.topic.endswith("/config")]) == 6

    removed = subprocess.run(
        [sys.executable, "-m", "edge_asr", "ha", "--remove", "--site-id", SITE]
        + ["--mqtt-host", broker.host, "--mqtt-port", str(broker.port)],
        env=daemon.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert removed.returncode == 0, removed.stderr
    assert "removed 9 retained messages" in removed.stdout
    assert _retained_now(broker, subscriber_factory) == []


@pytest.mark.timeout(60)
def test_ha_remove_says_when_the_broker_is_unreachable(
    broker_factory: Callable[[], Broker],
) -> None:
    unused = broker_factory()  # never started: its port is closed
    result = subprocess.run(
        [sys.executable, "-m", "edge_asr", "ha", "--remove", "--mqtt-port", str(unused.port)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"cannot reach the MQTT broker localhost:{unused.port}" in result.stderr


@pytest.mark.timeout(60)
def test_ha_remove_names_refused_credentials(broker_factory: Callable[[], Broker]) -> None:
    locked = broker_factory()
    locked.users = {"ha": "secret"}
    locked.start()
    command = [sys.executable, "-m", "edge_asr", "ha", "--remove", "--mqtt-port", str(locked.port)]
    command += ["--mqtt-host", locked.host, "--set", "mqtt.username=ha"]
    wrong = subprocess.run(
        [*command, "--set", "mqtt.password=wrong"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong.returncode == 1
    assert "refused the connection" in wrong.stderr, wrong.stderr
    right = subprocess.run(
        [*command, "--set", "mqtt.password=secret"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert right.returncode == 0, right.stderr


@pytest.mark.timeout(60)
def test_ha_print_shows_every_config_without_a_broker() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edge_asr", "ha", "--print", "--site-id", "hall"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 6
    for line in lines:
        topic, payload = line.split(" ", 1)
        check_discovery_config(topic, json.loads(payload))
