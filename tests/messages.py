"""Final transcripts made by hand, for tests of what consumes them (publisher, HA, Hermes)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from edge_asr.mqtt.payloads import ModelInfo, TranscriptMessage


def transcript(
    text: str = "hello",
    seq: int = 1,
    *,
    started_at: datetime | None = None,
    duration_s: float = 1.5,
    confidence: float = 0.9,
    processing_ms: float = 12.0,
    site_id: str = "kitchen",
) -> TranscriptMessage:
    """A final transcript of an utterance that started at ``started_at`` (default: now)."""
    started = started_at or datetime.now(timezone.utc)
    return TranscriptMessage(
        text=text,
        confidence=confidence,
        utterance_id=f"u{seq}",
        seq=seq,
        site_id=site_id,
        started_at=started,
        ended_at=started + timedelta(seconds=duration_s),
        duration_s=duration_s,
        processing_ms=processing_ms,
        model=ModelInfo(name="home-en", version="1"),
        lang="en",
    )
