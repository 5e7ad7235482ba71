"""A Wyoming speech-to-text server (Home Assistant's voice protocol) around a recognizer.

Each connection is a ``TranscriptionSession``: ``describe`` → ``info``; ``transcribe`` (optional)
then ``audio-start``, ``audio-chunk``…, ``audio-stop`` → ``transcript-start``,
``transcript-chunk``…, ``transcript``, ``transcript-stop``. Recognition runs in a worker thread
pool, never on the event loop, so many clients can be connected at once. Events are read with
size limits (the ``wyoming`` package's reader has none); anything malformed gets an ``error``
event and the connection is closed, never the server. Needs the ``[wyoming]`` extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np
from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.info import AsrModel, AsrProgram, Attribution, Describe, Info
from wyoming.ping import Ping, Pong

from edge_asr import __version__
from edge_asr.asr.recognizer import Recognizer
from edge_asr.errors import ConfigError, EdgeAsrError

if TYPE_CHECKING:
    from edge_asr.asr.recognizer import Transcript as AsrTranscript
    from edge_asr.service.metrics import Metrics
    from edge_asr.settings import WyomingSettings

log = logging.getLogger(__name__)

SOURCE = "wyoming"
PROJECT_URL = "https://github.com/edge-asr/edge-asr"
SAMPLE_WIDTHS = (1, 2, 4)  # bytes: unsigned 8-bit, signed 16-bit, signed 32-bit PCM
MAX_CHANNELS = 8
LINGER_S = 2.0  # after an error: how long unread input is drained so the error event arrives
RATE_RANGE = (1000, 96_000)  # with max_duration_s and max_clients, bounds the audio held


@dataclass(frozen=True)
class WyomingLimits:
    """What one connection may send."""

    max_duration_s: float = 60.0  # audio per transcription
    max_header_bytes: int = 64 * 1024  # the JSON line and its data
    max_payload_bytes: int = 1024 * 1024  # one event's binary payload (an audio chunk)
    workers: int = 1  # transcriptions at once; more wait for a free worker
    max_clients: int = 8  # connections at once; more get an error event and are closed

    @classmethod
    def from_settings(cls, settings: WyomingSettings) -> WyomingLimits:
        return cls(
            max_duration_s=settings.max_duration_s,
            workers=settings.workers,
            max_clients=settings.max_clients,
        )


class ProtocolError(EdgeAsrError):
    """The client sent something the protocol does not allow; ``code`` goes to the client."""

    def __init__(self, message: str, code: str = "bad-event") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class AudioFormat:
    rate: int
    width: int
    channels: int

    @classmethod
    def from_data(cls, data: dict[str, Any], event_type: str) -> AudioFormat:
        """The format an audio-start or audio-chunk declares; ProtocolError if unusable."""
        values = {}
        for key in ("rate", "width", "channels"):
            value = data.get(key)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ProtocolError(
                    f"{event_type}: '{key}' must be a whole number, got {value!r}",
                    "bad-audio-format",
                )
            values[key] = value
        fmt = cls(**values)
        if not RATE_RANGE[0] <= fmt.rate <= RATE_RANGE[1]:
            raise ProtocolError(
                f"{event_type}: rate {fmt.rate} Hz is not in {RATE_RANGE[0]}..{RATE_RANGE[1]}",
                "bad-audio-format",
            )
        if fmt.width not in SAMPLE_WIDTHS:
            raise ProtocolError(
                f"{event_type}: width {fmt.width} bytes is not supported (use 1, 2 or 4)",
                "bad-audio-format",
            )
        if not 1 <= fmt.channels <= MAX_CHANNELS:
            raise ProtocolError(
                f"{event_type}: {fmt.channels} channels is not in 1..{MAX_CHANNELS}",
                "bad-audio-format",
            )
        return fmt

    def to_float_mono(self, pcm: bytes) -> np.ndarray:
        """Mono float32 samples in [-1, 1] from interleaved PCM of this format."""
        frame = self.width * self.channels
        if len(pcm) % frame:
            raise ProtocolError(
                f"audio-chunk: {len(pcm)} bytes is not a whole number of {frame}-byte frames",
                "bad-audio-format",
            )
        if self.width == 1:
            samples = (np.frombuffer(pcm, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
        elif self.width == 2:
            samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        else:
            samples = np.frombuffer(pcm, dtype="<i4").astype(np.float32) / 2147483648.0
        return samples.reshape(-1, self.channels).mean(axis=1, dtype=np.float32)


async def read_event(reader: asyncio.StreamReader, limits: WyomingLimits) -> Event | None:
    """The next event, or None at a clean end of the stream.

    ProtocolError for a malformed or oversized event; asyncio.IncompleteReadError when the
    client goes away in the middle of one.
    """
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial.strip():
            return None
        raise
    except asyncio.LimitOverrunError:
        raise ProtocolError(
            f"event header longer than {limits.max_header_bytes} bytes", "event-too-large"
        ) from None
    try:
        header = json.loads(line)
    except ValueError:
        raise ProtocolError(f"event header is not JSON: {line[:80]!r}") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ProtocolError("event header must be a JSON object with a 'type' string")
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise ProtocolError(f"{header['type']}: 'data' must be a JSON object")
    data_length = _length(header, "data_length", limits.max_header_bytes)
    if data_length:
        try:
            extra = json.loads(await reader.readexactly(data_length))
        except ValueError:
            raise ProtocolError(f"{header['type']}: data is not JSON") from None
        if not isinstance(extra, dict):
            raise ProtocolError(f"{header['type']}: data must be a JSON object")
        data.update(extra)
    payload_length = _length(header, "payload_length", limits.max_payload_bytes)
    payload = await reader.readexactly(payload_length) if payload_length else None
    return Event(type=header["type"], data=data, payload=payload)


def _length(header: dict[str, Any], key: str, limit: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolError(f"{header['type']}: '{key}' must be a whole number >= 0")
    if value > limit:
        raise ProtocolError(
            f"{header['type']}: {key} {value} is more than the {limit}-byte limit",
            "event-too-large",
        )
    return value


def describe(recognizer: Recognizer, streaming: bool) -> Info:
    """The ``info`` answer: one ASR program with the loaded model."""
    attribution = Attribution(name="edge-asr", url=PROJECT_URL)
    model = AsrModel(
        name=recognizer.model_name,
        attribution=attribution,
        installed=True,
        description=f"{recognizer.model_name} {recognizer.model_version} (offline CTC)",
        version=recognizer.model_version,
        languages=[recognizer.language],
    )
    program = AsrProgram(
        name="edge-asr",
        attribution=attribution,
        installed=True,
        description="Offline speech recognition for small Linux boxes",
        version=__version__,
        models=[model],
        supports_transcript_streaming=streaming,
        requires_external_vad=True,
    )
    return Info(asr=[program])


class TranscriptionSession:
    """The state of one client connection: the audio of the transcription under way."""

    def __init__(
        self,
        recognize: Callable[[np.ndarray, int], Awaitable[AsrTranscript]],
        write: Callable[[Event], Awaitable[None]],
        info: Info,
        language: str,
        limits: WyomingLimits,
        streaming: bool,
    ) -> None:
        self._recognize = recognize
        self._write = write
        self._info = info
        self._language = language
        self._limits = limits
        self._streaming = streaming
        self._format: AudioFormat | None = None
        self._chunks: list[np.ndarray] = []
        self._samples = 0
        self._started = False  # transcript-start sent for the audio under way

    async def handle(self, event: Event) -> None:
        """React to one event; ProtocolError for one that cannot be used."""
        if AudioChunk.is_type(event.type):
            await self._audio_chunk(event)
        elif AudioStart.is_type(event.type):
            self._reset()
            self._format = AudioFormat.from_data(event.data, event.type)
            await self._start_transcript()
        elif AudioStop.is_type(event.type):
            await self._finish()
        elif Transcribe.is_type(event.type):
            requested = event.data.get("language")
            if requested and str(requested).split("-")[0] != self._language.split("-")[0]:
                log.warning(
                    "client asked for language %r; the model speaks %r", requested, self._language
                )
            self._reset()
        elif Describe.is_type(event.type):
            await self._write(self._info.event())
        elif Ping.is_type(event.type):
            await self._write(Pong(text=event.data.get("text")).event())
        else:
            # The protocol says to ignore what one does not know (e.g. select-program).
            log.debug("ignoring event %r", event.type)

    async def _audio_chunk(self, event: Event) -> None:
        fmt = AudioFormat.from_data(event.data, event.type)
        if self._format is None:  # audio-start is optional: the first chunk says the format
            self._format = fmt
            await self._start_transcript()
        elif fmt.rate != self._format.rate:
            raise ProtocolError(
                f"audio-chunk: rate changed from {self._format.rate} to {fmt.rate} Hz "
                "within one stream",
                "bad-audio-format",
            )
        samples = fmt.to_float_mono(event.payload or b"")
        self._samples += len(samples)
        if self._samples / fmt.rate > self._limits.max_duration_s:
            raise ProtocolError(
                f"audio longer than the {self._limits.max_duration_s:g} s limit "
                "(send audio-stop at the end of each utterance)",
                "audio-too-long",
            )
        self._chunks.append(samples)

    async def _start_transcript(self) -> None:
        if self._streaming and not self._started:
            self._started = True
            await self._write(TranscriptStart(language=self._language).event())

    async def _finish(self) -> None:
        rate = self._format.rate if self._format is not None else 16000
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.float32)
        await self._start_transcript()
        self._reset()
        if len(samples):
            result = await self._recognize(samples, rate)
            text = result.text
        else:
            log.info("audio-stop without audio: empty transcript")
            text = ""
        if self._streaming:
            for i, word in enumerate(text.split()):
                await self._write(TranscriptChunk(text=word if i == 0 else " " + word).event())
        await self._write(Transcript(text=text, language=self._language).event())
        if self._streaming:
            await self._write(TranscriptStop().event())

    def _reset(self) -> None:
        self._format = None
        self._chunks = []
        self._samples = 0
        self._started = False


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half-close after an error event and drain what the client still sends, for a while.

    Closing a socket with unread input makes TCP send a reset, and a reset makes the client's
    kernel drop the error event it has not read yet: the client would see "connection reset"
    instead of the reason."""
    if writer.can_write_eof():
        writer.write_eof()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LINGER_S
    with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
        while (left := deadline - loop.time()) > 0:
            if not await asyncio.wait_for(reader.read(1 << 16), left):
                return  # the client closed its side too


