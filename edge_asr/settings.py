"""Every setting of the daemon, as one pydantic-settings tree.

Values come from, highest precedence first:

1. command-line flags (``edge-asr run --mqtt-host … --set vad.threshold=0.6``),
2. environment variables ``EDGE_ASR_<SECTION>__<KEY>`` (e.g. ``EDGE_ASR_MQTT__HOST``),
3. a YAML file (``edge-asr run --config FILE``),
4. the defaults below.

Unknown keys and bad values are errors that name the key (``extra="forbid"``).
``config/edge-asr.example.yaml`` is generated from this schema by
``edge-asr run --example-config``.
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from edge_asr.errors import ConfigError

ENV_PREFIX = "EDGE_ASR_"
# A site id and base topic become MQTT topic levels: no wildcards, no empty levels.
_TOPIC_LEVEL = re.compile(r"^[A-Za-z0-9_.-]+$")
_BASE_TOPIC = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class AudioSettings(_Section):
    """Where audio comes from."""

    source: str = Field(
        default="mic",
        description="Audio source: 'mic' (a sound device), 'file:PATH' (an audio file; the "
        "daemon exits at its end) or 'stdin' (raw signed 16-bit little-endian mono PCM).",
    )
    device: str | int | None = Field(
        default=None,
        description="Input device for 'mic': index or (part of) its name as listed by "
        "'edge-asr devices'; empty = the system default input.",
    )
    wait_for_device: bool = Field(
        default=False,
        description="For 'mic': if the device is missing or cannot be opened at start, keep "
        "looking for it every few seconds (status: waiting for the input device) instead of "
        "exiting; for services whose USB microphone may be plugged in later.",
    )
    capture_rate: int | None = Field(
        default=None,
        gt=0,
        description="Capture sample rate in Hz for 'mic'; empty = 16 kHz if the device takes it "
        "(sound servers and many USB microphones do; lowest latency), else the device's native "
        "rate. Audio at another rate is resampled to 16 kHz with soxr.",
    )
    channels: int = Field(
        default=1,
        ge=1,
        le=32,
        description="Channels to capture from the device; they are averaged.",
    )
    block_ms: int = Field(
        default=64,
        ge=8,
        le=500,
        description="Capture block length in ms; longer blocks wake the CPU less often.",
    )
    queue_blocks: int = Field(
        default=64,
        ge=2,
        description="Captured blocks buffered between the audio callback and the VAD; when "
        "full, blocks are dropped and counted as overruns.",
    )
    realtime: bool = Field(
        default=True,
        description="For 'file:' sources: deliver audio at real-time pace (true) or as fast "
        "as possible (false, for tests and batch use).",
    )
    stdin_rate: int = Field(
        default=16000, gt=0, description="Sample rate in Hz of raw PCM on stdin."
    )

    @field_validator("source")
    @classmethod
    def _source_form(cls, value: str) -> str:
        if value in ("mic", "stdin") or (value.startswith("file:") and len(value) > 5):
            return value
        raise ValueError("allowed values: 'mic', 'stdin', 'file:PATH'")


class VadSettings(_Section):
    """Endpointing: when an utterance starts and ends."""

    threshold: float = Field(
        default=0.5, gt=0.0, lt=1.0, description="Silero VAD speech probability that starts speech."
    )
    release_threshold: float | None = Field(
        default=None,
        gt=0.0,
        lt=1.0,
        description="Probability below which a frame counts as silence again once speech "
        "started; empty = threshold - 0.15.",
    )
    min_speech_ms: int = Field(
        default=250, ge=0, description="Shorter bursts of speech are ignored (clicks, coughs)."
    )
    hangover_ms: int = Field(
        default=700,
        ge=32,
        description="Trailing silence that ends an utterance; longer tolerates pauses between "
        "words, shorter answers sooner.",
    )
    pre_roll_ms: int = Field(
        default=300,
        ge=0,
        description="Audio kept from before speech was detected (and after it ended) so the "
        "first and last sounds are not cut.",
    )
    max_utterance_s: float = Field(
        default=15.0,
        gt=1.0,
        description="An utterance is cut and recognized after this long even if speech goes on.",
    )
    energy_gate_dbfs: float | None = Field(
        default=-60.0,
        le=0.0,
        description="Frames quieter than this RMS level (dB full scale) skip the VAD model "
        "and count as silence, so the daemon stays cheap while nobody speaks; empty = "
        "always run the model.",
    )
    noise_margin_db: float | None = Field(
        default=6.0,
        ge=0.0,
        description="Frames less than this many dB above the background noise level (tracked "
        "on frames the VAD judged not speech) also skip the VAD model, so a steady fan or hum "
        "costs nothing either; empty = only the fixed energy_gate_dbfs.",
    )


class RecognizerSettings(_Section):
    """The speech recognizer."""

    model_dir: Path | None = Field(
        default=None, description="Model bundle folder; empty = the built-in English model."
    )
    decoding: Literal["greedy", "vocabulary", "sentences"] = Field(
        default="vocabulary",
        description="How text is decoded: 'greedy' (any characters), 'vocabulary' (words of "
        "the model's vocabulary) or 'sentences' (only sentences of the 'sentences' file).",
    )
    sentences: Path | None = Field(
        default=None, description="Sentences file, required when decoding is 'sentences'."
    )
    num_threads: int = Field(default=1, ge=1, le=16, description="CPU threads for the model.")
    provider: str = Field(
        default="CPUExecutionProvider",
        min_length=1,
        description="onnxruntime execution provider for the model, e.g. CUDAExecutionProvider "
        "in the GPU image; one that is not available is an error naming those that are.",
    )
    partials: bool = Field(
        default=True, description="Publish partial hypotheses while a person is still speaking."
    )
    partial_interval_ms: int = Field(
        default=300, ge=100, description="How often a partial hypothesis is computed during speech."
    )
    queue_size: int = Field(
        default=8,
        ge=1,
        description="Finished utterances waiting for the recognizer; when full the oldest is "
        "dropped and counted as an overrun.",
    )

    @field_validator("sentences")
    @classmethod
    def _sentences_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value


class TlsSettings(_Section):
    """TLS to the MQTT broker."""

    enabled: bool = Field(default=False, description="Connect with TLS.")
    ca_file: Path | None = Field(
        default=None, description="CA certificate(s) to verify the broker; empty = system CAs."
    )
    cert_file: Path | None = Field(default=None, description="Client certificate for mutual TLS.")
    key_file: Path | None = Field(
        default=None, description="Private key of the client certificate."
    )
    insecure: bool = Field(
        default=False, description="Skip checking the broker's host name (testing only)."
    )


class MqttSettings(_Section):
    """The MQTT broker and the topics used on it."""

    enabled: bool = Field(default=True, description="Publish to MQTT.")
    host: str = Field(default="localhost", min_length=1, description="Broker host name or address.")
    port: int = Field(
        default=1883, ge=1, le=65535, description="Broker port (8883 is usual with TLS)."
    )
    base_topic: str = Field(
        default="edge-asr",
        description="First topic level(s); messages go to <base_topic>/<site_id>/...",
    )
    client_id: str | None = Field(
        default=None, description="MQTT client id; empty = 'edge-asr-<site_id>'."
    )
    keepalive_s: int = Field(
        default=30,
        ge=5,
        le=3600,
        description="Keepalive interval; the broker declares us offline "
        "after 1.5 times this without traffic.",
    )
    username: str | None = Field(default=None, description="User name; empty = anonymous.")
    password: SecretStr | None = Field(
        default=None,
        description="Password; prefer password_file so it stays out of the environment.",
    )
    password_file: Path | None = Field(
        default=None,
        description="File holding the password (e.g. a systemd credential); relative paths "
        "are looked up in $CREDENTIALS_DIRECTORY when set.",
    )
    tls: TlsSettings = Field(default_factory=TlsSettings, description="TLS settings.")
    reconnect_min_s: int = Field(default=1, ge=1, description="First wait before reconnecting.")
    reconnect_max_s: int = Field(
        default=60,
        ge=1,
        description="Longest wait between reconnect attempts (doubles up to this).",
    )
    queue_size: int = Field(
        default=10000,
        ge=1,
        description="Final transcripts kept while the broker has not acknowledged them; when "
        "full the oldest is dropped (counted and logged).",
    )
    persistent: bool = Field(
        default=True,
        description="Keep unacknowledged transcripts in a disk spool (spool.sqlite3 in the state "
        "folder) so they survive broker outages, restarts and kill -9; false = memory only.",
    )
    control: bool = Field(
        default=True,
        description="Answer requests on <base>/<site>/request/<command> (pause, resume, status, "
        "reload) on <base>/<site>/response/<command>.",
    )

    @field_validator("base_topic")
    @classmethod
    def _base_topic_form(cls, value: str) -> str:
        if not _BASE_TOPIC.match(value):
            raise ValueError("allowed: levels of letters, digits, '_', '.', '-' joined by '/'")
        return value

    def read_password(self) -> str | None:
        """The password from ``password`` or ``password_file``; None if neither is set."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is None:
            return None
        return read_secret_file(self.password_file, "mqtt.password_file")


