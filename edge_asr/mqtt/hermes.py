"""Rhasspy Hermes: edge-asr as the ASR service of a Rhasspy-style voice setup.

Publishes ``hermes/asr/textCaptured`` for final transcripts and obeys, for its own site
(``siteId`` equal to ``site_id``), ``hermes/asr/startListening``, ``stopListening``,
``toggleOn`` and ``toggleOff``; problems go to ``hermes/error/asr``.

edge-asr listens all the time, so Hermes sessions only label what it hears:

- ``startListening`` opens a session. The next final transcript of an utterance at most
  half of which was heard before the session began carries the session's ``sessionId`` and
  ``wakewordId``: a wake word said alone (its utterance ends after the wake word service
  reacted) is not taken for the command, a command said in the same breath is. With
  ``stopOnSilence`` (the default) that transcript ends the session; otherwise it lasts until
  ``stopListening`` (which ends it whatever its ``sessionId``, as there is one at a time).
- Without a session, each transcript that has text is published with ``sessionId`` null,
  unless ``hermes.sessions_only``; empty ones only inside a session (so a dialogue manager
  learns that nothing was understood).
- ``toggleOff`` pauses the daemon (for every output, as the HA switch and the ``pause``
  request do) and remembers its ``reason``; ``toggleOn`` with the same reason, or with none,
  resumes it, but only if Hermes paused it: a pause asked for elsewhere stays.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from edge_asr.mqtt.payloads import PartialMessage, TranscriptMessage

if TYPE_CHECKING:
    from edge_asr.app import Daemon, DaemonControl
    from edge_asr.mqtt.client import MqttPublisher
    from edge_asr.settings import Settings

log = logging.getLogger(__name__)

TEXT_CAPTURED = "hermes/asr/textCaptured"
START_LISTENING = "hermes/asr/startListening"
STOP_LISTENING = "hermes/asr/stopListening"
TOGGLE_ON = "hermes/asr/toggleOn"
TOGGLE_OFF = "hermes/asr/toggleOff"
ERROR = "hermes/error/asr"
QOS = 1
MAX_MESSAGE_BYTES = 64 * 1024


class _Hermes(BaseModel):
    """Hermes JSON: camelCase keys; other keys (from newer or other apps) are ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode("utf-8")


class AsrTokenTime(_Hermes):
    start: float
    end: float


class AsrToken(_Hermes):
    """One word of a transcript; ``range_*`` are character offsets in ``text``."""

    value: str
    confidence: float
    range_start: int
    range_end: int
    time: AsrTokenTime | None = None


class TextCaptured(_Hermes):
    """``hermes/asr/textCaptured``."""

    text: str
    likelihood: float = Field(description="The transcript's confidence, 0..1.")
    seconds: float = Field(description="Time the recognizer took, as Rhasspy reports it.")
    site_id: str
    session_id: str | None = None
    wakeword_id: str | None = None
    asr_tokens: list[list[AsrToken]] | None = None
    lang: str | None = None


class AsrError(_Hermes):
    """``hermes/error/asr``."""

    error: str
    site_id: str
    context: str | None = None
    session_id: str | None = None


class StartListening(_Hermes):
    site_id: str = "default"
    session_id: str | None = None
    stop_on_silence: bool = True
    wakeword_id: str | None = None
    lang: str | None = None


class StopListening(_Hermes):
    site_id: str = "default"
    session_id: str | None = None


class Toggle(_Hermes):
    site_id: str = "default"
    reason: str = ""  # "" (unknown) overrides every other reason


def text_captured(
    message: TranscriptMessage, session_id: str | None = None, wakeword_id: str | None = None
) -> TextCaptured:
    """The Hermes form of a final transcript (one hypothesis, one token per word)."""
    tokens: list[AsrToken] = []
    position = 0
    for word in message.text.split():
        start = message.text.index(word, position)
        position = start + len(word)
        tokens.append(
            AsrToken(
                value=word, confidence=message.confidence, range_start=start, range_end=position
            )
        )
    return TextCaptured(
        text=message.text,
        likelihood=message.confidence,
        seconds=round(message.processing_ms / 1000.0, 4),
        site_id=message.site_id,
        session_id=session_id,
        wakeword_id=wakeword_id,
        asr_tokens=[tokens],
        lang=message.lang,
    )


@dataclass(frozen=True)
class Session:
    """A ``startListening`` session: which transcript it gets and when it ends."""

    session_id: str | None
    wakeword_id: str | None
    stop_on_silence: bool
    started_at: float  # time.time()

    def owns(self, message: TranscriptMessage) -> bool:
        """True for an utterance at most half of which was heard before the session began:
        a wake word said alone is not the command, one said in the same breath is part of it."""
        heard_before = self.started_at - message.started_at.timestamp()
        return heard_before <= message.duration_s / 2