def listen_socket(uri: str) -> socket.socket:
    """A listening socket for ``tcp://HOST:PORT`` or ``unix://PATH``; ConfigError for
    another URI or one that cannot be listened on (port in use, no such folder)."""
    parsed = urlparse(uri)
    address: Any
    try:
        if parsed.scheme == "tcp":
            if not parsed.hostname or parsed.port is None:
                raise ConfigError(f"{uri}: give a host and port, e.g. tcp://0.0.0.0:10300")
            family, kind, proto, _, address = socket.getaddrinfo(
                parsed.hostname, parsed.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
            sock = socket.socket(family, kind, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        elif parsed.scheme == "unix":
            if not parsed.path:
                raise ConfigError(f"{uri}: give a socket path, e.g. unix:///run/asr.sock")
            Path(parsed.path).unlink(missing_ok=True)
            sock, address = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), parsed.path
        else:
            raise ConfigError(f"{uri}: only tcp://HOST:PORT and unix://PATH are supported")
    except OSError as e:
        raise ConfigError(f"cannot listen on {uri}: {e.strerror or e}") from None
    try:
        sock.bind(address)
        sock.listen(100)
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {uri}: {e.strerror or e}") from None
    sock.setblocking(False)
    return sock


class WyomingServer:
    """Serves one recognizer to any number of Wyoming clients."""

    def __init__(
        self,
        recognizer: Recognizer,
        limits: WyomingLimits | None = None,
        streaming: bool = True,
        metrics: Metrics | None = None,
    ) -> None:
        self.recognizer = recognizer
        self.limits = limits or WyomingLimits()
        self.streaming = streaming
        self.metrics = metrics
        self._info = describe(recognizer, streaming)
        self._executor = ThreadPoolExecutor(
            max_workers=self.limits.workers, thread_name_prefix="edge-asr-wyoming"
        )
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, uri: str, sock: socket.socket | None = None) -> None:
        """Listen on ``sock``, else on ``uri`` (see ``listen_socket``)."""
        if sock is None:
            sock = listen_socket(uri)
        limit = self.limits.max_header_bytes
        if sock.family == socket.AF_UNIX:
            self._server = await asyncio.start_unix_server(self._connection, sock=sock, limit=limit)
        else:
            self._server = await asyncio.start_server(self._connection, sock=sock, limit=limit)

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def serve(
        self, uri: str, stopping: asyncio.Event, sock: socket.socket | None = None
    ) -> None:
        """Listen on ``uri`` (or on ``sock``, bound to it beforehand) until ``stopping`` is
        set, then close every connection.

        The command line sets ``stopping`` on SIGTERM; the daemon runs this in a thread of
        its own and sets it with ``loop.call_soon_threadsafe(stopping.set)``.
        """
        await self.start(uri, sock)
        log.info(
            "serving %s %s over Wyoming on %s",
            self.recognizer.model_name,
            self.recognizer.model_version,
            uri,
        )
        try:
            await stopping.wait()
        finally:
            log.info("stopping")
            await self.stop()

    async def _recognize(self, samples: np.ndarray, rate: int) -> AsrTranscript:
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(
            self._executor, self.recognizer.transcribe, samples, rate
        )
        if self.metrics is not None:
            self.metrics.observe(SOURCE, result)
        log.info(
            "transcribed %.2f s in %.0f ms: %r",
            result.duration_s,
            result.processing_ms,
            result.text,
        )
        return result

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        peer = writer.get_extra_info("peername") or "local client"
        log.debug("client %s connected", peer)

        async def write(event: Event) -> None:
            await async_write_event(event, writer)

        session = TranscriptionSession(
            self._recognize,
            write,
            self._info,
            self.recognizer.language,
            self.limits,
            self.streaming,
        )
        try:
            if len(self._connections) > self.limits.max_clients:
                raise ProtocolError(
                    f"busy: {self.limits.max_clients} clients are connected, the most allowed; "
                    "try again later",
                    "too-many-clients",
                )
            while (event := await read_event(reader, self.limits)) is not None:
                await session.handle(event)
        except ProtocolError as e:
            log.warning("client %s: %s", peer, e)
            if self.metrics is not None:
                self.metrics.reject(SOURCE, e.code)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await write(Error(text=str(e), code=e.code).event())
                await _linger(reader, writer)
        except asyncio.IncompleteReadError:
            log.info("client %s went away in the middle of an event", peer)
        except ConnectionError as e:
            log.info("client %s: connection lost (%s)", peer, e.strerror or type(e).__name__)
        except asyncio.CancelledError:
            pass  # the server is stopping
        except Exception as e:  # one client's trouble must not stop the others
            log.exception("client %s: internal error", peer)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await write(Error(text=f"internal error: {e}", code="internal-error").event())
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()
            if task is not None:
                self._connections.discard(task)
            log.debug("client %s gone", peer)