def read_secret_file(path: Path, key: str) -> str:
    """A secret file's text without surrounding whitespace; relative paths are looked up in
    systemd's $CREDENTIALS_DIRECTORY when set. ConfigError naming ``key`` if unreadable."""
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if not path.is_absolute() and credentials:
        path = Path(credentials) / path
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise ConfigError(f"{key}: cannot read {path}: {err.strerror}") from err


class OutputSettings(_Section):
    """Sinks other than MQTT."""

    stdout: bool = Field(
        default=False, description="Also print each final transcript as one JSON line on stdout."
    )


class HomeAssistantSettings(_Section):
    """Home Assistant MQTT discovery: entities appear in HA by themselves."""

    enabled: bool = Field(
        default=False, description="Publish retained Home Assistant discovery configs."
    )
    discovery_prefix: str = Field(
        default="homeassistant", description="HA's discovery topic prefix (as set in HA)."
    )
    device_name: str | None = Field(
        default=None, description="Device name shown in HA; empty = 'edge-asr <site_id>'."
    )
    diagnostics_interval_s: float = Field(
        default=10.0,
        ge=1.0,
        le=3600.0,
        description="How often the diagnostics (spool depth, transcripts, overruns) are checked; "
        "they are published only when they changed.",
    )

    @field_validator("discovery_prefix")
    @classmethod
    def _prefix_form(cls, value: str) -> str:
        if not _BASE_TOPIC.match(value):
            raise ValueError("allowed: levels of letters, digits, '_', '.', '-' joined by '/'")
        return value


