"""The HTTP API and the Wyoming server inside the daemon (`edge-asr run` with http.enabled and
wyoming.enabled): the real daemon on a live stdin feeder, driven with httpx and the wyoming
package's own client."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, Broker, Daemon, expected_text, free_port, wait_until
from feeder import StdinFeeder
from speech import have

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi", reason="the [http] extra is not installed")
pytest.importorskip("wyoming", reason="the [wyoming] extra is not installed")
from wyoming.info import Describe, Info  # noqa: E402
from wyoming_client import connect, final_text, send_audio, transcribe  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.skipif(not (have("espeak-ng") and have("sox")), reason="needs espeak-ng and sox"),
]

TOKEN = "daemon-s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STOP_BUDGET_S = 5.0  # a daemon with both servers and open connections stops within this


@dataclass
class Servers:
    """A daemon on a stdin feeder serving HTTP (token required) and Wyoming."""

    daemon: Daemon
    feeder: StdinFeeder
    url: str
    wyoming_uri: str

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kwargs)

    def metrics(self) -> str:
        r = self.get("/metrics", headers=AUTH)
        assert r.status_code == 200, r.text
        return r.text


@pytest.fixture
def start_servers(
    daemon_factory: Callable[..., Daemon], tmp_path: Path
) -> Iterator[Callable[..., Servers]]:
    """``start_servers(*args, broker=None, flowing=True)``: the daemon, once /health answers.

    The token comes from a file named relative to $CREDENTIALS_DIRECTORY, as systemd's
    LoadCredential= passes it.
    """
    feeders: list[StdinFeeder] = []
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "http-token").write_text(TOKEN + "\n", encoding="utf-8")

    def start(*args: str, broker: Broker | None = None, flowing: bool = True) -> Servers:
        http_port, wyoming_port = free_port(), free_port()
        daemon = daemon_factory(
            "--source", "stdin", "--stdout", "--set", "recognizer.partials=false",
            "--set", "http.enabled=true", "--set", f"http.port={http_port}",
            "--set", "http.token_file=http-token",
            "--set", "wyoming.enabled=true",
            "--set", f"wyoming.uri=tcp://127.0.0.1:{wyoming_port}",
            *args,
            broker=broker,
            env={"CREDENTIALS_DIRECTORY": str(credentials)},
        )  # fmt: skip
        feeder = StdinFeeder(daemon, flowing=flowing)
        feeders.append(feeder)
        servers = Servers(
            daemon, feeder, f"http://127.0.0.1:{http_port}", f"tcp://127.0.0.1:{wyoming_port}"
        )

        def up() -> bool:
            if daemon.proc is not None and daemon.proc.poll() is not None:
                pytest.fail(f"daemon exited ({daemon.proc.returncode}):\n{daemon.log}")
            try:
                return servers.get("/health").status_code == 200
            except httpx.TransportError:
                return False

        if not wait_until(up, timeout=60, interval=0.2):
            pytest.fail(f"the daemon's HTTP API did not answer within 60 s:\n{daemon.log}")
        return servers

    yield start
    for feeder in feeders:
        feeder.close()


def sample(text: str, name: str) -> float | None:
    """The value of one sample in Prometheus text (``name`` with its labels), or None."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_ready_follows_the_audio_and_only_transcribe_and_metrics_need_the_token(
    start_servers: Callable[..., Servers], kitchen: Path
) -> None:
    servers = start_servers(flowing=False)
    assert servers.get("/health").json() == {"status": "ok"}
    r = servers.get("/ready")
    assert r.status_code == 503, r.text
    assert r.json()["ready"] is False and "no audio" in r.json()["status"]

    servers.feeder.flow(True)
    assert wait_until(lambda: servers.get("/ready").status_code == 200, 15), servers.daemon.log
    assert "listening" in servers.get("/ready").json()["status"]

    for headers in ({}, {"Authorization": "Bearer wrong"}):
        assert servers.get("/metrics", headers=headers).status_code == 401
        r = httpx.post(servers.url + "/transcribe", content=kitchen.read_bytes(), headers=headers)
        assert r.status_code == 401
    assert servers.get("/metrics", headers=AUTH).status_code == 200

    servers.feeder.flow(False)  # the microphone goes quiet: not ready (after AUDIO_FLOWING_S)
    assert wait_until(lambda: servers.get("/ready").status_code == 503, 15)
    assert "Traceback" not in servers.daemon.log


@pytest.fixture(scope="module")
def kitchen_samples(kitchen: Path) -> np.ndarray:
    samples, rate = sf.read(str(kitchen), dtype="float32")
    assert rate == 16000
    return samples


