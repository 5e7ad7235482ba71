"""The endpointer state machine on synthetic audio, and Silero VAD on real speech and noise.

The state-machine tests classify frames by their energy (a tone is speech, silence is not), so
every expected boundary is known to the frame.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge_asr.audio.capture import AudioBlock
from edge_asr.audio.vad import (
    FRAME,
    Endpointer,
    EndpointerEvent,
    GatedVad,
    PartialAudio,
    SileroVad,
    Utterance,
    rms_dbfs,
    silero_model_path,
)
from edge_asr.settings import VadSettings

pytestmark = pytest.mark.timeout(60)

RATE = 16000
FRAME_S = FRAME / RATE  # 0.032
T0 = 1_700_000_000.0  # wall-clock time of the first sample


def energy_classifier(frame: np.ndarray) -> float:
    """1.0 for frames louder than -30 dBFS, else 0.0."""
    return 1.0 if rms_dbfs(frame) > -30.0 else 0.0


def tone(seconds: float, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(seconds * RATE))) / RATE
    return (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * RATE)), dtype=np.float32)


def frames(n: int) -> float:
    return n * FRAME_S


def run(
    audio: np.ndarray,
    settings: VadSettings | None = None,
    block: int = 1024,
    partial_interval_ms: int | None = None,
    classifier: Callable[[np.ndarray], float] = energy_classifier,
    flush: bool = True,
) -> list[EndpointerEvent]:
    endpointer = Endpointer(
        settings or VadSettings(min_speech_ms=96, hangover_ms=320, pre_roll_ms=192),
        classifier,
        partial_interval_ms=partial_interval_ms,
    )
    events: list[EndpointerEvent] = []
    for start in range(0, len(audio), block):
        chunk = audio[start : start + block]
        events += endpointer.feed(AudioBlock(chunk, T0 + (start + len(chunk)) / RATE))
    if flush and (last := endpointer.flush()) is not None:
        events.append(last)
    return events


def finals(events: list[EndpointerEvent]) -> list[Utterance]:
    return [e for e in events if isinstance(e, Utterance)]


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, tz=timezone.utc)


def test_silence_gives_no_utterance() -> None:
    assert run(silence(5.0)) == []


def test_one_burst_gives_one_utterance_with_pre_roll_and_trailing_context() -> None:
    # 1.024 s silence (32 frames), 0.64 s tone (20 frames), 1.024 s silence
    audio = np.concatenate([silence(frames(32)), tone(frames(20)), silence(frames(32))])
    (utt,) = run(audio)
    assert isinstance(utt, Utterance)
    assert utt.reason == "silence"
    # pre-roll 6 frames before, tone 20 frames, 6 frames of the 10-frame hangover kept after
    assert len(utt.samples) == (6 + 20 + 6) * FRAME
    assert utt.started_at == at(frames(32 - 6))
    assert utt.ended_at == at(frames(32 + 20 + 6))
    assert utt.duration_s == pytest.approx(frames(32))
    assert np.allclose(utt.samples[6 * FRAME : 26 * FRAME], tone(frames(20)), atol=1e-6)


def test_block_size_does_not_change_the_result() -> None:
    audio = np.concatenate([silence(0.7), tone(0.5), silence(0.9), tone(0.8), silence(1.0)])
    reference = finals(run(audio, block=1024))
    for block in (1, 100, 511, 513, 4096, len(audio)):
        if block == 1:
            block = 37  # one sample at a time is slow in Python; 37 is just as misaligned
        got = finals(run(audio, block=block))
        assert [(u.started_at, len(u.samples)) for u in got] == [
            (u.started_at, len(u.samples)) for u in reference
        ]
        for a, b in zip(got, reference, strict=True):
            assert np.array_equal(a.samples, b.samples)


def test_burst_shorter_than_min_speech_is_ignored() -> None:
    audio = np.concatenate([silence(frames(31)), tone(frames(2)), silence(1.0)])
    assert run(audio) == []


def test_pause_shorter_than_hangover_keeps_one_utterance() -> None:
    audio = np.concatenate([silence(1.0), tone(0.4), silence(frames(8)), tone(0.4), silence(1.0)])
    assert len(finals(run(audio))) == 1


def test_pause_longer_than_hangover_splits_into_two_utterances_in_order() -> None:
    audio = np.concatenate([silence(1.0), tone(0.4), silence(frames(12)), tone(0.4), silence(1.0)])
    first, second = finals(run(audio))
    assert first.ended_at <= second.started_at
    assert first.id != second.id


def test_long_speech_is_cut_at_max_utterance_length() -> None:
    settings = VadSettings(min_speech_ms=96, hangover_ms=320, pre_roll_ms=0, max_utterance_s=2.0)
    events = finals(run(np.concatenate([silence(0.5), tone(5.0), silence(1.0)]), settings))
    assert [e.reason for e in events] == ["max_length", "max_length", "silence"]
    assert all(e.duration_s <= 2.0 for e in events)
    total = sum(len(e.samples) for e in events)
    assert abs(total - len(tone(5.0))) <= 2 * FRAME  # all of the speech, none of the silence


def test_speech_running_into_end_of_stream_is_flushed() -> None:
    events = run(np.concatenate([silence(0.5), tone(1.0)]))
    (utt,) = finals(events)
    assert utt.reason == "end_of_stream"
    assert run(np.concatenate([silence(0.5), tone(1.0)]), flush=False) == []


def test_partials_come_every_interval_during_speech_then_the_final() -> None:
    audio = np.concatenate([silence(0.5), tone(2.0), silence(1.0)])
    events = run(audio, partial_interval_ms=320)
    partials = [e for e in events if isinstance(e, PartialAudio)]
    assert isinstance(events[-1], Utterance)
    assert all(isinstance(e, PartialAudio) for e in events[:-1])
    # ~2.3 s of utterance audio before the end is decided: a partial every 10 frames
    assert 5 <= len(partials) <= 8
    lengths = [len(p.samples) for p in partials]
    assert lengths == sorted(lengths) and len(set(lengths)) == len(lengths)
    assert all(np.diff(lengths) == 10 * FRAME)
    assert {p.utterance_id for p in partials} == {events[-1].id}


def test_no_partials_before_min_speech_is_reached() -> None:
    settings = VadSettings(min_speech_ms=640, hangover_ms=320, pre_roll_ms=0)
    events = run(np.concatenate([silence(0.5), tone(0.5), silence(1.0)]), settings, 1024, 100)
    assert events == []


def test_hysteresis_keeps_speech_going_above_the_release_threshold() -> None:
    probabilities = iter([0.0] * 10 + [0.9] + [0.4] * 30 + [0.0] * 20)
    settings = VadSettings(threshold=0.5, min_speech_ms=32, hangover_ms=320, pre_roll_ms=0)
    (utt,) = finals(run(silence(frames(61)), settings, classifier=lambda f: next(probabilities)))
    assert len(utt.samples) == 31 * FRAME  # 0.9 starts it, 0.4 >= 0.35 continues it


# --- Silero VAD and the energy gate on real audio ---------------------------------------


def _blocks(audio: np.ndarray) -> list[np.ndarray]:
    return [audio[i : i + FRAME] for i in range(0, len(audio) - FRAME + 1, FRAME)]


@pytest.fixture(scope="module")
def silero() -> SileroVad:
    return SileroVad()


def test_silero_finds_speech_in_espeak_audio(
    silero: SileroVad, make_speech: Callable[..., Path]
) -> None:
    samples, rate = sf.read(str(make_speech("turn on the kitchen light")), dtype="float32")
    assert rate == RATE
    (utt,) = finals(run(samples, VadSettings(), classifier=GatedVad(silero, -60.0)))
    assert 1.0 < utt.duration_s < 3.0


def test_the_16k_silero_export_scores_as_the_wheels_default_model(
    silero: SileroVad, make_speech: Callable[..., Path]
) -> None:
    """The daemon runs the 16 kHz-only export (less memory); its scores must be Silero's own."""
    samples, _ = sf.read(str(make_speech("open the garage door please")), dtype="float32")
    noise = np.random.default_rng(2).normal(0, 0.05, RATE).astype(np.float32)
    audio = np.concatenate([samples, noise])
    default = SileroVad(silero_model_path().with_name("silero_vad.onnx"))
    assert silero_model_path().name != "silero_vad.onnx"
    silero.reset()
    ours = np.array([silero(f) for f in _blocks(audio)])
    theirs = np.array([default(f) for f in _blocks(audio)])
    assert ours.max() > 0.9 and ours.min() < 0.1  # speech and non-speech both in the clip
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_silero_finds_no_speech_in_white_noise(silero: SileroVad) -> None:
    noise = np.random.default_rng(0).normal(0, 0.1, 5 * RATE).astype(np.float32)
    silero.reset()
    probabilities = [silero(f) for f in _blocks(noise)]
    assert max(probabilities) < 0.5
    assert finals(run(noise, VadSettings(), classifier=GatedVad(silero, -60.0))) == []


