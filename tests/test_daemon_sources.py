"""File and stdin sources, sequence numbers across restarts, and broker restarts."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import Broker, Daemon, Pulse, Subscriber

from edge_asr.mqtt.payloads import TranscriptMessage

pytestmark = pytest.mark.slow


@pytest.fixture
def two_commands(make_speech: Callable[..., Path], tmp_path: Path) -> Path:
    """One WAV: two commands separated by 1.5 s of silence."""
    a, _ = sf.read(str(make_speech("turn on the kitchen light", tail_s=1.5)), dtype="float32")
    b, _ = sf.read(str(make_speech("what time is it")), dtype="float32")
    path = tmp_path / "two.wav"
    sf.write(str(path), np.concatenate([a, b]), 16000, subtype="PCM_16")
    return path


def _finals(sub: Subscriber, count: int) -> list[TranscriptMessage]:
    return [
        TranscriptMessage.model_validate_json(m.payload)
        for m in sub.wait_for("transcript", count, timeout=30)
    ]


@pytest.mark.timeout(120)
def test_file_source_publishes_each_utterance_and_exits_zero_at_end_of_file(
    broker: Broker,
    subscriber_factory: Callable[..., Subscriber],
    daemon_factory: Callable[..., Daemon],
    two_commands: Path,
) -> None:
    sub = subscriber_factory(broker)
    daemon = daemon_factory("--source", f"file:{two_commands}", "--fast", broker=broker).start()
    assert daemon.wait_exit(60) == 0, daemon.log
    first, second = _finals(sub, 2)
    assert (first.seq, second.seq) == (1, 2)
    assert first.ended_at <= second.started_at
    assert [m.json()["state"] for m in sub.wait_for("status", 2)] == ["online", "offline"]


@pytest.mark.timeout(120)
def test_sequence_numbers_continue_across_restarts(
    broker: Broker,
    subscriber_factory: Callable[..., Subscriber],
    daemon_factory: Callable[..., Daemon],
    two_commands: Path,
    tmp_path: Path,
) -> None:
    sub = subscriber_factory(broker)
    state = tmp_path / "persistent-state"
    for _ in range(2):
        daemon = daemon_factory(
            "--source", f"file:{two_commands}", "--fast", broker=broker, state_dir=state
        ).start()
        assert daemon.wait_exit(60) == 0, daemon.log
    assert [f.seq for f in _finals(sub, 4)] == [1, 2, 3, 4]
    assert (state / "seq").read_text().strip() == "4"


@pytest.mark.timeout(60)
def test_file_source_in_real_time_takes_as_long_as_the_audio(
    daemon_factory: Callable[..., Daemon], make_speech: Callable[..., Path]
) -> None:
    wav = make_speech("turn on the kitchen light", lead_s=0.5, tail_s=1.0)
    seconds = sf.info(str(wav)).duration
    daemon = daemon_factory("--source", f"file:{wav}", "--stdout").start()
    daemon.wait_listening()
    started = time.monotonic()
    assert daemon.wait_exit(30) == 0
    assert time.monotonic() - started >= seconds - 0.5
    assert TranscriptMessage.model_validate_json(daemon.stdout.splitlines()[0]).seq == 1


@pytest.mark.timeout(60)
def test_stdin_source_reads_raw_pcm_until_end_of_input(
    daemon_factory: Callable[..., Daemon], two_commands: Path, tmp_path: Path
) -> None:
    samples, _ = sf.read(str(two_commands), dtype="int16")
    raw = tmp_path / "two.s16le"
    raw.write_bytes(samples.astype("<i2").tobytes())
    daemon = daemon_factory("--source", "stdin", "--stdout")
    with open(raw, "rb") as pcm:
        daemon.start(stdin=pcm)
    assert daemon.wait_exit(60) == 0, daemon.log
    lines = daemon.stdout.splitlines()
    assert [TranscriptMessage.model_validate_json(line).seq for line in lines] == [1, 2]


@pytest.mark.timeout(60)
def test_stdin_source_resamples_other_rates(
    daemon_factory: Callable[..., Daemon], make_speech: Callable[..., Path], tmp_path: Path
) -> None:
    import soxr

    samples, _ = sf.read(str(make_speech("open the garage door")), dtype="float32")
    pcm8k = (soxr.resample(samples, 16000, 8000) * 32767).astype("<i2").tobytes()
    daemon = daemon_factory("--source", "stdin", "--stdout", "--set", "audio.stdin_rate=8000")
    proc = daemon.start(stdin=subprocess.PIPE).proc
    assert proc is not None and proc.stdin is not None
    proc.stdin.write(pcm8k)
    proc.stdin.close()
    assert daemon.wait_exit(60) == 0, daemon.log
    (line,) = daemon.stdout.splitlines()
    assert 1.0 < TranscriptMessage.model_validate_json(line).duration_s < 3.5


@pytest.mark.timeout(150)
def test_transcript_reaches_subscriber_after_broker_restart(
    broker: Broker,
    pulse: Pulse,
    subscriber_factory: Callable[..., Subscriber],
    daemon_factory: Callable[..., Daemon],
    make_speech: Callable[..., Path],
) -> None:
    daemon = daemon_factory(
        broker=broker, pulse=pulse, env={"EDGE_ASR_MQTT__RECONNECT_MAX_S": "2"}
    ).start()
    daemon.wait_listening()
    daemon.wait_for_log("MQTT: connected")
    broker.stop()
    daemon.wait_for_log("MQTT: connection lost", timeout=30)
    pulse.play(make_speech("turn on the kitchen light", tail_s=1.5))
    daemon.wait_for_log("transcript 1:", timeout=30)
    broker.start()
    sub = subscriber_factory(broker)
    (final,) = _finals(sub, 1)
    assert final.seq == 1
    assert daemon.stop() == 0
    assert daemon.log.count("MQTT: connected to") >= 2


@pytest.mark.timeout(60)
@pytest.mark.parametrize("flag", ["--model", "--model-dir"])
def test_model_flag_overrides_the_setting_and_a_missing_bundle_is_named(
    daemon_factory: Callable[..., Daemon], tmp_path: Path, flag: str
) -> None:
    missing = tmp_path / "no-such-model"
    daemon = daemon_factory("--source", "stdin", "--stdout", flag, str(missing))
    daemon.start(stdin=subprocess.DEVNULL)
    assert daemon.wait_exit(30) == 1
    assert daemon.log.strip().splitlines() == [f"edge-asr: model bundle {missing}: not a directory"]


@pytest.mark.timeout(60)
def test_an_unavailable_provider_is_named_with_those_available(
    daemon_factory: Callable[..., Daemon],
) -> None:
    daemon = daemon_factory(
        "--source", "stdin", env={"EDGE_ASR_RECOGNIZER__PROVIDER": "NoSuchExecutionProvider"}
    )
    daemon.start(stdin=subprocess.DEVNULL)
    assert daemon.wait_exit(30) == 1
    (line,) = daemon.log.strip().splitlines()
    assert "'NoSuchExecutionProvider' is not available" in line
    assert "CPUExecutionProvider" in line
