"""`edge-asr wyoming`: the real server as a subprocess, driven by the wyoming package's client
and by raw sockets sending what a broken client might."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, ModelUnderTest, expected_text, free_port, wait_until
from speech import HELDOUT_ESPEAK_VOICES, have, speak

pytest.importorskip("wyoming", reason="the [wyoming] extra is not installed")
from wyoming.asr import Transcribe  # noqa: E402
from wyoming.audio import AudioStart, AudioStop  # noqa: E402
from wyoming.client import AsyncClient  # noqa: E402
from wyoming.event import Event, async_read_event  # noqa: E402
from wyoming.info import Describe, Info  # noqa: E402
from wyoming.ping import Ping  # noqa: E402
from wyoming_client import (  # noqa: E402
    READ_TIMEOUT,
    connect,
    final_text,
    read_until_transcript,
    send_audio,
    transcribe,
)

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not (have("espeak-ng") and have("sox")), reason="needs espeak-ng and sox"),
]

MAX_DURATION = 5.0


@dataclass
class Server:
    """``edge-asr wyoming`` on a free port, its log in a file."""

    proc: subprocess.Popen[bytes]
    uri: str
    log_path: Path
    port: int = 0

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def client(self) -> AsyncClient:
        return connect(self.uri)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return int(self.proc.returncode)


def start_server(tmp: Path, model: Path, *args: str, uri: str | None = None) -> Server:
    port = free_port()
    uri = uri or f"tcp://127.0.0.1:{port}"
    log_path = tmp / f"wyoming-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_ASR_")}
    env["PYTHONPATH"] = str(REPO)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge_asr", "wyoming", "--model", str(model)]
            + ["--uri", uri, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
            start_new_session=True,
        )
    server = Server(proc, uri, log_path, port)

    def up() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"edge-asr wyoming exited ({proc.returncode}):\n{server.log}")
        return "over Wyoming on" in server.log

    if not wait_until(up, timeout=60, interval=0.2):
        server.stop()
        pytest.fail(f"edge-asr wyoming did not start within 60 s:\n{server.log}")
    return server


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, test_model: ModelUnderTest
) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("wyoming"),
        test_model.path,
        "--max-duration",
        str(MAX_DURATION),
        "--workers",
        "2",
    )
    yield srv
    assert srv.stop() == 0, srv.log
    assert "Traceback" not in srv.log, srv.log


# --- the protocol, as Home Assistant speaks it -------------------------------------------


def test_describe_answers_info_with_the_loaded_model(server: Server, recognizer: Any) -> None:
    async def ask() -> Event | None:
        async with server.client() as client:
            await client.write_event(Describe().event())
            return await client.read_event()

    event = asyncio.run(ask())
    assert event is not None and Info.is_type(event.type)
    info = Info.from_event(event)
    assert len(info.asr) == 1
    program = info.asr[0]
    assert program.name == "edge-asr"
    assert program.installed
    assert program.supports_transcript_streaming
    assert [m.name for m in program.models] == [recognizer.model_name]
    assert program.models[0].languages == [recognizer.language]
    assert program.models[0].version == recognizer.model_version


def test_transcript_streams_and_equals_the_recognizers(
    server: Server, kitchen: Path, recognizer: Any
) -> None:
    events = asyncio.run(transcribe(server.uri, kitchen))
    types = [e.type for e in events]
    assert types[0] == "transcript-start"
    assert types[-2:] == ["transcript", "transcript-stop"]
    assert set(types[1:-2]) <= {"transcript-chunk"}
    text = final_text(events)
    assert text == expected_text(recognizer, kitchen)
    assert "".join(e.data["text"] for e in events if e.type == "transcript-chunk") == text
    assert events[-2].data.get("language") == recognizer.language


def test_kitchen_light_command_is_recognized_in_sentences_mode(
    tmp_path: Path, kitchen: Path, test_model: ModelUnderTest
) -> None:
    if not test_model.real:
        pytest.skip("no trained model (the stand-in model only outputs blanks)")
    sentences = tmp_path / "sentences.ini"
    sentences.write_text(
        "[lights]\nturn (on | off) [the] (kitchen | bedroom) light\n", encoding="utf-8"
    )
    srv = start_server(tmp_path, test_model.path, "--sentences", str(sentences))
    try:
        assert final_text(asyncio.run(transcribe(srv.uri, kitchen))) in (
            "turn on the kitchen light",
            "turn on kitchen light",  # [the] is optional in the grammar
        )
    finally:
        assert srv.stop() == 0, srv.log


def test_stereo_44k_audio_gives_the_recognizers_transcript(
    server: Server, tmp_path: Path, recognizer: Any
) -> None:
    path = speak(
        "set a timer for ten minutes",
        tmp_path / "timer.wav",
        voice=HELDOUT_ESPEAK_VOICES[1],
        rate=44100,
        channels=2,
    )
    assert final_text(asyncio.run(transcribe(server.uri, path))) == expected_text(recognizer, path)


def test_several_clients_at_once_each_get_their_own_transcript(
    server: Server, tmp_path: Path, recognizer: Any
) -> None:
    phrases = ["turn on the kitchen light", "open the garage door", "stop the alarm", "lock it"]
    paths = [speak(p, tmp_path / f"{i}.wav") for i, p in enumerate(phrases)]

    async def all_at_once() -> list[list[Event]]:
        return list(await asyncio.gather(*(transcribe(server.uri, p) for p in paths)))

    results = asyncio.run(all_at_once())
    assert [final_text(r) for r in results] == [expected_text(recognizer, p) for p in paths]


def test_several_transcriptions_on_one_connection(
    server: Server, kitchen: Path, tmp_path: Path, recognizer: Any
) -> None:
    other = speak("open the garage door", tmp_path / "garage.wav")

    async def twice() -> tuple[str, str]:
        async with server.client() as client:
            await send_audio(client, kitchen)
            first = final_text(await read_until_transcript(client))
            await client.write_event(Transcribe().event())
            await send_audio(client, other)
            return first, final_text(await read_until_transcript(client))

    assert asyncio.run(twice()) == (
        expected_text(recognizer, kitchen),
        expected_text(recognizer, other),
    )


def test_audio_without_audio_start_is_accepted(
    server: Server, kitchen: Path, recognizer: Any
) -> None:
    async def run() -> str:
        async with server.client() as client:
            await send_audio(client, kitchen, start=False)
            return final_text(await read_until_transcript(client))

    assert asyncio.run(run()) == expected_text(recognizer, kitchen)


def test_audio_stop_without_audio_gives_an_empty_transcript(server: Server) -> None:
    async def run() -> list[Event]:
        async with server.client() as client:
            await client.write_event(AudioStart(16000, 2, 1).event())
            await client.write_event(AudioStop().event())
            return await read_until_transcript(client)

    assert final_text(asyncio.run(run())) == ""


def test_ping_gets_pong_and_unknown_events_are_ignored(server: Server) -> None:
    async def run() -> list[str]:
        async with server.client() as client:
            await client.write_event(Event(type="select-program", data={"name": "x"}))
            await client.write_event(Event(type="no-such-event", payload=b"\1\2\3"))
            await client.write_event(Ping(text="hi").event())
            pong = await client.read_event()
            await client.write_event(Describe().event())
            info = await client.read_event()
            assert pong is not None and info is not None
            return [pong.type, str(pong.data.get("text")), info.type]

    assert asyncio.run(run()) == ["pong", "hi", "info"]


# --- broken clients get an error event; the server goes on ------------------------------------


async def raw_exchange(port: int, data: bytes) -> list[Event]:
    """Send raw bytes; the events the server answers until it closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        await asyncio.sleep(0.3)  # a slow client: the server has answered and closed by now
        events = []
        while (event := await asyncio.wait_for(async_read_event(reader), READ_TIMEOUT)) is not None:
            events.append(event)
        return events
    finally:
        writer.close()


