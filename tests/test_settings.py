"""Settings: precedence CLI > env > YAML > defaults, strict keys, one-line errors, example file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from edge_asr.errors import ConfigError
from edge_asr.settings import Settings, example_yaml, load_settings

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config" / "edge-asr.example.yaml"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("EDGE_ASR_"):
            monkeypatch.delenv(key)


def edge_asr(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_ASR_")}
    return subprocess.run(
        [sys.executable, "-m", "edge_asr", *args],
        env={**base, "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )


def write_yaml(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_defaults() -> None:
    s = load_settings()
    assert s.site_id == "default"
    assert s.mqtt.host == "localhost" and s.mqtt.port == 1883
    assert s.audio.source == "mic"
    assert s.recognizer.decoding == "vocabulary"


def test_precedence_is_cli_then_env_then_yaml_then_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_yaml(
        tmp_path / "c.yaml",
        {"site_id": "from-yaml", "mqtt": {"host": "yaml-host", "port": 1111, "username": "y"}},
    )
    monkeypatch.setenv("EDGE_ASR_MQTT__PORT", "2222")
    monkeypatch.setenv("EDGE_ASR_MQTT__USERNAME", "env-user")
    s = load_settings(config, {"mqtt": {"username": "cli-user"}})
    assert s.mqtt.username == "cli-user"  # CLI beats env and YAML
    assert s.mqtt.port == 2222  # env beats YAML
    assert s.mqtt.host == "yaml-host"  # YAML beats the default
    assert s.site_id == "from-yaml"
    assert s.mqtt.keepalive_s == 30  # default, untouched by the partial sections above


def test_nested_env_keys_use_double_underscore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_ASR_MQTT__TLS__ENABLED", "true")
    monkeypatch.setenv("EDGE_ASR_VAD__HANGOVER_MS", "450")
    s = load_settings()
    assert s.mqtt.tls.enabled is True and s.vad.hangover_ms == 450


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"vad": {"threshold": 1.5}}, "vad.threshold: Input should be less than 1 (got 1.5)"),
        (
            {"recognizer": {"decoding": "beam"}},
            "recognizer.decoding: Input should be 'greedy', 'vocabulary' or 'sentences'",
        ),
        (
            {"audio": {"source": "mike"}},
            "audio.source: allowed values: 'mic', 'stdin', 'file:PATH'",
        ),
        ({"mqtt": {"hots": "x"}}, "mqtt.hots: unknown key (allowed keys: enabled, host, port,"),
        ({"bogus": 1}, "bogus: unknown key (allowed keys: site_id, state_dir, audio,"),
        ({"site_id": "a/b"}, "site_id: allowed: letters, digits"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(
    overrides: dict[str, object], expected: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, overrides)
    message = str(err.value)
    assert expected in message
    assert "\n" not in message


def test_unknown_key_in_yaml_is_an_error(tmp_path: Path) -> None:
    config = write_yaml(tmp_path / "c.yaml", {"vad": {"hangover": 500}})
    with pytest.raises(ConfigError, match=r"vad\.hangover: unknown key .*hangover_ms"):
        load_settings(config)


def test_unknown_nested_env_key_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_ASR_MQTT__HOTS", "x")
    with pytest.raises(ConfigError, match=r"mqtt\.hots: unknown key"):
        load_settings()


def test_validate_config_exits_zero_for_good_settings(tmp_path: Path) -> None:
    config = write_yaml(tmp_path / "c.yaml", {"site_id": "hall", "vad": {"threshold": 0.6}})
    result = edge_asr("run", "--config", str(config), "--validate-config")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--set", "vad.threshold=2"], {}, "vad.threshold"),
        (["--set", "mqtt.hots=x"], {}, "mqtt.hots: unknown key"),
        ([], {"EDGE_ASR_MQTT__PORT": "eighteen"}, "mqtt.port: Input should be a valid integer"),
        (["--decoding", "beam"], {}, "'greedy', 'vocabulary' or 'sentences'"),
    ],
)
def test_validate_config_exits_2_with_one_line_naming_the_key(
    args: list[str], env: dict[str, str], expected: str
) -> None:
    result = edge_asr("run", *args, "--validate-config", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]


def test_bad_yaml_file_exits_2_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("mqtt:\n  host: [unclosed\n", encoding="utf-8")
    result = edge_asr("run", "--config", str(bad), "--validate-config")
    assert result.returncode == 2
    assert str(bad) in result.stderr and "Traceback" not in result.stderr
    missing = edge_asr("run", "--config", str(tmp_path / "nope.yaml"), "--validate-config")
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr


def _all_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str | None]]:
    found = []
    for name, info in model.model_fields.items():
        found.append((prefix + name, info.description))
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += _all_fields(annotation, f"{prefix}{name}.")
    return found


def test_every_setting_has_a_description() -> None:
    missing = [key for key, description in _all_fields(Settings) if not description]
    assert missing == []


def test_example_config_is_generated_from_the_schema_and_in_sync() -> None:
    assert EXAMPLE.read_text(encoding="utf-8") == example_yaml(), (
        "config/edge-asr.example.yaml is stale: run "
        "`python -m edge_asr run --example-config > config/edge-asr.example.yaml`"
    )
    result = edge_asr("run", "--example-config")
    assert result.returncode == 0 and result.stdout == example_yaml()


def test_example_config_is_valid_and_equals_the_defaults() -> None:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    keys = {key for key, _ in _all_fields(Settings)}

    def leaves(d: dict[str, object], prefix: str = "") -> set[str]:
        out = set()
        for k, v in d.items():
            out.add(prefix + k)
            if isinstance(v, dict):
                out |= leaves(v, f"{prefix}{k}.")
        return out

    assert leaves(data) == keys
    assert load_settings(EXAMPLE).model_dump() == load_settings().model_dump()


def test_password_file_is_read_relative_to_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mqtt-password").write_text("s3cret\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    s = load_settings(None, {"mqtt": {"username": "u", "password_file": "mqtt-password"}})
    assert s.mqtt.read_password() == "s3cret"
    assert "s3cret" not in repr(load_settings(None, {"mqtt": {"password": "s3cret"}}))