def test_transcribe_works_while_the_mic_path_runs_and_metrics_count_both(
    start_servers: Callable[..., Servers],
    broker: Broker,
    kitchen: Path,
    kitchen_samples: np.ndarray,
    recognizer: Any,
) -> None:
    servers = start_servers(broker=broker)
    servers.daemon.wait_listening()
    servers.feeder.say(kitchen_samples)  # the microphone hears it while the upload runs
    r = httpx.post(
        servers.url + "/transcribe", content=kitchen.read_bytes(), headers=AUTH, timeout=60
    )
    assert r.status_code == 200, r.text
    assert r.json()["text"] == expected_text(recognizer, kitchen)

    assert wait_until(lambda: servers.daemon.stdout.strip() != "", 60), servers.daemon.log
    mic = json.loads(servers.daemon.stdout.splitlines()[0])
    # Each final reaches the sinks in turn: the metrics sink may come just after stdout.
    assert wait_until(
        lambda: sample(servers.metrics(), 'edge_asr_utterances_total{source="mic"}') == 1.0, 10
    )
    text = servers.metrics()
    for name, value in [
        ('edge_asr_utterances_total{source="http"}', 1.0),
        ('edge_asr_transcription_seconds_count{source="mic"}', 1.0),
        ('edge_asr_transcription_seconds_sum{source="mic"}', mic["processing_ms"] / 1000),
        ('edge_asr_rtf_count{source="mic"}', 1.0),
        ("edge_asr_audio_flowing", 1.0),
        ("edge_asr_audio_overruns_total", 0.0),
        ("edge_asr_recognizer_overruns_total", 0.0),
        ("edge_asr_broker_connected", 1.0),
        ("edge_asr_spool_depth", 0.0),
    ]:
        assert sample(text, name) == pytest.approx(value, abs=1e-6), (name, text)
    assert f'name="{recognizer.model_name}"' in text

    broker.stop()  # read at scrape time: the next scrape sees it
    assert wait_until(lambda: sample(servers.metrics(), "edge_asr_broker_connected") == 0.0, 30)


@pytest.mark.timeout(240)
def test_a_hundred_corrupt_uploads_get_clear_errors_and_nothing_the_mic_hears_is_lost(
    start_servers: Callable[..., Servers], broker: Broker, kitchen_samples: np.ndarray
) -> None:
    from corrupt_audio import corrupt_corpus

    from edge_asr.mqtt.payloads import TranscriptMessage

    corpus = corrupt_corpus()
    assert len(corpus) >= 100
    servers = start_servers(broker=broker)
    servers.daemon.wait_listening()
    servers.feeder.say(kitchen_samples)  # spoken while the bad uploads arrive
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=servers.url, headers=AUTH, timeout=60) as client:
        for item in corpus:
            r = client.post("/transcribe", content=item.data, headers={"X-Filename": item.name})
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            assert r.status_code in (200, 413, 415, 422), (item.name, r.status_code, r.text)
            if r.status_code != 200:
                detail = r.json()["detail"]
                assert isinstance(detail, str) and detail and "\n" not in detail, (
                    item.name,
                    r.text,
                )
        assert client.get("/ready").status_code == 200
    assert statuses.get(200, 0) < len(corpus) / 3, statuses  # most are refused
    servers.feeder.wait_said()
    servers.feeder.say(kitchen_samples)
    assert wait_until(lambda: len(servers.daemon.stdout.splitlines()) == 2, 60), servers.daemon.log
    finals = [TranscriptMessage.model_validate_json(x) for x in servers.daemon.stdout.splitlines()]
    assert [f.seq for f in finals] == [1, 2]
    assert "Traceback" not in servers.daemon.log


def test_wyoming_answers_from_the_daemon_and_both_servers_stop_with_it(
    start_servers: Callable[..., Servers], kitchen: Path, recognizer: Any
) -> None:
    servers = start_servers()
    servers.daemon.wait_listening()

    async def describe() -> Info:
        async with connect(servers.wyoming_uri) as client:
            await client.write_event(Describe().event())
            event = await client.read_event()
            assert event is not None and Info.is_type(event.type), event
            return Info.from_event(event)

    info = asyncio.run(describe())
    assert [m.name for m in info.asr[0].models] == [recognizer.model_name]
    events = asyncio.run(transcribe(servers.wyoming_uri, kitchen))
    assert final_text(events) == expected_text(recognizer, kitchen)
    assert sample(servers.metrics(), 'edge_asr_utterances_total{source="wyoming"}') == 1.0

    # Idle clients of both servers stay connected; the stop must not wait for them.
    with httpx.Client(base_url=servers.url) as keep_alive:
        assert keep_alive.get("/health").status_code == 200
        with socket.create_connection(("127.0.0.1", int(servers.wyoming_uri.rsplit(":", 1)[1]))):
            started = time.monotonic()
            assert servers.daemon.stop(timeout=30) == 0, servers.daemon.log
            took = time.monotonic() - started
    assert took < STOP_BUDGET_S, f"stopped in {took:.1f} s:\n{servers.daemon.log}"
    assert "Traceback" not in servers.daemon.log
    with pytest.raises(httpx.TransportError):
        httpx.get(servers.url + "/health", timeout=2)