def header(event_type: str, **fields: Any) -> bytes:
    return json.dumps({"type": event_type, **fields}).encode() + b"\n"


def start_event(rate: Any = 16000, width: Any = 2, channels: Any = 1) -> bytes:
    return header("audio-start", data={"rate": rate, "width": width, "channels": channels})


def chunk_event(pcm: bytes, rate: int = 16000, width: int = 2, channels: int = 1) -> bytes:
    data = {"rate": rate, "width": width, "channels": channels}
    return header("audio-chunk", data=data, payload_length=len(pcm)) + pcm


SECOND = bytes(32000)  # one second of 16 kHz 16-bit mono silence

BAD_INPUT = {
    "not-json": (b"hello there\n", "bad-event", "not JSON"),
    "json-list": (b"[1, 2, 3]\n", "bad-event", "'type'"),
    "no-type": (b'{"data": {}}\n', "bad-event", "'type'"),
    "data-not-object": (b'{"type": "describe", "data": [1]}\n', "bad-event", "'data'"),
    "endless-header": (b"{" + b" " * 100_000, "event-too-large", "longer than"),
    "huge-payload": (header("audio-chunk", payload_length=10**10), "event-too-large", "limit"),
    "huge-data": (header("describe", data_length=10**9), "event-too-large", "limit"),
    "negative-length": (header("audio-chunk", payload_length=-5), "bad-event", ">= 0"),
    "length-not-number": (header("audio-chunk", payload_length="ten"), "bad-event", ">= 0"),
    "extra-data-not-json": (header("describe", data_length=5) + b"nope!", "bad-event", "JSON"),
    "width-3": (start_event(width=3), "bad-audio-format", "width 3"),
    "rate-0": (start_event(rate=0), "bad-audio-format", "rate 0"),
    "rate-too-high": (start_event(rate=192_000), "bad-audio-format", "rate 192000"),
    "rate-as-text": (start_event(rate="16000"), "bad-audio-format", "'rate'"),
    "no-channels": (start_event(channels=0), "bad-audio-format", "0 channels"),
    "chunk-without-format": (
        header("audio-chunk", payload_length=4) + b"\0\0\0\0",
        "bad-audio-format",
        "'rate'",
    ),
    "half-a-sample": (start_event() + chunk_event(b"\0\0\0"), "bad-audio-format", "frames"),
    "rate-changes": (
        start_event() + chunk_event(SECOND) + chunk_event(SECOND, rate=8000),
        "bad-audio-format",
        "rate changed",
    ),
    "too-long": (
        start_event() + chunk_event(SECOND) * int(MAX_DURATION + 20),
        "audio-too-long",
        "limit",
    ),
}


