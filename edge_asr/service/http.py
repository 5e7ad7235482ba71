"""The HTTP API: ``POST /transcribe``, ``GET /health``, ``GET /ready``, ``GET /metrics``.

``create_app`` builds a FastAPI app around a loaded recognizer; ``build_server`` wraps it in a
uvicorn server that ``edge-asr serve`` runs in the foreground and the daemon can run in a
thread (``server.run()``; stop with ``server.should_exit = True``). Recognition runs in a
worker thread pool, never on the event loop. Needs the ``[http]`` extra.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import FrameType

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge_asr import __version__
from edge_asr.asr.recognizer import Recognizer, Transcript
from edge_asr.audio.files import read_audio_bytes
from edge_asr.errors import AudioError, AudioFormatError, AudioTooLongError, ConfigError
from edge_asr.service.metrics import Metrics
from edge_asr.settings import HttpSettings

log = logging.getLogger(__name__)

SOURCE = "http"

Readiness = Callable[[], tuple[bool, str]]


@dataclass(frozen=True)
class HttpLimits:
    """What one request may ask of the service."""

    max_upload_bytes: int = 25_000_000  # http.max_upload_mb's default, 25 MB
    max_duration_s: float = 300.0
    workers: int = 1  # transcriptions at once; more requests wait for a free worker
    # Requests being uploaded, waiting or transcribed at once; more get 503 (bounds memory).
    max_pending: int = 8

    @classmethod
    def from_settings(cls, settings: HttpSettings) -> HttpLimits:
        return cls(
            max_upload_bytes=int(settings.max_upload_mb * 1e6),
            max_duration_s=settings.max_duration_s,
            workers=settings.workers,
            max_pending=settings.max_pending,
        )


class ModelInfo(BaseModel):
    name: str
    version: str


class TranscriptResponse(BaseModel):
    """The answer to ``POST /transcribe`` (same field names as the MQTT transcript)."""

    text: str
    confidence: float = Field(description="0..1, how sure the model is of this text")
    duration_s: float = Field(description="length of the audio")
    processing_ms: float = Field(description="time spent recognizing")
    intent: str | None = Field(default=None, description="sentences-file section, if any")
    model: ModelInfo
    lang: str


class _TooLarge(Exception):
    """The request body grew past the upload limit while being read."""


def create_app(
    recognizer: Recognizer,
    readiness: Readiness,
    metrics: Metrics,
    token: str | None = None,
    limits: HttpLimits | None = None,
) -> FastAPI:
    """The API around ``recognizer``.

    ``readiness()`` says whether the process can do its job and why not (``GET /ready``); it
    and ``metrics.render()`` run in a thread, off the event loop, and should answer at once;
    ``token``, when set, must come as ``Authorization: Bearer <token>`` on ``/transcribe``
    and ``/metrics`` (``/health`` and ``/ready`` stay open for probes).
    """
    limits = limits or HttpLimits()
    executor = ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="edge-asr-http")
    metrics.set_model(recognizer.model_name, recognizer.model_version, recognizer.language)
    model = ModelInfo(name=recognizer.model_name, version=recognizer.model_version)
    pending = [0]  # /transcribe requests under way

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="edge-asr",
        version=__version__,
        description="Offline speech recognition: POST audio, get the transcript.",
        lifespan=lifespan,
        # The interactive docs load scripts from a CDN, which an offline device cannot reach.
        docs_url=None,
        redoc_url=None,
    )

    async def authorized(request: Request) -> None:
        if token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            metrics.reject(SOURCE, "unauthorized")
            raise HTTPException(
                401,
                "missing or wrong bearer token (send 'Authorization: Bearer <token>')",
                headers={"WWW-Authenticate": "Bearer"},
            )

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        """Readiness: 200 when the service can transcribe now, else 503 with the reason."""
        try:
            ok, status = await asyncio.to_thread(readiness)
        except Exception as e:  # a broken check must not take the endpoint down
            log.exception("readiness check failed")
            ok, status = False, f"readiness check failed: {e}"
        return JSONResponse({"ready": ok, "status": status}, status_code=200 if ok else 503)

    @app.get("/metrics", dependencies=[Depends(authorized)])
    async def prometheus_metrics() -> Response:
        body, content_type = await asyncio.to_thread(metrics.render)
        return Response(body, media_type=content_type)

    @app.post(
        "/transcribe",
        dependencies=[Depends(authorized)],
        response_model=TranscriptResponse,
        responses={
            401: {"description": "missing or wrong bearer token"},
            413: {"description": "upload or audio longer than the limit"},
            415: {"description": "not audio libsndfile can decode"},
            422: {"description": "audio that cannot be used (empty, NaN) or no file part"},
            503: {"description": "too many requests under way; retry later"},
        },
    )
    async def transcribe(request: Request) -> TranscriptResponse:
        """Transcribe one recording: the raw file as the body, or a multipart form with
        one file part. Any format and rate libsndfile reads."""
        # The event loop is one thread: this count needs no lock.
        if pending[0] >= limits.max_pending:
            metrics.reject(SOURCE, "busy")
            raise HTTPException(
                503,
                f"busy: {pending[0]} requests under way, the most allowed; retry later",
                headers={"Retry-After": "1"},
            )
        pending[0] += 1
        try:
            return await _transcribe(request)
        finally:
            pending[0] -= 1

    async def _transcribe(request: Request) -> TranscriptResponse:
        data, name = await _read_upload(request, limits.max_upload_bytes, metrics)
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(
                executor, _recognize, recognizer, data, limits.max_duration_s, name
            )
        except AudioTooLongError as e:
            metrics.reject(SOURCE, "too_large")
            raise HTTPException(413, str(e)) from None
        except AudioFormatError as e:
            metrics.reject(SOURCE, "not_audio")
            hint = ""
            if request.headers.get("content-type", "").startswith("application/x-www-form"):
                # curl sends files this way with --data-binary (fine) and --data (mangled).
                hint = "; with curl, send files with --data-binary @FILE or -F file=@FILE"
            raise HTTPException(415, f"{e}{hint}") from None
        except AudioError as e:
            metrics.reject(SOURCE, "bad_audio")
            raise HTTPException(422, str(e)) from None
        except Exception:
            log.exception("transcription of %s failed", name)
            raise HTTPException(500, f"{name}: transcription failed (see the server log)") from None
        metrics.observe(SOURCE, result)
        log.info(
            "transcribed %.2f s of %s in %.0f ms", result.duration_s, name, result.processing_ms
        )
        log.debug("transcript of %s: %r", name, result.text)
        return TranscriptResponse(
            text=result.text,
            confidence=round(result.confidence, 4),
            duration_s=result.duration_s,
            processing_ms=result.processing_ms,
            intent=result.intent,
            model=model,
            lang=recognizer.language,
        )

    return app


def _recognize(recognizer: Recognizer, data: bytes, max_duration_s: float, name: str) -> Transcript:
    audio = read_audio_bytes(data, max_duration_s, name=name)
    return recognizer.transcribe(audio.samples, audio.sample_rate)


async def _read_upload(request: Request, limit: int, metrics: Metrics) -> tuple[bytes, str]:
    """The uploaded audio and a name for messages; HTTPException for a bad request."""
    length = request.headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise HTTPException(400, f"Content-Length {length!r} is not a number") from None
        if declared > limit:
            metrics.reject(SOURCE, "too_large")
            raise HTTPException(413, _too_large(limit))
    content_type = request.headers.get("content-type", "").lower()
    try:
        if content_type.startswith("multipart/form-data"):
            return await _read_multipart(request, limit, metrics)
        body = b"".join([chunk async for chunk in _limited(request.stream(), limit)])
    except _TooLarge:
        metrics.reject(SOURCE, "too_large")
        raise HTTPException(413, _too_large(limit)) from None
    except ClientDisconnect:
        # Nobody is left to answer; the status only shows in logs and metrics.
        log.info("client disconnected during the upload")
        metrics.reject(SOURCE, "disconnected")
        raise HTTPException(400, "client disconnected during the upload") from None
    if not body:
        metrics.reject(SOURCE, "bad_audio")
        raise HTTPException(
            422, "empty body: send the audio file as the body or as a multipart file part"
        )
    return body, "request body"


async def _read_multipart(request: Request, limit: int, metrics: Metrics) -> tuple[bytes, str]:
    parser = MultiPartParser(
        request.headers, _limited(request.stream(), limit), max_files=1, max_fields=16
    )
    try:
        form = await parser.parse()
    except MultiPartException as e:
        metrics.reject(SOURCE, "bad_form")
        raise HTTPException(400, f"malformed multipart form: {e.message}") from None
    try:
        files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        if not files:
            metrics.reject(SOURCE, "bad_form")
            raise HTTPException(
                422,
                "multipart form has no complete file part: send the audio as e.g. -F file=@a.wav",
            )
        upload = files[0]
        data = await upload.read()
        name = upload.filename or "uploaded file"
    finally:
        await form.close()
    if not data:
        metrics.reject(SOURCE, "bad_audio")
        raise HTTPException(422, f"{name}: contains no audio (empty file part)")
    return data, name


async def _limited(stream: AsyncGenerator[bytes, None], limit: int) -> AsyncGenerator[bytes, None]:
    total = 0
    async for chunk in stream:
        total += len(chunk)
        if total > limit:
            raise _TooLarge
        yield chunk


def _too_large(limit: int) -> str:
    return f"upload larger than the {limit / 1e6:g} MB limit"


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; ConfigError naming them if that fails
    (port in use, address not on this machine)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


def build_server(
    app: FastAPI, host: str, port: int, graceful_shutdown_s: int = 10
) -> uvicorn.Server:
    """A uvicorn server for ``app`` that logs through the stdlib root logger.

    ``server.run()`` blocks and stops on SIGTERM/SIGINT; from another thread set
    ``server.should_exit = True``. Give ``run(sockets=[bind_socket(host, port)])`` to find
    out at once whether the address can be used. Requests still running at a stop get
    ``graceful_shutdown_s`` seconds.
    """
    config = uvicorn.Config(
        _AnswerLostIsNotAnError(app),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_keep_alive=5,
        # Slow or stuck clients cannot pile up without bound.
        limit_concurrency=64,
        timeout_graceful_shutdown=graceful_shutdown_s,
    )
    return _Server(config)


class _AnswerLost(Exception):
    """The connection broke before the answer could be sent."""


class _AnswerLostIsNotAnError:
    """Logs a broken connection in one line instead of uvicorn's traceback.

    A request whose body turns out to be malformed gets uvicorn's own 400 while the
    endpoint is still running; the endpoint's answer then has nowhere to go.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def guarded_send(message: Message) -> None:
            try:
                await send(message)
            except Exception as e:
                raise _AnswerLost(f"{type(e).__name__}: {e}") from e

        try:
            await self.app(scope, receive, guarded_send)
        except _AnswerLost as e:
            log.info("answer to %s %s not sent: %s", scope.get("method"), scope.get("path"), e)


class _Server(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A stop request is a normal end: exit 0 instead of re-raising the signal afterwards.
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True
