"""The daemon: audio source → endpointer → recognizer worker → sinks, and its lifecycle.

The capture loop (main thread) only reads blocks and runs the endpointer; recognition runs
in a worker thread so a slow utterance never stalls capture. Stopping (SIGTERM/SIGINT, or the
end of a file) finishes the utterance in progress, drains the worker, marks the site offline.

Integrations (MQTT control requests, Home Assistant, Hermes, the HTTP and Wyoming servers)
are sinks, services and listeners added to the ``Daemon``; they see and steer it only through
the methods of ``DaemonControl``.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from edge_asr.audio.capture import AudioBlock, AudioSource
from edge_asr.audio.vad import Endpointer, GatedVad, PartialAudio, Utterance
from edge_asr.mqtt.client import MqttPublisher, TranscriptSpool
from edge_asr.mqtt.payloads import ModelInfo, PartialMessage, TranscriptMessage
from edge_asr.mqtt.topics import Topics
from edge_asr.service.health import HEALTH_FILE, HealthReport, write_health
from edge_asr.service.state import SequenceCounter
from edge_asr.service.systemd import SystemdNotifier

if TYPE_CHECKING:
    from edge_asr.asr.recognizer import Recognizer
    from edge_asr.settings import Settings

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 30.0  # longest wait for queued utterances at shutdown
SINK_CLOSE_TIMEOUT_S = 3.0  # with the drain, a stop stays within systemd's patience
_OVERRUN_LOG_INTERVAL_S = 10.0
HEALTH_INTERVAL_S = 1.0  # health.json is rewritten this often
AUDIO_FLOWING_S = 5.0  # no block for this long means audio stopped
PAUSED_FILE = "paused"  # in the state folder while listening is paused (kept across restarts)
SPOOL_FILE = "spool.sqlite3"


class TranscriptSink(Protocol):
    """Where transcripts go (MQTT, stdout, ...)."""

    def start(self) -> None: ...

    def publish_final(self, message: TranscriptMessage) -> None: ...

    def publish_partial(self, message: PartialMessage) -> None: ...

    def close(self, timeout: float) -> None: ...


@dataclass(frozen=True)
class DaemonState:
    """What listeners are told whenever it changes."""

    paused: bool  # listening paused by request
    speaking: bool  # an utterance is in progress


class DaemonService(Protocol):
    """Runs beside the pipeline (a server, a request handler); started and closed with it."""

    def start(self) -> None: ...

    def close(self, timeout: float) -> None: ...


class DaemonControl(Protocol):
    """What integrations may see and do to the daemon; every method is thread-safe."""

    @property
    def paused(self) -> bool: ...

    @property
    def speaking(self) -> bool: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def reload(self) -> dict[str, Any]: ...

    def status(self) -> dict[str, Any]: ...

    def health_report(self) -> HealthReport: ...

    def add_listener(self, on_change: Callable[[DaemonState], None]) -> None: ...


class StdoutSink:
    """Final transcripts as JSON lines, for pipes and scripts."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def start(self) -> None:
        pass

    def publish_final(self, message: TranscriptMessage) -> None:
        self._stream.write(message.model_dump_json() + "\n")
        self._stream.flush()

    def publish_partial(self, message: PartialMessage) -> None:
        pass

    def close(self, timeout: float) -> None:
        self._stream.flush()