@pytest.mark.parametrize("name", list(BAD_INPUT))
def test_bad_input_gets_an_error_event_and_the_connection_closes(server: Server, name: str) -> None:
    data, code, text = BAD_INPUT[name]
    events = asyncio.run(raw_exchange(server.port, data))
    errors = [e for e in events if e.type == "error"]
    assert len(errors) == 1, events
    assert errors[0].data["code"] == code
    assert text in errors[0].data["text"]
    assert server.proc.poll() is None


def test_clients_vanishing_mid_event_or_mid_stream_leave_the_server_working(
    server: Server, kitchen: Path, recognizer: Any
) -> None:
    async def vanish(data: bytes) -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(data)
        await writer.drain()
        writer.close()

    async def run() -> None:
        await vanish(header("audio-chunk", payload_length=1000) + b"\0" * 10)  # mid-payload
        await vanish(start_event() + chunk_event(SECOND) * 2)  # mid-stream, no audio-stop
        await vanish(b'{"type": "desc')  # mid-header
        # Reset hard (RST) in the middle of a stream.
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(start_event() + chunk_event(SECOND))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        sock.close()
        # A client that sends audio-stop and leaves before the transcript.
        await vanish(start_event() + chunk_event(SECOND) + header("audio-stop"))

    asyncio.run(run())
    assert final_text(asyncio.run(transcribe(server.uri, kitchen))) == expected_text(
        recognizer, kitchen
    )
    assert server.proc.poll() is None


