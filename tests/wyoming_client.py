"""Talking to a Wyoming server as Home Assistant does, with the ``wyoming`` package's own
client (import after ``pytest.importorskip("wyoming")``)."""

from __future__ import annotations

import wave
from pathlib import Path

from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.event import Event

READ_TIMEOUT = 30.0


def connect(uri: str) -> AsyncClient:
    """A client for ``uri`` (use as ``async with``); every read gives up after 30 s."""
    return AsyncClient.from_uri(uri, connect_timeout=5, read_timeout=READ_TIMEOUT)


def pcm_of(path: Path) -> tuple[int, int, int, bytes]:
    with wave.open(str(path), "rb") as w:
        return w.getframerate(), w.getsampwidth(), w.getnchannels(), w.readframes(w.getnframes())


async def send_audio(client: AsyncClient, path: Path, start: bool = True) -> None:
    rate, width, channels, pcm = pcm_of(path)
    if start:
        await client.write_event(AudioStart(rate, width, channels).event())
    step = 2048 * width * channels
    for i in range(0, len(pcm), step):
        await client.write_event(AudioChunk(rate, width, channels, pcm[i : i + step]).event())
    await client.write_event(AudioStop().event())


async def read_until_transcript(client: AsyncClient, streaming: bool = True) -> list[Event]:
    """Events up to and including the last one of a transcription."""
    last = "transcript-stop" if streaming else "transcript"
    events = []
    while True:
        event = await client.read_event()
        assert event is not None, f"server closed the connection after {events}"
        events.append(event)
        if event.type == last:
            return events


async def transcribe(uri: str, path: Path, streaming: bool = True) -> list[Event]:
    """``transcribe``, then the WAV file's audio; the events that answer it."""
    async with connect(uri) as client:
        await client.write_event(Transcribe(language="en").event())
        await send_audio(client, path)
        return await read_until_transcript(client, streaming)


def final_text(events: list[Event]) -> str:
    texts = [e.data["text"] for e in events if e.type == "transcript"]
    assert len(texts) == 1, events
    return str(texts[0])
