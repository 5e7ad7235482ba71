"""`edge-asr serve`: the real HTTP service as a subprocess, driven with httpx and raw sockets."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, ModelUnderTest, expected_text, free_port, wait_until
from speech import HELDOUT_ESPEAK_VOICES, have, speak

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi", reason="the [http] extra is not installed")

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not (have("espeak-ng") and have("sox")), reason="needs espeak-ng and sox"),
]

TOKEN = "s3cret-token"
MAX_UPLOAD = 1_000_000  # bytes
MAX_DURATION = 10.0  # seconds


@dataclass
class Service:
    """``edge-asr serve`` on 127.0.0.1:port, its log in a file."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return int(self.proc.returncode)


def start_service(
    tmp: Path, model: Path | None, *args: str, env: dict[str, str] | None = None
) -> Service:
    port = free_port()
    log_path = tmp / f"serve-{port}.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_ASR_")}
    full_env["PYTHONPATH"] = str(REPO)
    full_env.update(env or {})
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge_asr", "serve"]
            + (["--model", str(model)] if model is not None else [])
            + ["--port", str(port), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=REPO,
            start_new_session=True,
        )
    service = Service(proc, port, log_path)

    def up() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"edge-asr serve exited ({proc.returncode}):\n{service.log}")
        try:
            return httpx.get(service.url + "/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    if not wait_until(up, timeout=60, interval=0.2):
        service.stop()
        pytest.fail(f"edge-asr serve did not answer /health within 60 s:\n{service.log}")
    return service


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, test_model: ModelUnderTest
) -> Iterator[Service]:
    """One service with a token and small limits, shared by the tests of this module."""
    tmp = tmp_path_factory.mktemp("serve")
    token_file = tmp / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    svc = start_service(
        tmp,
        test_model.path,
        "--token-file",
        str(token_file),
        "--max-upload-mb",
        str(MAX_UPLOAD / 1e6),
        "--max-duration",
        str(MAX_DURATION),
        "--workers",
        "2",
    )
    yield svc
    assert svc.stop() == 0, svc.log
    assert "Traceback" not in svc.log, svc.log


@pytest.fixture
def client(service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=service.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    ) as c:
        yield c