def test_clients_over_max_clients_get_an_error_and_the_others_go_on(
    tmp_path: Path, test_model: ModelUnderTest, kitchen: Path, recognizer: Any
) -> None:
    srv = start_server(tmp_path, test_model.path, "--max-clients", "2")

    async def run() -> tuple[list[Event], str]:
        first, second = srv.client(), srv.client()
        async with first, second:
            await first.write_event(Ping().event())
            await second.write_event(Ping().event())
            assert await first.read_event() is not None
            assert await second.read_event() is not None
            refused = await raw_exchange(srv.port, b"")
            await first.write_event(Transcribe().event())
            await send_audio(first, kitchen)
            return refused, final_text(await read_until_transcript(first))

    try:
        refused, text = asyncio.run(run())
        assert [(e.type, e.data.get("code")) for e in refused] == [("error", "too-many-clients")]
        assert text == expected_text(recognizer, kitchen)

        def accepted() -> bool:  # once the server has seen both clients leave
            answer = asyncio.run(raw_exchange(srv.port, header("ping") + b"bye\n"))
            return [e.type for e in answer] == ["pong", "error"]

        assert wait_until(accepted, 5)
    finally:
        assert srv.stop() == 0, srv.log


# --- the command line ------------------------------------------------------------------------


def test_no_streaming_sends_only_the_transcript(
    tmp_path: Path, test_model: ModelUnderTest, kitchen: Path
) -> None:
    srv = start_server(tmp_path, test_model.path, "--no-streaming")
    try:
        events = asyncio.run(transcribe(srv.uri, kitchen, streaming=False))
        assert [e.type for e in events] == ["transcript"]
    finally:
        assert srv.stop() == 0, srv.log


def test_unix_socket_and_sigterm_with_a_client_connected(
    tmp_path: Path, test_model: ModelUnderTest, kitchen: Path, recognizer: Any
) -> None:
    socket_path = tmp_path / "asr.sock"
    srv = start_server(tmp_path, test_model.path, uri=f"unix://{socket_path}")
    try:
        assert final_text(asyncio.run(transcribe(srv.uri, kitchen))) == expected_text(
            recognizer, kitchen
        )
        idle = socket.socket(socket.AF_UNIX)
        idle.connect(str(socket_path))
        assert srv.stop() == 0, srv.log
        idle.close()
        assert "Traceback" not in srv.log
    finally:
        srv.stop()


@pytest.mark.parametrize(
    "uri, message",
    [("http://127.0.0.1:10300", "only tcp://"), ("tcp://127.0.0.1", "host and port")],
)
def test_bad_uri_exits_2_with_one_line(test_model: ModelUnderTest, uri: str, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edge_asr", "wyoming", "--model", str(test_model.path)]
        + ["--uri", uri],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_exits_2(server: Server, test_model: ModelUnderTest) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edge_asr", "wyoming", "--model", str(test_model.path)]
        + ["--uri", server.uri],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert f"cannot listen on {server.uri}" in result.stderr


def test_embedded_in_a_thread_with_metrics_as_the_daemon_would(
    kitchen: Path, recognizer: Any
) -> None:
    import threading

    pytest.importorskip("prometheus_client")
    from edge_asr.service.metrics import Metrics
    from edge_asr.service.wyoming import WyomingServer

    metrics = Metrics(daemon=True)
    server = WyomingServer(recognizer, metrics=metrics)
    uri = f"tcp://127.0.0.1:{free_port()}"
    loop_box: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def main() -> None:
        stopping = asyncio.Event()
        loop_box.append((asyncio.get_running_loop(), stopping))
        await server.serve(uri, stopping)

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: bool(loop_box), 10)

        def answers() -> bool:
            try:
                return final_text(asyncio.run(transcribe(uri, kitchen))) is not None
            except OSError:
                return False

        assert wait_until(answers, 10)
        text = metrics.render()[0].decode()
        assert 'edge_asr_utterances_total{source="wyoming"} 1.0' in text
    finally:
        if loop_box:
            loop, stopping = loop_box[0]
            loop.call_soon_threadsafe(stopping.set)
        thread.join(10)
    assert not thread.is_alive()