class HermesSettings(_Section):
    """Rhasspy Hermes protocol, for Rhasspy-style voice apps."""

    enabled: bool = Field(
        default=False,
        description="Also publish hermes/asr/textCaptured and obey hermes/asr/startListening, "
        "stopListening, toggleOn and toggleOff for this site.",
    )
    sessions_only: bool = Field(
        default=False,
        description="Publish textCaptured only for what is heard during a startListening "
        "session (when a wake word service starts them); false = every transcript with text, "
        "carrying the session's id while one is open.",
    )


class HttpSettings(_Section):
    """The HTTP API inside the daemon (needs the [http] extra)."""

    enabled: bool = Field(
        default=False,
        description="Serve /transcribe, /health, /ready and /metrics from the daemon.",
    )
    host: str = Field(
        default="127.0.0.1", description="Address to bind; 0.0.0.0 = every interface."
    )
    port: int = Field(default=8080, ge=1, le=65535, description="TCP port.")
    token: SecretStr | None = Field(
        default=None,
        description="Bearer token required on /transcribe and /metrics; prefer token_file so "
        "it stays out of the environment.",
    )
    token_file: Path | None = Field(
        default=None,
        description="File holding a bearer token required on /transcribe and /metrics "
        "(relative paths are looked up in $CREDENTIALS_DIRECTORY); empty = no token.",
    )

    max_upload_mb: float = Field(
        default=25.0, gt=0, description="Uploads larger than this (MB) get 413."
    )
    max_duration_s: float = Field(
        default=300.0, gt=0, description="Audio longer than this (seconds) gets 413."
    )
    workers: int = Field(
        default=1, ge=1, le=16, description="Transcriptions at once; more requests wait."
    )
    max_pending: int = Field(
        default=8,
        ge=1,
        description="Requests under way at once (uploading, waiting, transcribing); more get "
        "503, which bounds the memory uploads take.",
    )

    def read_token(self) -> str | None:
        """The token from ``token`` or ``token_file``; None if neither is set."""
        if self.token is not None:
            return self.token.get_secret_value().strip() or None
        if self.token_file is None:
            return None
        token = read_secret_file(self.token_file, "http.token_file")
        if not token:
            raise ConfigError(f"http.token_file: {self.token_file} is empty")
        return token


