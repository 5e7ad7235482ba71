"""The MQTT topics edge-asr publishes on: one place for their names."""

from __future__ import annotations

from dataclasses import dataclass

TRANSCRIPT = "transcript"
PARTIAL = "partial"
STATUS = "status"
REQUEST = "request"
RESPONSE = "response"


@dataclass(frozen=True)
class Topics:
    """Topics under ``<base_topic>/<site_id>/``."""

    base_topic: str
    site_id: str

    @property
    def prefix(self) -> str:
        return f"{self.base_topic}/{self.site_id}"

    @property
    def transcript(self) -> str:
        """Final transcripts: QoS 1, not retained."""
        return f"{self.prefix}/{TRANSCRIPT}"

    @property
    def partial(self) -> str:
        """Partial hypotheses during speech: QoS 0, not retained."""
        return f"{self.prefix}/{PARTIAL}"

    @property
    def status(self) -> str:
        """Availability: retained ``{"state": "online"|"offline"}``; offline is the will."""
        return f"{self.prefix}/{STATUS}"

    @property
    def requests(self) -> str:
        """Subscription filter for control requests, ``<prefix>/request/<command>``."""
        return f"{self.prefix}/{REQUEST}/+"

    def command_of(self, topic: str) -> str:
        """The command named by a request topic."""
        return topic.rsplit("/", 1)[-1]

    def response(self, command: str) -> str:
        """Where the answer to ``command`` goes: QoS 1, not retained."""
        return f"{self.prefix}/{RESPONSE}/{command}"
