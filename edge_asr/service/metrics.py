"""Prometheus metrics of a recognizer process, in a registry of their own (no globals).

The HTTP service renders them at ``GET /metrics``; the daemon, the HTTP API and the Wyoming
server update them through the methods below. Needs the ``[http]`` extra (prometheus-client).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

NAMESPACE = "edge_asr"
# Seconds of inference per utterance: a Pi 4 takes tens of milliseconds for a command.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Real-time factor (processing time / audio duration): below 1 keeps up with speech.
RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0)


class Timed(Protocol):
    """A recognized utterance: a recognizer's Transcript or a daemon's TranscriptMessage."""

    @property
    def duration_s(self) -> float: ...

    @property
    def processing_ms(self) -> float: ...


class Metrics:
    """Counters, histograms and gauges of one process.

    ``daemon=False`` (the standalone services) leaves out what only the microphone daemon
    knows (overruns, audio flowing), and ``mqtt=False`` the spool depth and broker
    connection, so nothing reports a made-up value.
    """

    def __init__(self, daemon: bool = True, mqtt: bool = True) -> None:
        self._refresh: list[Callable[[], None]] = []
        self._totals: dict[str, float] = {}
        self._lock = threading.Lock()
        self.registry = CollectorRegistry()
        reg = self.registry
        self.utterances = Counter(
            "utterances",
            "Utterances transcribed, by where the audio came from (mic, http, wyoming).",
            ["source"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.rejected = Counter(
            "requests_rejected",
            "Requests refused, by source and reason (unauthorized, too_large, not_audio, "
            "bad_audio, protocol).",
            ["source", "reason"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.transcription_seconds = Histogram(
            "transcription_seconds",
            "Time spent recognizing one utterance (features, model, decoding).",
            ["source"],
            buckets=LATENCY_BUCKETS,
            namespace=NAMESPACE,
            registry=reg,
        )
        self.rtf = Histogram(
            "rtf",
            "Real-time factor of each utterance: processing time divided by audio duration.",
            ["source"],
            buckets=RTF_BUCKETS,
            namespace=NAMESPACE,
            registry=reg,
        )
        self.model_info = Gauge(
            "model_info",
            "The loaded model bundle (value 1).",
            ["name", "version", "language"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.audio_overruns: Counter | None = None
        self.recognizer_overruns: Counter | None = None
        self.audio_flowing: Gauge | None = None
        self.spool_depth: Gauge | None = None
        self.spool_dropped: Counter | None = None
        self.broker_connected: Gauge | None = None
        if daemon:
            self.audio_overruns = Counter(
                "audio_overruns",
                "Captured audio blocks dropped because the endpointer fell behind.",
                namespace=NAMESPACE,
                registry=reg,
            )
            self.recognizer_overruns = Counter(
                "recognizer_overruns",
                "Utterances dropped unrecognized because the recognizer's queue was full.",
                namespace=NAMESPACE,
                registry=reg,
            )
            self.audio_flowing = Gauge(
                "audio_flowing",
                "1 while audio arrives from the source, else 0.",
                namespace=NAMESPACE,
                registry=reg,
            )
        if daemon and mqtt:
            self.spool_depth = Gauge(
                "spool_depth",
                "Transcripts waiting in the spool for the MQTT broker.",
                namespace=NAMESPACE,
                registry=reg,
            )
            self.broker_connected = Gauge(
                "broker_connected",
                "1 while connected to the MQTT broker, else 0.",
                namespace=NAMESPACE,
                registry=reg,
            )
            self.spool_dropped = Counter(
                "spool_dropped",
                "Transcripts dropped because the spool was full while the broker was away.",
                namespace=NAMESPACE,
                registry=reg,
            )

    def set_model(self, name: str, version: str, language: str) -> None:
        """Record which model is loaded (shown as ``edge_asr_model_info``)."""
        self.model_info.clear()
        self.model_info.labels(name=name, version=version, language=language).set(1)

    def observe(self, source: str, transcript: Timed) -> None:
        """Count one transcribed utterance and its latency and real-time factor."""
        seconds = transcript.processing_ms / 1000.0
        self.utterances.labels(source=source).inc()
        self.transcription_seconds.labels(source=source).observe(seconds)
        if transcript.duration_s > 0:
            self.rtf.labels(source=source).observe(seconds / transcript.duration_s)

    def reject(self, source: str, reason: str) -> None:
        """Count one refused request."""
        self.rejected.labels(source=source, reason=reason).inc()

    def set_spool_depth(self, depth: int) -> None:
        if self.spool_depth is not None:
            self.spool_depth.set(depth)

    def set_broker_connected(self, connected: bool) -> None:
        if self.broker_connected is not None:
            self.broker_connected.set(1 if connected else 0)

    def set_daemon_state(
        self,
        *,
        audio_flowing: bool,
        audio_overruns: int,
        recognizer_overruns: int,
        spool_pending: int,
        spool_dropped: int,
        broker_connected: bool,
    ) -> None:
        """Take the daemon's running totals and current state (counters advance by the
        difference since the last call)."""
        with self._lock:
            self._advance(self.audio_overruns, "audio_overruns", audio_overruns)
            self._advance(self.recognizer_overruns, "recognizer_overruns", recognizer_overruns)
            self._advance(self.spool_dropped, "spool_dropped", spool_dropped)
        if self.audio_flowing is not None:
            self.audio_flowing.set(1 if audio_flowing else 0)
        self.set_spool_depth(spool_pending)
        self.set_broker_connected(broker_connected)

    def _advance(self, counter: Counter | None, key: str, total: int) -> None:
        last = self._totals.get(key, 0)
        if counter is not None and total > last:
            counter.inc(total - last)
        self._totals[key] = max(last, total)

    def refresh_with(self, refresh: Callable[[], None]) -> None:
        """Call ``refresh`` before each ``render`` (to read state at scrape time)."""
        self._refresh.append(refresh)

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        for refresh in self._refresh:
            refresh()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
