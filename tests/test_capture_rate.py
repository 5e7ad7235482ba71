"""Which rate a microphone is opened at: 16 kHz where the device takes it, else its own."""

from __future__ import annotations

from edge_asr.audio.capture import InputDevice, capture_rate_for


def device(rate: int) -> InputDevice:
    return InputDevice(1, "USB mic", "ALSA", 1, rate, True)


def test_16_khz_when_the_device_takes_it_else_its_native_rate() -> None:
    asked: list[int] = []

    def takes_16k(rate: int) -> bool:
        asked.append(rate)
        return rate == 16000

    assert capture_rate_for(device(48000), None, takes_16k) == 16000
    assert capture_rate_for(device(44100), None, lambda rate: False) == 44100
    assert asked == [16000]


def test_an_asked_rate_is_used_as_it_is_and_a_16_khz_device_is_not_probed() -> None:
    def never(rate: int) -> bool:
        raise AssertionError("probed")

    assert capture_rate_for(device(48000), 44100, never) == 44100
    assert capture_rate_for(device(16000), None, never) == 16000