class HermesAsr:
    """A transcript sink speaking Hermes, and the handler of Hermes ASR commands for a site."""

    def __init__(
        self,
        publisher: MqttPublisher,
        daemon: DaemonControl,
        site_id: str,
        sessions_only: bool = False,
    ) -> None:
        self._publisher = publisher
        self._daemon = daemon
        self._site_id = site_id
        self._sessions_only = sessions_only
        self._lock = threading.Lock()
        self._session: Session | None = None
        self._off_reasons: set[str] = set()
        self._paused_by_hermes = False

    def attach(self) -> None:
        """Subscribe to the commands (before the publisher starts)."""
        handlers = {
            START_LISTENING: self._start_listening,
            STOP_LISTENING: self._stop_listening,
            TOGGLE_ON: self._toggle_on,
            TOGGLE_OFF: self._toggle_off,
        }
        for topic, handler in handlers.items():
            self._publisher.subscribe(topic, self._guarded(handler))

    # TranscriptSink

    def start(self) -> None:
        pass

    def publish_final(self, message: TranscriptMessage) -> None:
        with self._lock:
            session = self._session
            if session is not None and not session.owns(message):
                session = None
            if session is not None and session.stop_on_silence:
                self._session = None
        if session is None and (self._sessions_only or not message.text.strip()):
            return
        captured = text_captured(
            message,
            session.session_id if session else None,
            session.wakeword_id if session else None,
        )
        # Only while connected (publish drops otherwise): an old command must not run late.
        self._publisher.publish(TEXT_CAPTURED, captured.to_json(), qos=QOS)

    def publish_partial(self, message: PartialMessage) -> None:
        pass

    def close(self, timeout: float) -> None:
        pass

    # Commands, in paho's network thread: quick.

    def _guarded(self, handler: Any) -> Any:
        def handle(topic: str, payload: bytes) -> None:
            try:
                data = _parse(payload)
            except ValueError as err:
                self._error(f"{topic}: {err}", context=payload[:200].decode("utf-8", "replace"))
                return
            if data.get("siteId", "default") != self._site_id:
                return  # another site's
            try:
                handler(data)
            except ValidationError as err:
                first = err.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                self._error(
                    f"{topic}: {where}: {first['msg']}", session_id=_str_or_none(data, "sessionId")
                )

        return handle

    def _start_listening(self, data: dict[str, Any]) -> None:
        request = StartListening.model_validate(data)
        with self._lock:
            self._session = Session(
                request.session_id, request.wakeword_id, request.stop_on_silence, time.time()
            )
        log.info("Hermes: session %s started", request.session_id)
        if self._daemon.paused:
            self._error(
                "not listening: the daemon is paused (toggleOn, or resume it)",
                session_id=request.session_id,
            )

    def _stop_listening(self, data: dict[str, Any]) -> None:
        request = StopListening.model_validate(data)
        with self._lock:
            self._session = None
        log.info("Hermes: session %s stopped", request.session_id)

    def _toggle_off(self, data: dict[str, Any]) -> None:
        toggle = Toggle.model_validate(data)
        with self._lock:
            self._off_reasons.add(toggle.reason)
            if self._daemon.paused:
                return
            self._paused_by_hermes = True
        log.info("Hermes: toggleOff (%s)", toggle.reason or "no reason")
        self._daemon.pause()

    def _toggle_on(self, data: dict[str, Any]) -> None:
        toggle = Toggle.model_validate(data)
        with self._lock:
            if toggle.reason:
                self._off_reasons.discard(toggle.reason)
            else:
                self._off_reasons.clear()
            if self._off_reasons or not self._paused_by_hermes:
                return
            self._paused_by_hermes = False
        log.info("Hermes: toggleOn (%s)", toggle.reason or "no reason")
        self._daemon.resume()

    def _error(self, error: str, context: str | None = None, session_id: str | None = None) -> None:
        log.warning("Hermes: %s", error)
        message = AsrError(
            error=error, site_id=self._site_id, context=context, session_id=session_id
        )
        self._publisher.publish(ERROR, message.to_json(), qos=QOS)


def _parse(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ValueError(f"message too large ({len(payload)} bytes)")
    try:
        value = json.loads(payload.decode("utf-8")) if payload.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ValueError("not a JSON object") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _str_or_none(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def attach_hermes(daemon: Daemon, settings: Settings, publisher: MqttPublisher) -> HermesAsr:
    """Add Hermes to ``daemon``: a transcript sink, and its commands subscribed."""
    hermes = HermesAsr(publisher, daemon, settings.site_id, settings.hermes.sessions_only)
    hermes.attach()
    daemon.add_sink(hermes)
    return hermes