def raw_request(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes as they are; what the server answers until it closes (or ``timeout``)."""
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        with contextlib.suppress(TimeoutError):
            while chunk := s.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


# --- transcribing ----------------------------------------------------------------------


def test_raw_wav_body_gives_the_recognizers_transcript(
    client: httpx.Client, kitchen: Path, recognizer: object
) -> None:
    r = client.post("/transcribe", content=kitchen.read_bytes())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["text"] == expected_text(recognizer, kitchen)
    assert 0.0 <= body["confidence"] <= 1.0
    assert body["duration_s"] == pytest.approx(sf.info(str(kitchen)).duration, abs=0.01)
    assert body["processing_ms"] > 0
    assert body["model"]["name"] == recognizer.model_name  # type: ignore[attr-defined]
    assert body["lang"] == recognizer.language  # type: ignore[attr-defined]


# The audio still has to choose on/off, the room and the intent.
SENTENCES = """\
[lights]
turn (on | off) [the] (kitchen | bedroom | living room) light

[alarm]
stop the alarm
"""


def test_kitchen_light_command_is_recognized_with_its_intent(
    tmp_path: Path, kitchen: Path, test_model: ModelUnderTest
) -> None:
    if not test_model.real:
        pytest.skip("no trained model (the stand-in model only outputs blanks)")
    sentences = tmp_path / "sentences.ini"
    sentences.write_text(SENTENCES, encoding="utf-8")
    svc = start_service(tmp_path, test_model.path, "--sentences", str(sentences))
    try:
        r = httpx.post(svc.url + "/transcribe", content=kitchen.read_bytes(), timeout=60)
        assert (r.json()["text"], r.json()["intent"]) in (
            ("turn on the kitchen light", "lights"),
            ("turn on kitchen light", "lights"),  # [the] is optional in the grammar
        )
    finally:
        assert svc.stop() == 0, svc.log


def test_multipart_upload_of_a_stereo_44k_flac_gives_the_recognizers_transcript(
    client: httpx.Client, tmp_path: Path, recognizer: object
) -> None:
    flac = tmp_path / "bedroom.flac"
    wav = speak("turn off the bedroom lights", tmp_path / "b.wav", voice=HELDOUT_ESPEAK_VOICES[1])
    data, rate = sf.read(str(wav), dtype="float32")
    import soxr

    stereo = np.stack([soxr.resample(data, rate, 44100)] * 2, axis=1)
    sf.write(str(flac), stereo, 44100, format="FLAC")
    with open(flac, "rb") as f:
        r = client.post("/transcribe", files={"file": ("bedroom.flac", f, "audio/flac")})
    assert r.status_code == 200, r.text
    assert r.json()["text"] == expected_text(recognizer, flac)


def test_several_clients_at_once_all_get_their_transcripts(
    service: Service, kitchen: Path, recognizer: object
) -> None:
    want = expected_text(recognizer, kitchen)
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def post(_: int) -> tuple[int, str]:
        r = httpx.post(
            service.url + "/transcribe", content=kitchen.read_bytes(), headers=headers, timeout=60
        )
        return r.status_code, r.json().get("text", r.text)

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(post, range(6)))
    assert results == [(200, want)] * 6


# --- bad requests get a clear answer -------------------------------------------------------


def test_not_audio_is_415_naming_the_problem(client: httpx.Client) -> None:
    r = client.post("/transcribe", content=b"this is a text file, not a recording\n" * 20)
    assert r.status_code == 415
    assert "not a readable audio file" in r.json()["detail"]


def test_multipart_file_that_is_not_audio_is_415_naming_the_file(client: httpx.Client) -> None:
    r = client.post("/transcribe", files={"file": ("notes.txt", b"hello", "text/plain")})
    assert r.status_code == 415
    assert r.json()["detail"].startswith("notes.txt: not a readable audio file")


def test_empty_body_is_422(client: httpx.Client) -> None:
    r = client.post("/transcribe", content=b"")
    assert r.status_code == 422
    assert "empty body" in r.json()["detail"]


def test_wav_header_without_samples_is_422(client: httpx.Client) -> None:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(0, dtype=np.float32), 16000, format="WAV")
    r = client.post("/transcribe", content=buf.getvalue())
    assert r.status_code in (415, 422)
    assert "audio" in r.json()["detail"]


def test_nan_samples_are_422(client: httpx.Client) -> None:
    buf = io.BytesIO()
    samples = np.zeros(16000, dtype=np.float32)
    samples[100] = np.nan
    sf.write(buf, samples, 16000, format="WAV", subtype="FLOAT")
    r = client.post("/transcribe", content=buf.getvalue())
    assert r.status_code == 422
    assert "NaN" in r.json()["detail"]


def test_audio_longer_than_the_limit_is_413(client: httpx.Client) -> None:
    buf = io.BytesIO()
    # 8 kHz 8-bit: long in seconds, small in bytes (under the upload limit).
    sf.write(buf, np.zeros(int(8000 * (MAX_DURATION + 5))), 8000, format="WAV", subtype="PCM_U8")
    assert len(buf.getvalue()) < MAX_UPLOAD
    r = client.post("/transcribe", content=buf.getvalue())
    assert r.status_code == 413
    assert "limit" in r.json()["detail"]


def test_declared_upload_over_the_limit_is_413_before_the_body_is_sent(service: Service) -> None:
    answer = raw_request(
        service.port,
        b"POST /transcribe HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + TOKEN.encode()
        + b"\r\nContent-Length: 10000000000\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b"limit" in answer


def test_chunked_upload_growing_over_the_limit_is_413(client: httpx.Client) -> None:
    def body() -> Iterator[bytes]:
        for _ in range(20):
            yield b"\0" * 100_000  # 2 MB in all, never announced

    try:
        r = client.post("/transcribe", content=body())
    except httpx.TransportError:
        pytest.fail("the server dropped the connection instead of answering 413")
    assert r.status_code == 413
    assert "limit" in r.json()["detail"]


def test_multipart_over_the_limit_is_413(client: httpx.Client) -> None:
    big = b"\0" * (MAX_UPLOAD + 1000)
    r = client.post("/transcribe", files={"file": ("big.wav", big, "audio/wav")})
    assert r.status_code == 413


def test_multipart_without_a_file_part_is_422(client: httpx.Client) -> None:
    r = client.post("/transcribe", files={"language": (None, "en")})
    assert r.status_code == 422
    assert "no complete file part" in r.json()["detail"]


def test_curl_data_binary_upload_is_transcribed(
    client: httpx.Client, kitchen: Path, recognizer: object
) -> None:
    # curl --data-binary @file labels the body as a url-encoded form.
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    r = client.post("/transcribe", content=kitchen.read_bytes(), headers=form)
    assert r.status_code == 200, r.text
    assert r.json()["text"] == expected_text(recognizer, kitchen)


def test_curl_data_mangled_upload_is_415_explaining_how_to_send_a_file(
    client: httpx.Client, kitchen: Path
) -> None:
    # curl --data @file (not --data-binary) strips newlines and carriage returns.
    mangled = kitchen.read_bytes()[:44].replace(b"RIFF", b"RIF")
    r = client.post("/transcribe", data={mangled.decode("latin-1"): ""})
    assert r.status_code == 415
    assert "--data-binary" in r.json()["detail"]


def test_multipart_without_boundary_is_400(client: httpx.Client) -> None:
    r = client.post(
        "/transcribe", content=b"garbage", headers={"Content-Type": "multipart/form-data"}
    )
    assert r.status_code == 400
    assert "multipart" in r.json()["detail"]


def test_two_file_parts_are_400(client: httpx.Client, kitchen: Path) -> None:
    data = kitchen.read_bytes()
    r = client.post("/transcribe", files=[("file", ("a.wav", data)), ("file", ("b.wav", data))])
    assert r.status_code == 400


def test_bad_content_length_is_an_error_not_a_crash(service: Service) -> None:
    answer = raw_request(
        service.port,
        b"POST /transcribe HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 4"), answer


def test_wrong_method_and_path_are_405_and_404(client: httpx.Client) -> None:
    assert client.get("/transcribe").status_code == 405
    assert client.get("/nothing-here").status_code == 404


def test_garbage_and_dropped_connections_leave_the_server_working(
    service: Service, client: httpx.Client, kitchen: Path
) -> None:
    for junk in (
        b"\x00\xff" * 500 + b"\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"POST /transcribe HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /transcribe HTTP/1.1\r\nHost: x\r\n" + b"X-Long: " + b"a" * 200_000 + b"\r\n\r\n",
    ):
        # The server may reset a hopeless connection; it must stay up.
        with contextlib.suppress(OSError):
            raw_request(service.port, junk)
    # A client that announces a body and disconnects halfway through it.
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as s:
        s.sendall(
            b"POST /transcribe HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + b"\r\nContent-Length: 500000\r\n\r\n"
            + kitchen.read_bytes()[:20000]
        )
    assert client.get("/health").status_code == 200
    assert client.post("/transcribe", content=kitchen.read_bytes()).status_code == 200
    assert service.proc.poll() is None


# --- token, health, readiness, metrics -----------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": "Basic x"}],
    ids=["missing", "wrong", "no-scheme", "basic"],
)
def test_missing_or_wrong_token_is_401(service: Service, kitchen: Path, headers: dict) -> None:
    r = httpx.post(service.url + "/transcribe", content=kitchen.read_bytes(), headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert "bearer token" in r.json()["detail"]
    assert httpx.get(service.url + "/metrics", headers=headers).status_code == 401


def test_health_and_ready_need_no_token(service: Service) -> None:
    assert httpx.get(service.url + "/health").json() == {"status": "ok"}
    r = httpx.get(service.url + "/ready")
    assert r.status_code == 200
    assert r.json()["ready"] is True
    assert "loaded" in r.json()["status"]


def test_metrics_count_utterances_latency_and_rejections(
    client: httpx.Client, kitchen: Path
) -> None:
    def value(text: str, name: str) -> float:
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = client.get("/metrics").text
    client.post("/transcribe", content=kitchen.read_bytes())
    client.post("/transcribe", content=b"not audio at all")
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    after = r.text
    for name, grew in [
        ('edge_asr_utterances_total{source="http"}', 1),
        ('edge_asr_transcription_seconds_count{source="http"}', 1),
        ('edge_asr_rtf_count{source="http"}', 1),
        ('edge_asr_requests_rejected_total{reason="not_audio",source="http"}', 1),
    ]:
        assert value(after, name) == value(before, name) + grew, name
    assert "edge_asr_model_info{" in after
    # The standalone service has no microphone or broker: no made-up values for them.
    assert "broker_connected" not in after
    assert "spool_depth" not in after


# --- the command line ------------------------------------------------------------------------


def test_binds_to_localhost_without_token_by_default(
    tmp_path: Path, test_model: ModelUnderTest, kitchen: Path
) -> None:
    svc = start_service(tmp_path, test_model.path)
    try:
        assert f"on http://127.0.0.1:{svc.port} (no token)" in svc.log
        assert httpx.post(svc.url + "/transcribe", content=kitchen.read_bytes()).status_code == 200
        other = _non_loopback_address()
        if other is not None:
            with pytest.raises(OSError):
                socket.create_connection((other, svc.port), timeout=2).close()
    finally:
        assert svc.stop() == 0, svc.log


def test_model_settings_come_from_config_and_environment_as_in_kubernetes(
    tmp_path: Path, test_model: ModelUnderTest, recognizer: object
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"recognizer:\n  model_dir: {test_model.path}\n", encoding="utf-8")
    svc = start_service(
        tmp_path,
        None,
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        env={"EDGE_ASR_RECOGNIZER__NUM_THREADS": "2"},
    )
    try:
        status = httpx.get(svc.url + "/ready").json()["status"]
        assert recognizer.model_name in status  # type: ignore[attr-defined]
    finally:
        assert svc.stop() == 0, svc.log


def test_token_from_the_environment(tmp_path: Path, test_model: ModelUnderTest) -> None:
    svc = start_service(tmp_path, test_model.path, env={"EDGE_ASR_HTTP__TOKEN": "envtoken"})
    try:
        assert httpx.get(svc.url + "/metrics").status_code == 401
        auth = {"Authorization": "Bearer envtoken"}
        assert httpx.get(svc.url + "/metrics", headers=auth).status_code == 200
    finally:
        svc.stop()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--token-file", "/nonexistent/token"], "cannot read /nonexistent/token"),
        (["--model", "/nonexistent/model"], "/nonexistent/model"),
    ],
)
def test_bad_setup_exits_2_with_one_line(
    test_model: ModelUnderTest, args: list[str], message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edge_asr", "serve", "--model", str(test_model.path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_exits_2_naming_the_address(
    service: Service, test_model: ModelUnderTest
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edge_asr", "serve", "--model", str(test_model.path)]
        + ["--port", str(service.port)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 2, result.stderr
    assert f"cannot listen on 127.0.0.1:{service.port}: Address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent; picks the outgoing interface
            address = str(s.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_sigterm_stops_the_service_cleanly(tmp_path: Path, test_model: ModelUnderTest) -> None:
    svc = start_service(tmp_path, test_model.path)
    assert svc.stop() == 0
    assert wait_until(lambda: svc.proc.poll() is not None, 5)
    assert "Traceback" not in svc.log


def test_daemon_metrics_render_what_the_daemon_sets() -> None:
    from edge_asr.asr.recognizer import Transcript
    from edge_asr.service.metrics import Metrics

    metrics = Metrics(daemon=True)
    metrics.observe("mic", Transcript("stop the alarm", 0.9, duration_s=2.0, processing_ms=50.0))
    state = {
        "audio_flowing": True,
        "audio_overruns": 3,
        "recognizer_overruns": 1,
        "spool_pending": 7,
        "spool_dropped": 0,
        "broker_connected": True,
    }
    metrics.refresh_with(lambda: metrics.set_daemon_state(**state))
    text = metrics.render()[0].decode()
    assert 'edge_asr_utterances_total{source="mic"} 1.0' in text
    assert 'edge_asr_rtf_sum{source="mic"} 0.025' in text
    assert "edge_asr_audio_overruns_total 3.0" in text
    assert "edge_asr_recognizer_overruns_total 1.0" in text
    assert "edge_asr_audio_flowing 1.0" in text
    assert "edge_asr_spool_depth 7.0" in text
    assert "edge_asr_broker_connected 1.0" in text
    # The daemon's running totals advance the counters by the difference, at each scrape.
    state.update(audio_overruns=5, spool_pending=0, broker_connected=False)
    text = metrics.render()[0].decode()
    assert "edge_asr_audio_overruns_total 5.0" in text
    assert "edge_asr_spool_depth 0.0" in text
    assert "edge_asr_broker_connected 0.0" in text
    assert "broker_connected" not in Metrics(daemon=True, mqtt=False).render()[0].decode()
    # Each Metrics has its own registry: a second one starts from zero.
    assert "edge_asr_spool_depth 0.0" in Metrics(daemon=True).render()[0].decode()


def test_embedded_server_in_a_thread_reports_readiness_as_it_changes(recognizer: object) -> None:
    """How the daemon embeds the API: its own readiness check, its Metrics, a server thread."""
    import threading

    from edge_asr.service.http import build_server, create_app
    from edge_asr.service.metrics import Metrics

    state = {"ready": False, "status": "no audio from the microphone yet"}
    metrics = Metrics(daemon=True)
    app = create_app(recognizer, lambda: (state["ready"], state["status"]), metrics)  # type: ignore[arg-type]
    port = free_port()
    server = build_server(app, "127.0.0.1", port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: server.started, 10)
        url = f"http://127.0.0.1:{port}"
        r = httpx.get(url + "/ready")
        assert (r.status_code, r.json()) == (
            503,
            {"ready": False, "status": "no audio from the microphone yet"},
        )
        state.update(ready=True, status="listening")
        assert httpx.get(url + "/ready").status_code == 200
        metrics.set_broker_connected(True)
        assert "edge_asr_broker_connected 1.0" in httpx.get(url + "/metrics").text
    finally:
        server.should_exit = True
        thread.join(10)
    assert not thread.is_alive()


def test_requests_over_max_pending_get_503_and_the_first_still_completes(
    tmp_path: Path, test_model: ModelUnderTest, kitchen: Path
) -> None:
    import threading

    svc = start_service(tmp_path, test_model.path, "--max-pending", "1")
    release = threading.Event()
    data = kitchen.read_bytes()

    def slow_body() -> Iterator[bytes]:
        yield data[:1000]
        release.wait(30)  # holds the only slot while the second request arrives
        yield data[1000:]

    first: list[httpx.Response] = []
    thread = threading.Thread(
        target=lambda: first.append(
            httpx.post(svc.url + "/transcribe", content=slow_body(), timeout=60)
        )
    )
    try:
        thread.start()
        # Its headers are sent at once; a probe before they arrive would take the slot itself.
        time.sleep(1.0)
        busy = httpx.post(svc.url + "/transcribe", content=data)
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "1"
        assert "busy" in busy.json()["detail"]
        release.set()
        thread.join(30)
        assert first[0].status_code == 200, first[0].text
        assert httpx.post(svc.url + "/transcribe", content=data).status_code == 200
    finally:
        release.set()
        assert svc.stop() == 0, svc.log


def test_limits_come_from_the_settings_and_flags_override_them(
    tmp_path: Path, test_model: ModelUnderTest, kitchen: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("http:\n  max_upload_mb: 0.01\n  max_pending: 3\n", encoding="utf-8")
    body = kitchen.read_bytes()
    assert len(body) > 10_000
    svc = start_service(tmp_path, test_model.path, "--config", str(config))
    try:
        assert httpx.post(svc.url + "/transcribe", content=body).status_code == 413
    finally:
        assert svc.stop() == 0, svc.log
    svc = start_service(tmp_path, test_model.path, "--config", str(config), "--max-upload-mb", "10")
    try:
        assert httpx.post(svc.url + "/transcribe", content=body).status_code == 200
    finally:
        assert svc.stop() == 0, svc.log