def test_limits_and_the_wyoming_socket_come_from_the_settings(
    start_servers: Callable[..., Servers], kitchen: Path, recognizer: Any, tmp_path: Path
) -> None:
    path = tmp_path / "asr.sock"
    servers = start_servers(
        "--set", "http.max_upload_mb=0.01", "--set", "wyoming.max_duration_s=4",
        "--set", "wyoming.streaming=false", "--set", f"wyoming.uri=unix://{path}",
    )  # fmt: skip
    uri = f"unix://{path}"
    assert kitchen.stat().st_size > 10_000 and sf.info(str(kitchen)).duration < 4
    r = httpx.post(servers.url + "/transcribe", content=kitchen.read_bytes(), headers=AUTH)
    assert r.status_code == 413, r.text

    events = asyncio.run(transcribe(uri, kitchen, streaming=False))
    assert [e.type for e in events] == ["transcript"]  # no transcript-start/-chunk/-stop
    assert final_text(events) == expected_text(recognizer, kitchen)

    five_seconds = tmp_path / "five-seconds.wav"
    sf.write(str(five_seconds), np.zeros(5 * 16000, np.int16), 16000, subtype="PCM_16")

    async def too_long() -> list[Any]:
        async with connect(uri) as client:
            await send_audio(client, five_seconds)
            events = []
            while (event := await client.read_event()) is not None:
                events.append(event)
            return events

    (error,) = asyncio.run(too_long())
    assert error.type == "error" and error.data["code"] == "audio-too-long", error
    assert "4 s limit" in error.data["text"]
    assert servers.daemon.proc is not None and servers.daemon.proc.poll() is None


# --- bad setups: one line, exit 2, before any audio is read -----------------------------


def _blocked_module(directory: Path, name: str) -> str:
    """A PYTHONPATH on which ``import name`` fails as if the package were not installed."""
    package = directory / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        f"raise ModuleNotFoundError({f'No module named {name!r}'!r}, name={name!r})\n",
        encoding="utf-8",
    )
    return f"{directory}:{REPO}"


@pytest.mark.parametrize(
    "case", ["http port taken", "wyoming port taken", "token file missing", "[http]", "[wyoming]"]
)
def test_bad_setup_exits_2_with_one_line_before_listening(
    daemon_factory: Callable[..., Daemon], tmp_path: Path, case: str
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    env: dict[str, str] = {}
    args = ["--set", "http.enabled=true", "--set", f"http.port={free_port()}"]
    if case == "http port taken":
        args = ["--set", "http.enabled=true", "--set", f"http.port={port}"]
        message = f"http: cannot listen on 127.0.0.1:{port}: Address already in use"
    elif case == "wyoming port taken":
        args = ["--set", "wyoming.enabled=true", "--set", f"wyoming.uri=tcp://127.0.0.1:{port}"]
        message = f"wyoming.uri: cannot listen on tcp://127.0.0.1:{port}: Address already in use"
    elif case == "token file missing":
        args += ["--set", "http.token_file=/nonexistent/token"]
        message = "http.token_file: cannot read /nonexistent/token"
    elif case == "[http]":
        env["PYTHONPATH"] = _blocked_module(tmp_path / "blocked", "fastapi")
        message = "http.enabled needs the [http] extra (fastapi is missing)"
    else:
        args = [
            "--set",
            "wyoming.enabled=true",
            "--set",
            f"wyoming.uri=tcp://127.0.0.1:{free_port()}",
        ]
        env["PYTHONPATH"] = _blocked_module(tmp_path / "blocked", "wyoming")
        message = "wyoming.enabled needs the [wyoming] extra (wyoming is missing)"
    # On stdin that ends at once: a daemon that did start would exit 0 at the end of input.
    daemon = daemon_factory("--source", "stdin", *args, env=env).start()
    try:
        assert daemon.wait_exit(60) == 2, daemon.log
    finally:
        taken.close()
    errors = [line for line in daemon.log.splitlines() if line.startswith("edge-asr:")]
    assert len(errors) == 1 and message in errors[0], daemon.log
    # Capture never started (it logs "reading raw 16-bit PCM ... from stdin").
    assert "from stdin" not in daemon.log and "Traceback" not in daemon.log, daemon.log