class WyomingSettings(_Section):
    """A Wyoming ASR server inside the daemon (needs the [wyoming] extra)."""

    enabled: bool = Field(default=False, description="Serve the Wyoming protocol.")
    uri: str = Field(
        default="tcp://127.0.0.1:10300",
        description="Where to listen: tcp://HOST:PORT or unix://PATH.",
    )
    streaming: bool = Field(
        default=True,
        description="Also send transcript-start/-chunk/-stop events, not only 'transcript'.",
    )
    max_duration_s: float = Field(
        default=60.0, gt=0, description="Audio longer than this (seconds) gets an error event."
    )
    workers: int = Field(default=1, ge=1, le=16, description="Transcriptions at once; more wait.")
    max_clients: int = Field(
        default=8, ge=1, description="Connections at once; more get an error event and close."
    )

    @field_validator("uri")
    @classmethod
    def _uri_form(cls, value: str) -> str:
        if not (value.startswith("tcp://") or value.startswith("unix://")):
            raise ValueError("must start with tcp:// or unix://")
        return value


def _default_state_dir() -> Path:
    # systemd's StateDirectory= sets STATE_DIRECTORY; otherwise follow XDG.
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "edge-asr"


class Settings(BaseSettings):
    """Settings of ``edge-asr run``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    site_id: str = Field(
        default="default",
        description="Name of this device/room; second MQTT topic level and in every message.",
    )
    state_dir: Path | None = Field(
        default=None,
        description="Folder for state kept across restarts (transcript sequence number, spool, "
        "pause state); "
        "empty = $STATE_DIRECTORY, else $XDG_STATE_HOME/edge-asr.",
    )
    audio: AudioSettings = Field(default_factory=AudioSettings, description="Audio input.")
    vad: VadSettings = Field(default_factory=VadSettings, description="Endpointing.")
    recognizer: RecognizerSettings = Field(
        default_factory=RecognizerSettings, description="Speech recognizer."
    )
    mqtt: MqttSettings = Field(default_factory=MqttSettings, description="MQTT output.")
    output: OutputSettings = Field(default_factory=OutputSettings, description="Other outputs.")
    homeassistant: HomeAssistantSettings = Field(
        default_factory=HomeAssistantSettings, description="Home Assistant MQTT discovery."
    )
    hermes: HermesSettings = Field(
        default_factory=HermesSettings, description="Rhasspy Hermes protocol."
    )
    http: HttpSettings = Field(default_factory=HttpSettings, description="HTTP API.")
    wyoming: WyomingSettings = Field(
        default_factory=WyomingSettings, description="Wyoming ASR server."
    )

    @field_validator("site_id")
    @classmethod
    def _site_id_form(cls, value: str) -> str:
        if not _TOPIC_LEVEL.match(value):
            raise ValueError("allowed: letters, digits, '_', '.', '-' (one MQTT topic level)")
        return value

    def resolved_state_dir(self) -> Path:
        """The state folder, with the default applied."""
        return self.state_dir if self.state_dir is not None else _default_state_dir()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # CLI flags arrive as init kwargs; then env; then the YAML file (if any).
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        if settings_cls.model_config.get("yaml_file"):
            sources += (YamlConfigSettingsSource(settings_cls),)
        return sources


def load_settings(
    config_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Build the settings from CLI ``overrides`` > environment > ``config_file`` > defaults.

    Raises ConfigError with a one-line message naming the offending key.
    """
    settings_cls: type[Settings] = Settings
    if config_file is not None:
        _check_yaml_file(config_file)

        class _WithFile(Settings):
            model_config = SettingsConfigDict(yaml_file=config_file)

        settings_cls = _WithFile
    try:
        return settings_cls(**(overrides or {}))
    except ValidationError as err:
        raise ConfigError(describe_validation_error(err)) from None


