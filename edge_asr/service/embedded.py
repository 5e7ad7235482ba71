"""The HTTP API and the Wyoming server inside the daemon (``http.enabled``, ``wyoming.enabled``).

Both share the daemon's recognizer and one ``Metrics``: the microphone's transcripts reach it
through a sink, the daemon's state (overruns, spool, broker) is read at each scrape of
``/metrics``. Each server runs in a thread of its own and is stopped with the daemon. Their
addresses are bound when the daemon is built, so a port in use is a ConfigError (exit 2)
before any audio is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from typing import TYPE_CHECKING

from edge_asr.errors import ConfigError
from edge_asr.mqtt.payloads import PartialMessage, TranscriptMessage

if TYPE_CHECKING:
    import uvicorn

    from edge_asr.app import Daemon, DaemonControl
    from edge_asr.asr.recognizer import Recognizer
    from edge_asr.service.metrics import Metrics
    from edge_asr.service.wyoming import WyomingServer
    from edge_asr.settings import HttpSettings, Settings, WyomingSettings

log = logging.getLogger(__name__)

MIC = "mic"  # the metrics' source label of the daemon's own audio
# Requests still running when the daemon stops get this long (within its stop budget).
HTTP_GRACEFUL_STOP_S = 2


def attach_servers(daemon: Daemon, settings: Settings, recognizer: Recognizer) -> None:
    """Add the HTTP and/or Wyoming server the settings switch on; they share one Metrics
    (shown at the HTTP API's /metrics).

    ConfigError if an extra is missing, the token file cannot be read or an address is taken.
    """
    metrics = None
    if settings.http.enabled:
        metrics = daemon_metrics(daemon, mqtt=settings.mqtt.enabled)
        daemon.add_service(HttpService.bind(daemon, settings.http, recognizer, metrics))
    if settings.wyoming.enabled:
        daemon.add_service(WyomingService.bind(settings.wyoming, recognizer, metrics))


def daemon_metrics(daemon: Daemon, mqtt: bool) -> Metrics:
    """Metrics fed by the daemon: a sink counts the microphone's transcripts; its state is
    read at each scrape."""
    try:
        from edge_asr.service.metrics import Metrics
    except ImportError as e:
        raise _missing_extra("http", "http", e) from None
    metrics = Metrics(daemon=True, mqtt=mqtt)

    def refresh() -> None:
        status = daemon.status()
        metrics.set_daemon_state(
            audio_flowing=status["audio_flowing"],
            audio_overruns=status["audio_overruns"],
            recognizer_overruns=status["recognizer_overruns"],
            spool_pending=status["spool_pending"],
            spool_dropped=status["spool_dropped"],
            broker_connected=status["broker_connected"],
        )

    metrics.refresh_with(refresh)
    daemon.add_sink(MetricsSink(metrics))
    return metrics


class MetricsSink:
    """Counts each final transcript of the microphone, with its latency and real-time factor."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def start(self) -> None:
        pass

    def publish_final(self, message: TranscriptMessage) -> None:
        self._metrics.observe(MIC, message)

    def publish_partial(self, message: PartialMessage) -> None:
        pass

    def close(self, timeout: float) -> None:
        pass


def readiness(daemon: DaemonControl) -> tuple[bool, str]:
    """``GET /ready`` in the daemon: the model is loaded (it was, before the daemon was built)
    and audio flows from the source."""
    report = daemon.health_report()
    if not report.audio_flowing:
        return False, f"no audio from the source ({report.status})"
    if not report.worker_alive:
        return False, "the recognizer stopped (see the log)"
    return not report.stopping, report.status


class HttpService:
    """The HTTP API (uvicorn) in a thread of the daemon."""

    def __init__(self, server: uvicorn.Server, sock: socket.socket, where: str) -> None:
        self._server = server
        self._sock = sock
        self._where = where
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)

    @classmethod
    def bind(
        cls,
        daemon: DaemonControl,
        settings: HttpSettings,
        recognizer: Recognizer,
        metrics: Metrics,
    ) -> HttpService:
        """Build the app and bind its address now; ConfigError if that cannot be done."""
        try:
            from edge_asr.service.http import HttpLimits, bind_socket, build_server, create_app
        except ImportError as e:
            raise _missing_extra("http", "http", e) from None
        token = settings.read_token()
        limits = HttpLimits.from_settings(settings)
        app = create_app(recognizer, lambda: readiness(daemon), metrics, token, limits)
        try:
            sock = bind_socket(settings.host, settings.port)
        except ConfigError as e:
            raise ConfigError(f"http: {e} (see http.host and http.port)") from None
        server = build_server(
            app, settings.host, settings.port, graceful_shutdown_s=HTTP_GRACEFUL_STOP_S
        )
        where = f"http://{settings.host}:{settings.port}"
        log.info("HTTP API on %s (%s)", where, "bearer token required" if token else "no token")
        return cls(server, sock, where)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except Exception:  # the daemon goes on without its HTTP API; say so
            log.exception("HTTP API on %s stopped", self._where)

    def close(self, timeout: float) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("HTTP API did not stop within %.0f s", timeout)
            self._server.force_exit = True
        with contextlib.suppress(OSError):
            self._sock.close()


class WyomingService:
    """The Wyoming server on an asyncio loop of its own, in a thread of the daemon."""

    def __init__(self, server: WyomingServer, uri: str, sock: socket.socket) -> None:
        self._server = server
        self._uri = uri
        self._sock = sock
        self._loop = asyncio.new_event_loop()
        self._stopping = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="wyoming", daemon=True)

    @classmethod
    def bind(
        cls, settings: WyomingSettings, recognizer: Recognizer, metrics: Metrics | None
    ) -> WyomingService:
        """Build the server and bind its URI now; ConfigError if that cannot be done."""
        try:
            from edge_asr.service.wyoming import WyomingLimits, WyomingServer, listen_socket
        except ImportError as e:
            raise _missing_extra("wyoming", "wyoming", e) from None
        try:
            sock = listen_socket(settings.uri)
        except ConfigError as e:
            raise ConfigError(f"wyoming.uri: {e}") from None
        limits = WyomingLimits.from_settings(settings)
        server = WyomingServer(recognizer, limits, streaming=settings.streaming, metrics=metrics)
        return cls(server, settings.uri, sock)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._server.serve(self._uri, self._stopping, self._sock))
        except Exception:  # the daemon goes on without its Wyoming server; say so
            log.exception("Wyoming server on %s stopped", self._uri)
        finally:
            self._loop.close()

    def close(self, timeout: float) -> None:
        with contextlib.suppress(RuntimeError):  # the loop already ended
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("Wyoming server did not stop within %.0f s", timeout)


def _missing_extra(setting: str, extra: str, error: ImportError) -> ConfigError:
    return ConfigError(
        f"{setting}.enabled needs the [{extra}] extra ({error.name} is missing): "
        f"pip install 'edge-asr[{extra}]'"
    )
