"""Every MQTT message edge-asr publishes, as a pydantic model: the contract subscribers rely on."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


class ModelInfo(_Payload):
    """Which model produced a transcript."""

    name: str = Field(description="Model name from the bundle.")
    version: str = Field(description="Model version from the bundle.")


class TranscriptMessage(_Payload):
    """A final transcript, on ``<base>/<site>/transcript`` (QoS 1, not retained)."""

    text: str = Field(description="Recognized text; may be empty if nothing was understood.")
    confidence: float = Field(ge=0.0, le=1.0, description="0..1, higher is surer.")
    utterance_id: str = Field(description="Unique id of the utterance (also in its partials).")
    seq: int = Field(ge=1, description="Increases by one per transcript, kept across restarts.")
    site_id: str = Field(description="The site that heard it.")
    started_at: datetime = Field(description="When speech started (ISO 8601, UTC).")
    ended_at: datetime = Field(description="When speech ended (ISO 8601, UTC).")
    duration_s: float = Field(ge=0.0, description="Length of the utterance audio in seconds.")
    processing_ms: float = Field(ge=0.0, description="Time the recognizer took.")
    model: ModelInfo
    lang: str = Field(description="Language of the model, e.g. 'en'.")
    intent: str | None = Field(
        default=None,
        description="Section of the sentences file the text matched (sentences decoding); "
        "null otherwise.",
    )

    @field_serializer("started_at", "ended_at")
    def _utc(self, value: datetime) -> str:
        return iso_utc(value)


class PartialMessage(_Payload):
    """A partial hypothesis while speech goes on, on ``<base>/<site>/partial`` (QoS 0)."""

    text: str = Field(description="Hypothesis of the audio so far.")
    utterance_id: str = Field(description="Utterance this belongs to; its final has the same id.")
    site_id: str = Field(description="The site that hears it.")
    started_at: datetime = Field(description="When speech started (ISO 8601, UTC).")
    duration_s: float = Field(ge=0.0, description="Audio heard so far, in seconds.")
    processing_ms: float = Field(ge=0.0, description="Time the recognizer took.")

    @field_serializer("started_at")
    def _utc(self, value: datetime) -> str:
        return iso_utc(value)


class StatusMessage(_Payload):
    """Availability on ``<base>/<site>/status`` (retained; ``offline`` is also the will)."""

    state: Literal["online", "offline"]


def iso_utc(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a trailing 'Z' (naive datetimes are taken as UTC).

    Milliseconds are plenty and keep messages short.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    text = value.astimezone(timezone.utc).isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z"
