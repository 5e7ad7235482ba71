"""Home Assistant MQTT discovery: the daemon appears in HA as a device with its entities.

Per-component discovery (``<discovery_prefix>/<platform>/edge_asr_<site>/<key>/config``,
retained), each config carrying the same ``device`` and ``origin`` blocks, so it works with
every HA release that has MQTT discovery. Entities:

- ``event`` *Transcript*: fired on each final transcript (``event_type`` ``transcript``, or
  ``unrecognized`` when nothing was understood), the text and metadata as event attributes;
- ``sensor`` *Last transcript*: the text (cut to HA's 255 characters), every transcript field
  as attributes;
- ``binary_sensor`` *Speech*: on while someone speaks;
- ``switch`` *Listening*: off pauses the daemon, on resumes it;
- diagnostic ``sensor``s *Model* and *Spool depth*.

Every entity is available while the daemon's status topic says ``online``. Configs are
(re)published on every connect and whenever HA announces ``online`` on
``<discovery_prefix>/status``; ``edge-asr ha --remove`` clears them.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge_asr import __version__
from edge_asr.mqtt.payloads import PartialMessage, TranscriptMessage
from edge_asr.mqtt.topics import Topics

if TYPE_CHECKING:
    from edge_asr.app import Daemon, DaemonControl, DaemonState
    from edge_asr.mqtt.client import MqttPublisher
    from edge_asr.settings import HomeAssistantSettings, Settings

log = logging.getLogger(__name__)

HA_STATE_MAX = 255  # HA refuses longer entity states
QOS = 1
ON, OFF = "ON", "OFF"
EVENT_TRANSCRIPT = "transcript"
EVENT_UNRECOGNIZED = "unrecognized"
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class Entity:
    """One HA entity: its platform, the key that makes its ids, its name."""

    platform: str
    key: str
    name: str


TRANSCRIPT_EVENT = Entity("event", "transcript", "Transcript")
LAST_TRANSCRIPT = Entity("sensor", "last_transcript", "Last transcript")
SPEECH = Entity("binary_sensor", "speech", "Speech")
LISTENING = Entity("switch", "listening", "Listening")
MODEL = Entity("sensor", "model", "Model")
SPOOL_DEPTH = Entity("sensor", "spool_depth", "Spool depth")
ENTITIES = (TRANSCRIPT_EVENT, LAST_TRANSCRIPT, SPEECH, LISTENING, MODEL, SPOOL_DEPTH)


@dataclass(frozen=True)
class HaTopics:
    """Where discovery configs and entity states go for one site."""

    topics: Topics
    discovery_prefix: str

    @property
    def node_id(self) -> str:
        """``edge_asr_<site_id>`` with characters HA does not allow in ids made ``_``."""
        return "edge_asr_" + _ID_UNSAFE.sub("_", self.topics.site_id)

    def config(self, entity: Entity) -> str:
        """Retained discovery config of ``entity``."""
        return f"{self.discovery_prefix}/{entity.platform}/{self.node_id}/{entity.key}/config"

    @property
    def ha_status(self) -> str:
        """HA's birth and last will: ``online`` / ``offline``."""
        return f"{self.discovery_prefix}/status"

    @property
    def event(self) -> str:
        """Transcript events: not retained (an old command must not fire again)."""
        return f"{self.topics.prefix}/ha/event"

    @property
    def transcript(self) -> str:
        """The last transcript that had text: retained."""
        return f"{self.topics.prefix}/ha/transcript"

    @property
    def state(self) -> str:
        """``{"listening", "speaking"}``: retained."""
        return f"{self.topics.prefix}/ha/state"

    @property
    def listening_set(self) -> str:
        """Command topic of the Listening switch: ``ON`` / ``OFF``."""
        return f"{self.topics.prefix}/ha/listening/set"

    @property
    def diagnostics(self) -> str:
        """Model and spool figures: retained."""
        return f"{self.topics.prefix}/ha/diagnostics"

    def retained(self) -> list[str]:
        """Every retained topic edge-asr publishes for HA (what ``ha --remove`` clears)."""
        return [
            *(self.config(entity) for entity in ENTITIES),
            self.transcript,
            self.state,
            self.diagnostics,
        ]