def _check_yaml_file(path: Path) -> None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"config file {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path}{where}: not valid YAML") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"config file {path}: must be a mapping of settings, not a list or value")


def _key_of(loc: tuple[int | str, ...]) -> tuple[list[str], type[BaseModel] | None]:
    """The settings key a pydantic error location names, and the section holding it.

    Union members add their type names to the location ('str', 'int'); they are dropped.
    """
    model: type[BaseModel] | None = Settings
    parts: list[str] = []
    section: type[BaseModel] | None = Settings
    for part in loc:
        if model is None:
            break
        section = model
        parts.append(str(part))
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        is_section = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        model = annotation if is_section else None  # type: ignore[assignment]
    return parts, section


def describe_validation_error(err: ValidationError) -> str:
    """One line: each bad key with what is wrong and what is allowed."""
    parts: dict[str, str] = {}
    for item in err.errors():
        path, section = _key_of(tuple(item["loc"]))
        key = ".".join(path) or "(top level)"
        if key in parts:  # a union reports once per member; the first says enough
            continue
        if item["type"] == "extra_forbidden":
            allowed = ", ".join(section.model_fields) if section else "?"
            parts[key] = f"{key}: unknown key (allowed keys: {allowed})"
            continue
        message = str(item["msg"]).removeprefix("Value error, ")
        value = item.get("input")
        got = "" if isinstance(value, dict) else f" (got {value!r})"
        parts[key] = f"{key}: {message}{got}"
    return "invalid settings: " + "; ".join(parts.values())


def example_yaml() -> str:
    """A YAML file with every setting at its default, each described; generated from the schema."""
    lines = [
        "# edge-asr settings. Generated by `edge-asr run --example-config`; do not edit by hand.",
        "# Precedence: command-line flags > environment (EDGE_ASR_<SECTION>__<KEY>) > this file >",
        "# defaults. Unknown keys are errors.",
    ]
    _describe_model(Settings, Settings.model_construct(), lines, indent="")
    return "\n".join(lines) + "\n"


def _describe_model(
    model: type[BaseModel], value: BaseModel, lines: list[str], indent: str
) -> None:
    for name, field in model.model_fields.items():
        current = getattr(value, name)
        lines.append("")
        for text in textwrap.wrap(field.description or "", width=96 - len(indent)):
            lines.append(f"{indent}# {text}")
        if isinstance(current, BaseModel):
            lines.append(f"{indent}{name}:")
            _describe_model(type(current), current, lines, indent + "  ")
            continue
        if isinstance(current, SecretStr):
            current = current.get_secret_value()
        if isinstance(current, Path):
            current = str(current)
        dumped = yaml.safe_dump({name: current}, default_flow_style=True, width=1000).strip()
        lines.append(f"{indent}{dumped.removeprefix('{').removesuffix('}')}")