class RecognitionWorker:
    """Recognizes utterances in a thread; finals in order, only the newest partial kept."""

    def __init__(
        self,
        recognizer: Recognizer,
        sinks: list[TranscriptSink],
        sequence: SequenceCounter,
        site_id: str,
        queue_size: int,
    ) -> None:
        self._recognizer = recognizer
        self._sinks = sinks
        self._sequence = sequence
        self._site_id = site_id
        self._model = ModelInfo(name=recognizer.model_name, version=recognizer.model_version)
        self._finals: collections.deque[Utterance] = collections.deque()
        self._max_finals = queue_size
        self._partial: PartialAudio | None = None
        self._changed = threading.Condition()
        self._closing = False
        self._busy = False
        self.transcripts = 0  # finals recognized since start
        self.overruns = 0  # finals dropped because the queue was full
        self.partials_skipped = 0  # partials replaced by a newer one before they ran
        self._thread = threading.Thread(target=self._run, name="recognizer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit_final(self, utterance: Utterance) -> None:
        with self._changed:
            if len(self._finals) >= self._max_finals:
                lost = self._finals.popleft()
                self.overruns += 1
                log.warning(
                    "recognizer overrun: %d utterances waiting, dropped %s (%.1f s); %d so far",
                    self._max_finals,
                    lost.id,
                    lost.duration_s,
                    self.overruns,
                    extra={"UTTERANCE_ID": lost.id},
                )
            self._finals.append(utterance)
            if self._partial is not None and self._partial.utterance_id == utterance.id:
                self._partial = None  # the final supersedes it
            self._changed.notify_all()

    def submit_partial(self, partial: PartialAudio) -> None:
        with self._changed:
            if self._partial is not None:
                self.partials_skipped += 1
            self._partial = partial
            self._changed.notify_all()

    def close(self, timeout: float) -> None:
        """Finish queued finals (up to ``timeout`` seconds), then stop the thread."""
        with self._changed:
            self._closing = True
            self._partial = None
            self._changed.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            with self._changed:
                left = len(self._finals) + (1 if self._busy else 0)
            log.warning("recognizer did not finish %d utterance(s) before shutdown", left)

    def _next_job(self) -> Utterance | PartialAudio | None:
        with self._changed:
            while not self._finals and self._partial is None and not self._closing:
                self._changed.wait()
            self._busy = bool(self._finals or self._partial)
            if self._finals:
                return self._finals.popleft()
            job, self._partial = self._partial, None
            return job

    def _run(self) -> None:
        while (job := self._next_job()) is not None:
            try:
                if isinstance(job, Utterance):
                    self._final(job)
                else:
                    self._partial_hypothesis(job)
            except Exception:  # one bad utterance must not stop the daemon
                log.exception(
                    "recognizing %s failed",
                    job.utterance_id if isinstance(job, PartialAudio) else job.id,
                )
            finally:
                with self._changed:
                    self._busy = False

    def _final(self, utterance: Utterance) -> None:
        transcript = self._recognizer.transcribe(utterance.samples, utterance.sample_rate)
        message = TranscriptMessage(
            text=transcript.text,
            confidence=round(transcript.confidence, 4),
            utterance_id=utterance.id,
            seq=self._sequence.next(),
            site_id=self._site_id,
            started_at=utterance.started_at,
            ended_at=utterance.ended_at,
            duration_s=round(utterance.duration_s, 3),
            processing_ms=transcript.processing_ms,
            model=self._model,
            lang=self._recognizer.language,
            intent=transcript.intent,
        )
        self.transcripts += 1
        log.info(
            "transcript %d: %r (confidence %.2f, %.1f s audio, %.0f ms, end: %s)",
            message.seq,
            message.text,
            message.confidence,
            message.duration_s,
            message.processing_ms,
            utterance.reason,
            extra={"UTTERANCE_ID": utterance.id, "SEQ": message.seq},  # journal fields
        )
        for sink in self._sinks:
            _deliver(sink.publish_final, message)

    def _partial_hypothesis(self, partial: PartialAudio) -> None:
        transcript = self._recognizer.transcribe(partial.samples, partial.sample_rate)
        message = PartialMessage(
            text=transcript.text,
            utterance_id=partial.utterance_id,
            site_id=self._site_id,
            started_at=partial.started_at,
            duration_s=round(len(partial.samples) / partial.sample_rate, 3),
            processing_ms=transcript.processing_ms,
        )
        log.debug("partial %s: %r", partial.utterance_id, message.text)
        for sink in self._sinks:
            _deliver(sink.publish_partial, message)


def _deliver(publish: Callable[[Any], None], message: TranscriptMessage | PartialMessage) -> None:
    try:
        publish(message)
    except Exception:  # a failing sink must not stop the others or the daemon
        log.exception("sink %s failed", getattr(publish, "__self__", publish))


class Heartbeat:
    """Keeps ``health.json`` in the state folder current and tells systemd how we are
    (READY once audio flows or the source waits for a missing input device, WATCHDOG only
    while healthy, STOPPING at shutdown)."""

    def __init__(
        self,
        state_dir: Path,
        report: Callable[[], HealthReport],
        notifier: SystemdNotifier | None = None,
    ) -> None:
        self._state_dir = state_dir
        self._report = report
        self._notifier = notifier
        self._stop = threading.Event()
        self._write_failed = False
        self._ready = False
        self._ready_lock = threading.Lock()
        self._last_status = ""
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def ready(self, status: str) -> None:
        """Start-up is over (once; later changes reach systemd as STATUS)."""
        with self._ready_lock:
            if self._ready:
                return
            if self._notifier is not None:
                self._notifier.ready(status)
                self._notifier.start_watchdog(self.healthy)
            self._last_status = status
            self._ready = True

    def healthy(self) -> bool:
        return not self._report().problems(time.time())

    def stopping(self) -> None:
        """Shutdown began: tell systemd (the health file keeps being written meanwhile)."""
        if self._notifier is not None:
            self._notifier.stopping("finishing the last utterance")

    def close(self) -> None:
        """Shutdown ended: stop writing and remove the health file (no daemon, no health)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        with contextlib.suppress(OSError):
            (self._state_dir / HEALTH_FILE).unlink(missing_ok=True)

    def _run(self) -> None:
        while True:
            self._write()
            if self._stop.wait(HEALTH_INTERVAL_S):
                return

    def _write(self) -> None:
        report = self._report()
        if report.input_problem and not report.stopping:
            # Waiting for the microphone is where a service without one stays: start-up is over.
            self.ready(report.status)
        if self._ready and self._notifier is not None and report.status != self._last_status:
            self._notifier.status(report.status)  # what `systemctl status` shows
            self._last_status = report.status
        try:
            write_health(self._state_dir, report)
            self._write_failed = False
        except OSError as err:
            if not self._write_failed:  # say it once, not every second
                log.error("cannot write health file in %s: %s", self._state_dir, err)
            self._write_failed = True


class Daemon:
    """Owns the pipeline; ``run()`` blocks until the source ends or ``request_stop()``."""

    def __init__(
        self,
        source: AudioSource,
        endpointer: Endpointer,
        worker: RecognitionWorker,
        sinks: list[TranscriptSink],
        partials: bool = True,
        vad: GatedVad | None = None,
        publisher: MqttPublisher | None = None,
        state_dir: Path | None = None,
        notifier: SystemdNotifier | None = None,
        recognizer: Recognizer | None = None,
        sentences: Path | None = None,
        site_id: str = "default",
    ) -> None:
        self._source = source
        self._recognizer = recognizer
        self._sentences = sentences
        self._site_id = site_id
        self._state_dir = state_dir
        self._started = time.time()
        self._services: list[DaemonService] = []
        self._listeners: list[Callable[[DaemonState], None]] = []
        self._paused = threading.Event()
        if state_dir is not None and (state_dir / PAUSED_FILE).exists():
            self._paused.set()
            log.warning("listening is paused (since before the restart); resume to listen")
        self._applied_pause = self._paused.is_set()  # the capture loop's view
        self._speaking = False
        self._reload_lock = threading.Lock()
        self._vad = vad
        self._publisher = publisher
        self._last_audio = 0.0  # time.monotonic() of the latest block
        self._heartbeat = (
            Heartbeat(state_dir, self.health_report, notifier) if state_dir is not None else None
        )
        self._endpointer = endpointer
        self._worker = worker
        self._sinks = sinks
        self._partials = partials
        self._stop = threading.Event()
        self._reported_overruns = 0
        self._last_overrun_log = 0.0

    def request_stop(self) -> None:
        """Stop after the utterance in progress; safe from a signal handler."""
        self._stop.set()
        self._source.stop()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # Wiring, before run().

    def add_sink(self, sink: TranscriptSink) -> None:
        """Also send transcripts to ``sink`` (call before ``run``)."""
        self._sinks.append(sink)

    def add_service(self, service: DaemonService) -> None:
        """Start ``service`` with the daemon and close it at shutdown (call before ``run``)."""
        self._services.append(service)

    def add_listener(self, on_change: Callable[[DaemonState], None]) -> None:
        """Call ``on_change`` (quickly, from the capture thread or a request's) on changes."""
        self._listeners.append(on_change)

    # DaemonControl: safe from any thread.

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    @property
    def speaking(self) -> bool:
        return self._speaking and not self.paused

    def pause(self) -> None:
        """Stop listening (the utterance in progress is still recognized); kept across restarts."""
        if self._paused.is_set():
            return
        self._paused.set()
        self._remember_pause(True)
        log.info("listening paused by request")
        self._notify()

    def resume(self) -> None:
        """Listen again after ``pause``."""
        if not self._paused.is_set():
            return
        self._paused.clear()
        self._remember_pause(False)
        log.info("listening resumed by request")
        self._notify()

    def reload(self) -> dict[str, Any]:
        """Re-read the sentences file without stopping audio; EdgeAsrError if it is bad (the
        old grammar stays)."""
        from edge_asr.errors import ConfigError

        if self._recognizer is None or self._sentences is None:
            raise ConfigError("nothing to reload: recognizer.sentences is not set")
        with self._reload_lock:
            self._recognizer.reload_sentences(self._sentences)
        return {"sentences": str(self._sentences), "decoding": self._recognizer.decoding.value}

    def request_reload(self) -> None:
        """Reload in a thread of its own; safe from a signal handler (SIGHUP)."""

        def run() -> None:
            try:
                self.reload()
            except Exception as err:  # a bad file keeps the old grammar; say why, go on
                log.error("reload failed, the previous grammar stays: %s", err)

        threading.Thread(target=run, name="reload", daemon=True).start()

    def status(self) -> dict[str, Any]:
        """The daemon's state for people and requests (JSON-ready)."""
        report = self.health_report()
        data: dict[str, Any] = {
            "state": _state_word(report),
            "site_id": self._site_id,
            "paused": self.paused,
            "speaking": self.speaking,
            "audio_flowing": report.audio_flowing,
            "input_problem": report.input_problem,
            "worker_alive": report.worker_alive,
            "broker_connected": report.broker_connected,
            "broker_error": report.broker_error,
            "spool_pending": report.spool_pending,
            "spool_dropped": self._publisher.dropped if self._publisher is not None else 0,
            "transcripts": self._worker.transcripts,
            "recognizer_overruns": self._worker.overruns,
            "audio_overruns": self._source.overruns,
            "uptime_s": round(time.time() - self._started, 1),
        }
        if self._recognizer is not None:
            data["model"] = {
                "name": self._recognizer.model_name,
                "version": self._recognizer.model_version,
                "lang": self._recognizer.language,
            }
            data["decoding"] = self._recognizer.decoding.value
        return data

    def health_report(self) -> HealthReport:
        """How the daemon is doing right now (for the health file and the watchdog)."""
        flowing = time.monotonic() - self._last_audio < AUDIO_FLOWING_S
        publisher = self._publisher
        connected = publisher.connected if publisher is not None else False
        pending = publisher.pending() if publisher is not None else 0
        refused = publisher.refused if publisher is not None else None
        report = HealthReport(
            pid=os.getpid(),
            updated_at=time.time(),
            listening=not self.stopping and not self.paused,
            paused=self.paused,
            stopping=self.stopping,
            audio_flowing=flowing,
            input_problem=None if flowing else self._source.input_problem,
            worker_alive=self._worker.alive,
            broker_connected=connected,
            broker_error=f"broker refused the connection: {refused}" if refused else None,
            spool_pending=pending,
            status="",
        )
        line = f"{_state_word(report)}; {self._worker.transcripts} transcripts"
        if report.input_problem:
            line += f"; {report.input_problem}"
        if report.broker_error:
            line += f"; MQTT: {report.broker_error}"
        elif publisher is not None and not connected:
            line += f"; MQTT: broker unreachable, {pending} spooled"
        return report.model_copy(update={"status": line})

    def run(self) -> None:
        for sink in self._sinks:
            sink.start()
        self._worker.start()
        for service in self._services:
            service.start()
        if self._heartbeat is not None:
            self._heartbeat.start()
        try:
            with contextlib.closing(self._source.blocks()) as blocks:
                self._consume(blocks)
        finally:
            self._shutdown()

    def _consume(self, blocks: Generator[AudioBlock, None, None]) -> None:
        first = True
        for block in blocks:
            self._last_audio = time.monotonic()
            if first:
                log.info("listening (first audio received)" + (", paused" if self.paused else ""))
                if self._heartbeat is not None:
                    self._heartbeat.ready("paused" if self.paused else "listening")
                first = False
            if self._apply_pause():
                for event in self._endpointer.feed(block):
                    if isinstance(event, Utterance):
                        self._worker.submit_final(event)
                    elif self._partials:
                        self._worker.submit_partial(event)
            if self._endpointer.active != self._speaking:
                self._speaking = self._endpointer.active
                self._notify()
            self._report_overruns()
            if self._stop.is_set():
                return

    def _apply_pause(self) -> bool:
        """Follow pause/resume requests in the capture thread; True while listening."""
        paused = self._paused.is_set()
        if paused != self._applied_pause:
            self._applied_pause = paused
            if paused:  # the utterance in progress is finished, not lost
                last = self._endpointer.flush()
                if last is not None:
                    self._worker.submit_final(last)
            else:  # audio from before the pause must not join the next utterance
                self._endpointer.reset()
        return not paused

    def _notify(self) -> None:
        state = DaemonState(paused=self.paused, speaking=self.speaking)
        for on_change in self._listeners:
            try:
                on_change(state)
            except Exception:  # a listener bug must not stop capture
                log.exception("state listener %s failed", on_change)

    def _remember_pause(self, paused: bool) -> None:
        if self._state_dir is None:
            return
        path = self._state_dir / PAUSED_FILE
        try:
            if paused:
                path.write_text("paused by request\n", encoding="utf-8")
            else:
                path.unlink(missing_ok=True)
        except OSError as err:
            log.error("cannot remember the pause state in %s: %s", path, err.strerror)

    def _shutdown(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stopping()
        last = self._endpointer.flush()
        if last is not None:
            self._worker.submit_final(last)
        self._report_overruns(force=True)
        if self._vad is not None and self._vad.frames:
            log.info(
                "VAD model ran on %d of %d frames (%.1f %%; the rest were below the energy gate)",
                self._vad.model_runs,
                self._vad.frames,
                100.0 * self._vad.model_runs / self._vad.frames,
            )
        self._worker.close(DRAIN_TIMEOUT_S)
        for service in self._services:
            try:
                service.close(SINK_CLOSE_TIMEOUT_S)
            except Exception:
                log.exception("closing %s failed", service)
        for sink in self._sinks:
            try:
                sink.close(SINK_CLOSE_TIMEOUT_S)
            except Exception:
                log.exception("closing sink %s failed", sink)
        if self._heartbeat is not None:
            self._heartbeat.close()

    def _report_overruns(self, force: bool = False) -> None:
        # Capture overruns are counted by the source; log them, rate-limited but never silent.
        total = self._source.overruns
        if total == self._reported_overruns:
            return
        now = time.monotonic()
        if not force and now - self._last_overrun_log < _OVERRUN_LOG_INTERVAL_S:
            return
        log.warning(
            "audio overrun: %d block(s) lost since last report (%d in total)",
            total - self._reported_overruns,
            total,
        )
        self._reported_overruns = total
        self._last_overrun_log = now


def _state_word(report: HealthReport) -> str:
    if report.stopping:
        return "stopping"
    if report.input_problem:
        return "waiting for the input device"
    if report.paused:
        return "paused"
    return "listening" if report.audio_flowing else "waiting for audio"


def build_daemon(settings: Settings, stdout: TextIO | None = None) -> Daemon:
    """Build every part from the settings; raises EdgeAsrError subclasses on bad setups."""
    from edge_asr.asr.recognizer import Recognizer
    from edge_asr.audio.capture import open_source
    from edge_asr.audio.vad import make_gated_vad

    audio = settings.audio
    source = open_source(
        audio.source,
        device=audio.device,
        capture_rate=audio.capture_rate,
        channels=audio.channels,
        block_ms=audio.block_ms,
        queue_blocks=audio.queue_blocks,
        realtime=audio.realtime,
        stdin_rate=audio.stdin_rate,
        wait_for_device=audio.wait_for_device,
    )
    state_dir = settings.resolved_state_dir()
    sequence = SequenceCounter(state_dir)
    rec = settings.recognizer
    started = time.perf_counter()
    recognizer = Recognizer.load(
        rec.model_dir,
        num_threads=rec.num_threads,
        provider=rec.provider,
        decoding=rec.decoding,
        sentences=rec.sentences,
    )
    log.info(
        "model %s %s (%s) loaded in %.1f s",
        recognizer.model_name,
        recognizer.model_version,
        recognizer.language,
        time.perf_counter() - started,
    )
    sinks: list[TranscriptSink] = []
    publisher = None
    topics = Topics(settings.mqtt.base_topic, settings.site_id)
    if settings.mqtt.enabled:
        publisher = MqttPublisher(settings.mqtt, topics, spool=_open_spool(settings, state_dir))
        sinks.append(publisher)
    if settings.output.stdout and stdout is not None:
        sinks.append(StdoutSink(stdout))
    vad = make_gated_vad(settings.vad)
    endpointer = Endpointer(
        settings.vad,
        vad,
        partial_interval_ms=rec.partial_interval_ms if rec.partials else None,
    )
    worker = RecognitionWorker(recognizer, sinks, sequence, settings.site_id, rec.queue_size)
    daemon = Daemon(
        source,
        endpointer,
        worker,
        sinks,
        partials=rec.partials,
        vad=vad,
        publisher=publisher,
        state_dir=state_dir,
        notifier=SystemdNotifier(),
        recognizer=recognizer,
        sentences=rec.sentences,
        site_id=settings.site_id,
    )
    if publisher is not None and settings.mqtt.control:
        from edge_asr.mqtt.control import ControlHandler, ControlRequests

        handler = ControlHandler(control_commands(daemon))
        daemon.add_service(ControlRequests(publisher, topics, handler))
    attach_integrations(daemon, settings, recognizer, publisher, topics)
    return daemon


def attach_integrations(
    daemon: Daemon,
    settings: Settings,
    recognizer: Recognizer,
    publisher: MqttPublisher | None,
    topics: Topics,
) -> None:
    """Add the integrations the settings switch on (Home Assistant, Hermes, HTTP, Wyoming)."""
    from edge_asr.errors import ConfigError

    needs_mqtt = [
        name
        for name, on in (
            ("homeassistant", settings.homeassistant.enabled),
            ("hermes", settings.hermes.enabled),
        )
        if on
    ]
    if needs_mqtt and publisher is None:
        raise ConfigError(f"{needs_mqtt[0]}.enabled needs mqtt.enabled")
    # The integrations fill in below (each a sink, service and/or listener of the daemon).
    if settings.homeassistant.enabled and publisher is not None:
        from edge_asr.mqtt.discovery import attach_home_assistant

        attach_home_assistant(daemon, settings, publisher, topics)
    if settings.hermes.enabled and publisher is not None:
        from edge_asr.mqtt.hermes import attach_hermes

        attach_hermes(daemon, settings, publisher)
    if settings.http.enabled or settings.wyoming.enabled:
        from edge_asr.service.embedded import attach_servers

        attach_servers(daemon, settings, recognizer)


def control_commands(daemon: Daemon) -> dict[str, Callable[[dict[str, Any]], Any]]:
    """The commands of ``<prefix>/request/<command>``; each answers with the status."""
    from edge_asr.mqtt.control import no_params

    def pause(params: dict[str, Any]) -> dict[str, Any]:
        no_params(params)
        daemon.pause()
        return daemon.status()

    def resume(params: dict[str, Any]) -> dict[str, Any]:
        no_params(params)
        daemon.resume()
        return daemon.status()

    def status(params: dict[str, Any]) -> dict[str, Any]:
        no_params(params)
        return daemon.status()

    def reload(params: dict[str, Any]) -> dict[str, Any]:
        no_params(params)
        return daemon.reload()

    return {"pause": pause, "resume": resume, "status": status, "reload": reload}


def _open_spool(settings: Settings, state_dir: Path) -> TranscriptSpool | None:
    """The disk spool when ``mqtt.persistent`` (the default), else None (memory)."""
    if not settings.mqtt.persistent:
        return None
    import sqlite3

    from edge_asr.errors import ConfigError
    from edge_asr.mqtt.spool import SqliteSpool

    path = state_dir / SPOOL_FILE
    try:
        return SqliteSpool(path, settings.mqtt.queue_size)
    except (OSError, sqlite3.Error) as err:
        raise ConfigError(
            f"state_dir: cannot open the transcript spool {path}: {err} "
            "(make the folder writable, or set mqtt.persistent=false to keep them in memory)"
        ) from None