def device_name(settings: HomeAssistantSettings, site_id: str) -> str:
    return settings.device_name or f"edge-asr {site_id}"


def discovery_configs(ha: HaTopics, name: str) -> dict[str, dict[str, Any]]:
    """Every discovery config by its topic; ``name`` is the device's name in HA."""
    device: dict[str, Any] = {
        "identifiers": [ha.node_id],
        "name": name,
        "manufacturer": "edge-asr",
        "model": "Offline speech recognizer",
        "sw_version": __version__,
    }
    common: dict[str, Any] = {
        "device": device,
        "origin": {"name": "edge-asr", "sw_version": __version__},
        "availability": [
            {
                "topic": ha.topics.status,
                "value_template": "{{ value_json.state }}",
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        ],
        "qos": QOS,
    }
    specific: dict[Entity, dict[str, Any]] = {
        TRANSCRIPT_EVENT: {
            "state_topic": ha.event,
            "event_types": [EVENT_TRANSCRIPT, EVENT_UNRECOGNIZED],
            "icon": "mdi:account-voice",
        },
        LAST_TRANSCRIPT: {
            "state_topic": ha.transcript,
            "value_template": "{{ value_json.text[:" + str(HA_STATE_MAX) + "] }}",
            "json_attributes_topic": ha.transcript,
            "icon": "mdi:text-to-speech",
        },
        SPEECH: {
            "state_topic": ha.state,
            "value_template": "{{ 'ON' if value_json.speaking else 'OFF' }}",
            "payload_on": ON,
            "payload_off": OFF,
            "device_class": "sound",
        },
        LISTENING: {
            "command_topic": ha.listening_set,
            "state_topic": ha.state,
            "value_template": "{{ 'ON' if value_json.listening else 'OFF' }}",
            "payload_on": ON,
            "payload_off": OFF,
            "icon": "mdi:microphone",
        },
        MODEL: {
            "state_topic": ha.diagnostics,
            "value_template": "{{ value_json.model }}",
            "json_attributes_topic": ha.diagnostics,
            "entity_category": "diagnostic",
            "icon": "mdi:brain",
        },
        SPOOL_DEPTH: {
            "state_topic": ha.diagnostics,
            "value_template": "{{ value_json.spool_depth }}",
            "state_class": "measurement",
            "unit_of_measurement": "transcripts",
            "entity_category": "diagnostic",
            "icon": "mdi:tray-full",
        },
    }
    return {
        ha.config(entity): {
            "name": entity.name,
            "unique_id": f"{ha.node_id}_{entity.key}",
            **common,
            **specific[entity],
        }
        for entity in ENTITIES
    }


def event_payload(message: TranscriptMessage) -> dict[str, Any]:
    """What the Transcript event entity gets for one final transcript."""
    return {
        "event_type": EVENT_TRANSCRIPT if message.text.strip() else EVENT_UNRECOGNIZED,
        "text": message.text,
        "confidence": message.confidence,
        "intent": message.intent,
        "seq": message.seq,
        "utterance_id": message.utterance_id,
        "duration_s": message.duration_s,
        "lang": message.lang,
    }


def state_payload(state: DaemonState) -> dict[str, Any]:
    """What the Speech binary sensor and the Listening switch read."""
    return {"listening": not state.paused, "speaking": state.speaking and not state.paused}


def diagnostics_payload(status: dict[str, Any]) -> dict[str, Any]:
    """The diagnostic sensors' topic, from ``DaemonControl.status()``."""
    model = status.get("model") or {}
    return {
        "model": f"{model.get('name', '?')} {model.get('version', '?')}",
        "model_name": model.get("name"),
        "model_version": model.get("version"),
        "lang": model.get("lang"),
        "decoding": status.get("decoding"),
        "spool_depth": status.get("spool_pending", 0),
        "spool_dropped": status.get("spool_dropped", 0),
        "transcripts": status.get("transcripts", 0),
        "recognizer_overruns": status.get("recognizer_overruns", 0),
        "audio_overruns": status.get("audio_overruns", 0),
    }


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class HomeAssistantDiscovery:
    """Keeps HA's view of the daemon current: discovery configs, entity states, commands.

    A transcript sink (events and the last transcript), a state listener (speech, listening)
    and, from ``start`` to ``close``, a thread publishing changed diagnostics.
    """

    def __init__(
        self,
        publisher: MqttPublisher,
        daemon: DaemonControl,
        ha: HaTopics,
        name: str,
        diagnostics_interval_s: float = 10.0,
    ) -> None:
        self._publisher = publisher
        self._daemon = daemon
        self._ha = ha
        self._configs = discovery_configs(ha, name)
        self._interval = diagnostics_interval_s
        self._lock = threading.Lock()
        self._last_diagnostics: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="ha-diagnostics", daemon=True)

    def attach(self) -> None:
        """Register with the publisher and the daemon (before either starts)."""
        self._publisher.add_on_connect(self.publish_all)
        self._publisher.subscribe(self._ha.ha_status, self._ha_status)
        self._publisher.subscribe(self._ha.listening_set, self._listening_command)
        self._daemon.add_listener(self._state_changed)

    def publish_all(self) -> None:
        """Discovery configs, then the current states (on connect and when HA comes online)."""
        for topic, config in self._configs.items():
            self._publisher.publish(topic, _json(config), qos=QOS, retain=True)
        self._state_changed(_current_state(self._daemon))
        self._publish_diagnostics(force=True)
        log.info("Home Assistant: published %d discovery configs", len(self._configs))

    # TranscriptSink

    def start(self) -> None:
        self._thread.start()

    def publish_final(self, message: TranscriptMessage) -> None:
        # Only while connected (publish drops otherwise): a spooled command replayed an hour
        # later must not fire an automation.
        self._publisher.publish(self._ha.event, _json(event_payload(message)), qos=QOS)
        if message.text.strip():
            self._publisher.publish(self._ha.transcript, message.to_json(), qos=QOS, retain=True)
        self._publish_diagnostics()

    def publish_partial(self, message: PartialMessage) -> None:
        pass

    def close(self, timeout: float) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # Callbacks: paho's network thread or the capture thread; quick.

    def _state_changed(self, state: DaemonState) -> None:
        self._publisher.publish(self._ha.state, _json(state_payload(state)), qos=QOS, retain=True)

    def _ha_status(self, topic: str, payload: bytes) -> None:
        if payload.strip() == b"online":
            log.info("Home Assistant is online: publishing discovery again")
            self.publish_all()

    def _listening_command(self, topic: str, payload: bytes) -> None:
        command = payload.strip().decode("utf-8", errors="replace").upper()
        if command == ON:
            self._daemon.resume()
        elif command == OFF:
            self._daemon.pause()
        else:
            log.warning("Home Assistant: ignored %r on %s (expected ON or OFF)", command, topic)
            return
        # Confirm even when nothing changed, so a switch HA flipped optimistically flips back.
        self._state_changed(_current_state(self._daemon))

    def _watch(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._publish_diagnostics()
            except Exception:  # the edge: diagnostics must not stop
                log.exception("Home Assistant: cannot publish diagnostics")

    def _publish_diagnostics(self, force: bool = False) -> None:
        diagnostics = diagnostics_payload(self._daemon.status())
        with self._lock:
            if not force and diagnostics == self._last_diagnostics:
                return
            if self._publisher.connected:  # else: sent again on the next connect
                self._last_diagnostics = diagnostics
        self._publisher.publish(self._ha.diagnostics, _json(diagnostics), qos=QOS, retain=True)


def _current_state(daemon: DaemonControl) -> DaemonState:
    from edge_asr.app import DaemonState

    return DaemonState(paused=daemon.paused, speaking=daemon.speaking)


def attach_home_assistant(
    daemon: Daemon, settings: Settings, publisher: MqttPublisher, topics: Topics
) -> HomeAssistantDiscovery:
    """Add HA discovery to ``daemon``: a sink and state listener of it."""
    ha = HaTopics(topics, settings.homeassistant.discovery_prefix)
    discovery = HomeAssistantDiscovery(
        publisher,
        daemon,
        ha,
        device_name(settings.homeassistant, settings.site_id),
        settings.homeassistant.diagnostics_interval_s,
    )
    discovery.attach()
    daemon.add_sink(discovery)
    return discovery
