"""The daemon: audio source → endpointer → recognizer worker → sinks, and its lifecycle.

The capture loop (main thread) only reads blocks and runs the endpointer; recognition runs
in a worker thread so a slow utterance never stalls capture. Stopping (SIGTERM/SIGINT, or the
end of a file) finishes the utterance in progress, drains the worker, marks the site offline.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from edge_asr.audio.capture import AudioBlock, AudioSource
from edge_asr.audio.vad import Endpointer, GatedVad, PartialAudio, Utterance
from edge_asr.mqtt.client import MqttPublisher
from edge_asr.mqtt.payloads import ModelInfo, PartialMessage, TranscriptMessage
from edge_asr.service.health import HEALTH_FILE, HealthReport, write_health
from edge_asr.service.state import SequenceCounter
from edge_asr.service.systemd import SystemdNotifier

if TYPE_CHECKING:
    from edge_asr.asr.recognizer import Recognizer
    from edge_asr.settings import Settings

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 30.0  # longest wait for queued utterances at shutdown
SINK_CLOSE_TIMEOUT_S = 5.0
_OVERRUN_LOG_INTERVAL_S = 10.0
HEALTH_INTERVAL_S = 1.0  # health.json is rewritten this often
AUDIO_FLOWING_S = 5.0  # no block for this long means audio stopped


class TranscriptSink(Protocol):
    """Where transcripts go (MQTT, stdout, ...)."""

    def start(self) -> None: ...

    def publish_final(self, message: TranscriptMessage) -> None: ...

    def publish_partial(self, message: PartialMessage) -> None: ...

    def close(self, timeout: float) -> None: ...


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
    (READY once audio flows, WATCHDOG only while healthy, STOPPING at shutdown)."""

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
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def ready(self, status: str) -> None:
        if self._notifier is not None:
            self._notifier.ready(status)
            self._notifier.start_watchdog(self.healthy)

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
        try:
            write_health(self._state_dir, self._report())
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
    ) -> None:
        self._source = source
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

    def health_report(self) -> HealthReport:
        """How the daemon is doing right now (for the health file and the watchdog)."""
        flowing = time.monotonic() - self._last_audio < AUDIO_FLOWING_S
        connected = self._publisher.connected if self._publisher is not None else False
        pending = self._publisher.pending() if self._publisher is not None else 0
        state = "stopping" if self.stopping else ("listening" if flowing else "waiting for audio")
        return HealthReport(
            pid=os.getpid(),
            updated_at=time.time(),
            listening=not self.stopping,
            audio_flowing=flowing,
            worker_alive=self._worker.alive,
            broker_connected=connected,
            spool_pending=pending,
            status=f"{state}; {self._worker.transcripts} transcripts since start",
        )

    def run(self) -> None:
        for sink in self._sinks:
            sink.start()
        self._worker.start()
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
                log.info("listening (first audio received)")
                if self._heartbeat is not None:
                    self._heartbeat.ready("listening")
                first = False
            for event in self._endpointer.feed(block):
                if isinstance(event, Utterance):
                    self._worker.submit_final(event)
                elif self._partials:
                    self._worker.submit_partial(event)
            self._report_overruns()
            if self._stop.is_set():
                return

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


def build_daemon(settings: Settings, stdout: TextIO | None = None) -> Daemon:
    """Build every part from the settings; raises EdgeAsrError subclasses on bad setups."""
    from edge_asr.asr.recognizer import Recognizer
    from edge_asr.audio.capture import open_source
    from edge_asr.audio.vad import make_gated_vad
    from edge_asr.mqtt.topics import Topics

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
    )
    state_dir = settings.resolved_state_dir()
    sequence = SequenceCounter(state_dir)
    rec = settings.recognizer
    started = time.perf_counter()
    recognizer = Recognizer.load(
        rec.model_dir, num_threads=rec.num_threads, decoding=rec.decoding, sentences=rec.sentences
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
    if settings.mqtt.enabled:
        topics = Topics(settings.mqtt.base_topic, settings.site_id)
        publisher = MqttPublisher(settings.mqtt, topics)
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
    return Daemon(
        source,
        endpointer,
        worker,
        sinks,
        partials=rec.partials,
        vad=vad,
        publisher=publisher,
        state_dir=state_dir,
        notifier=SystemdNotifier(),
    )
