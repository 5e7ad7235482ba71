"""Bad input, tried many times: broken audio files and invalid settings.

Each gets one clear line that names the problem (and the file or key); none gets a traceback.
Malformed MQTT requests to the running daemon are in test_daemon_faults.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, ModelUnderTest
from corrupt_audio import corrupt_corpus

from edge_asr.__main__ import main

# --- audio --------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_a_hundred_corrupt_files_each_get_a_transcript_or_one_error_line(
    tmp_path: Path, test_model: ModelUnderTest
) -> None:
    corpus = corrupt_corpus()
    assert len(corpus) >= 100
    paths = []
    for item in corpus:
        path = tmp_path / item.name
        path.write_bytes(item.data)
        paths.append(path)
    result = subprocess.run(
        [sys.executable, "-m", "edge_asr", "transcribe", "--model", str(test_model.path)]
        + ["--max-duration", "300", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
    )
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 1  # some files were bad
    errors = result.stderr.strip().splitlines()
    outputs = result.stdout.strip().splitlines()
    assert len(errors) + len(outputs) == len(corpus), (errors, outputs)
    assert len(errors) >= 70  # most of the corpus cannot be decoded
    for line in errors:
        assert line.startswith(f"edge-asr: error: {tmp_path}/"), line
        assert len(line) < 300, line
    for line in outputs:
        assert line.startswith(f"{tmp_path}/"), line
    by_name = {line.split(": error: ")[1].split(":")[0].rsplit("/", 1)[1]: line for line in errors}
    expected = {
        "empty.wav": "not a readable audio file",
        "text.wav": "not a readable audio file",
        "zero-channels.wav": "",
        "rate-8-hz.wav": "sample rate 8 Hz is outside",
        "rate-huge.wav": "outside 4000-384000 Hz",
        "float-nan.wav": "NaN or infinite",
        "too-long.wav": "more than the 300 s limit",
        "flac-truncated-at-4.flac": "not a readable audio file",
    }
    for suffix, text in expected.items():
        (line,) = [line for name, line in by_name.items() if name.endswith(suffix)]
        assert text in line, line


# --- settings -----------------------------------------------------------------------------

# (what a person might write in the YAML file, a word the one-line error must contain)
INVALID_YAML: list[tuple[Any, str]] = [
    ({"vad": {"threshold": 1.5}}, "vad.threshold"),
    ({"vad": {"threshold": -0.1}}, "vad.threshold"),
    ({"vad": {"threshold": "high"}}, "vad.threshold"),
    ({"vad": {"hangover_ms": -5}}, "vad.hangover_ms"),
    ({"vad": {"hangover": 500}}, "vad.hangover: unknown key"),
    ({"vad": {"min_speech_ms": "long"}}, "vad.min_speech_ms"),
    ({"vad": {"max_utterance_s": 0}}, "vad.max_utterance_s"),
    ({"vad": {"pre_roll_ms": -1}}, "vad.pre_roll_ms"),
    ({"vad": {"release_threshold": 2}}, "vad.release_threshold"),
    ({"vad": "loud"}, "vad"),
    ({"vad": [1, 2]}, "vad"),
    ({"audio": {"source": "mike"}}, "audio.source"),
    ({"audio": {"source": "file:"}}, "audio.source"),
    ({"audio": {"channels": 0}}, "audio.channels"),
    ({"audio": {"channels": 99}}, "audio.channels"),
    ({"audio": {"block_ms": 0}}, "audio.block_ms"),
    ({"audio": {"capture_rate": -16000}}, "audio.capture_rate"),
    ({"audio": {"queue_blocks": 0}}, "audio.queue_blocks"),
    ({"audio": {"stdin_rate": "fast"}}, "audio.stdin_rate"),
    ({"audio": {"realtime": "sometimes"}}, "audio.realtime"),
    ({"audio": {"devise": "USB"}}, "audio.devise: unknown key"),
    ({"recognizer": {"decoding": "beam"}}, "recognizer.decoding"),
    ({"recognizer": {"num_threads": 0}}, "recognizer.num_threads"),
    ({"recognizer": {"num_threads": 100}}, "recognizer.num_threads"),
    ({"recognizer": {"sentences": "/no/such/sentences.ini"}}, "recognizer.sentences"),
    ({"recognizer": {"partial_interval_ms": 1}}, "recognizer.partial_interval_ms"),
    ({"recognizer": {"queue_size": 0}}, "recognizer.queue_size"),
    ({"recognizer": {"partials": "maybe"}}, "recognizer.partials"),
    ({"recognizer": {"model": "/x"}}, "recognizer.model: unknown key"),
    ({"mqtt": {"port": 0}}, "mqtt.port"),
    ({"mqtt": {"port": 70000}}, "mqtt.port"),
    ({"mqtt": {"port": "eighteen"}}, "mqtt.port"),
    ({"mqtt": {"host": ""}}, "mqtt.host"),
    ({"mqtt": {"hots": "broker"}}, "mqtt.hots: unknown key"),
    ({"mqtt": {"base_topic": "a/#"}}, "mqtt.base_topic"),
    ({"mqtt": {"base_topic": "a//b"}}, "mqtt.base_topic"),
    ({"mqtt": {"base_topic": "/lead"}}, "mqtt.base_topic"),
    ({"mqtt": {"base_topic": "plus/+"}}, "mqtt.base_topic"),
    ({"mqtt": {"keepalive_s": 0}}, "mqtt.keepalive_s"),
    ({"mqtt": {"reconnect_min_s": 0}}, "mqtt.reconnect_min_s"),
    ({"mqtt": {"queue_size": 0}}, "mqtt.queue_size"),
    ({"mqtt": {"persistent": "disk"}}, "mqtt.persistent"),
    ({"mqtt": {"tls": {"enabled": "yes please"}}}, "mqtt.tls.enabled"),
    ({"mqtt": {"tls": {"ca": "/x"}}}, "mqtt.tls.ca: unknown key"),
    ({"mqtt": {"tls": True}}, "mqtt.tls"),
    ({"site_id": "living room"}, "site_id"),
    ({"site_id": "a/b"}, "site_id"),
    ({"site_id": "#"}, "site_id"),
    ({"site_id": ""}, "site_id"),
    ({"homeassistant": {"discovery_prefix": "ha/+"}}, "homeassistant.discovery_prefix"),
    ({"homeassistant": {"enabled": "on-ish"}}, "homeassistant.enabled"),
    ({"http": {"port": 0}}, "http.port"),
    ({"http": {"port": "web"}}, "http.port"),
    ({"wyoming": {"uri": "http://localhost:10300"}}, "wyoming.uri"),
    ({"output": {"stdout": "loud"}}, "output.stdout"),
    ({"outputs": {"stdout": True}}, "outputs: unknown key"),
    ([1, 2, 3], "mapping"),
    ("just a string", "mapping"),
]

# YAML text that does not parse, or parses into something that is not settings.
INVALID_YAML_TEXT: list[str] = [
    "mqtt:\n  host: [unclosed\n",
    "mqtt:\n\thost: tabs\n",
    "vad: {threshold: 0.5\n",
    "key: value\n  bad indent: here\n",
    "- a\nb: c\n",
    "\x00\x01\x02",
]


def _validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = main(["run", *args, "--validate-config"])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(("content", "key"), INVALID_YAML, ids=[k for _, k in INVALID_YAML])
def test_invalid_settings_file_exits_2_with_one_line_naming_the_key(
    content: Any,
    key: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [n for n in os.environ if n.startswith("EDGE_ASR_")]:
        monkeypatch.delenv(name)
    config = tmp_path / "edge-asr.yaml"
    config.write_text(yaml.safe_dump(content), encoding="utf-8")
    code, lines = _validate(capsys, "--config", str(config))
    assert code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith("edge-asr: "), lines
    assert key in lines[0], lines


@pytest.mark.parametrize("text", INVALID_YAML_TEXT)
def test_unparsable_settings_file_exits_2_naming_the_file(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text(text, encoding="utf-8")
    code, lines = _validate(capsys, "--config", str(config))
    assert code == 2
    assert len(lines) == 1, lines
    assert str(config) in lines[0], lines


def test_there_are_at_least_fifty_invalid_settings_cases() -> None:
    assert len(INVALID_YAML) + len(INVALID_YAML_TEXT) >= 50