def test_energy_gate_skips_the_model_on_silence(silero: SileroVad) -> None:
    gated = GatedVad(silero, -60.0)
    quiet = np.random.default_rng(1).normal(0, 1e-4, 3 * RATE).astype(np.float32)  # -80 dBFS
    assert all(gated(f) == 0.0 for f in _blocks(quiet))
    assert gated.frames == len(_blocks(quiet)) and gated.model_runs == 0
    loud = tone(0.32)
    for f in _blocks(loud):
        gated(f)
    assert gated.model_runs == 10


def _fan_noise(seconds: float, dbfs: float, seed: int = 3) -> np.ndarray:
    """Low-passed noise (a fan or air conditioner) at an RMS level of ``dbfs``."""
    raw = np.random.default_rng(seed).normal(0, 1, int(seconds * RATE))
    shaped = np.convolve(raw, np.ones(8) / 8, mode="same")
    return (shaped * 10 ** (dbfs / 20) / np.sqrt(np.mean(shaped**2))).astype(np.float32)


def test_steady_noise_closes_the_adaptive_gate_after_a_moment(silero: SileroVad) -> None:
    silero.reset()
    noise = _fan_noise(10.0, -35.0)
    adaptive = GatedVad(silero, -60.0, margin_db=6.0)
    runs = []
    for f in _blocks(noise):
        adaptive(f)
        runs.append(adaptive.model_runs)
    per_second = RATE // FRAME
    assert runs[-1] - runs[-5 * per_second] <= 2  # the last 5 s: (almost) never
    assert runs[-1] < 0.3 * len(runs)
    assert adaptive.noise_dbfs == pytest.approx(-35.0, abs=3.0)
    fixed = GatedVad(silero, -60.0, margin_db=None)
    for f in _blocks(noise):
        fixed(f)
    assert fixed.model_runs == len(runs)  # above the fixed gate: every frame


def test_speech_over_steady_noise_still_passes_the_adaptive_gate(
    silero: SileroVad, make_speech: Callable[..., Path]
) -> None:
    speech, _ = sf.read(str(make_speech("turn on the kitchen light", lead_s=0.0)), dtype="float32")
    speech_db = rms_dbfs(speech[np.abs(speech) > 0.01])
    noise = _fan_noise(5.0 + len(speech) / RATE + 2.0, speech_db - 20.0)
    audio = noise.copy()
    audio[5 * RATE : 5 * RATE + len(speech)] += speech
    silero.reset()
    gated = GatedVad(silero, -60.0, margin_db=6.0)
    (utt,) = finals(run(audio, VadSettings(), classifier=gated))
    assert 1.0 < utt.duration_s < 3.0
    assert at(4.5) <= utt.started_at <= at(5.5)
    assert gated.model_runs < 0.6 * gated.frames
