"""A reproducible corpus of broken audio files, made from one good recording.

Every way a file reaching edge-asr can be wrong: empty, truncated at many points, headers with
impossible values, flipped bytes, other file types named .wav, NaN and infinite samples,
absurd lengths. Some mutations still decode (a flipped sample byte is just noise): whatever
edge-asr makes of them, it must answer with a transcript or one clear error, never a crash.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import numpy as np
import soundfile as sf


@dataclass(frozen=True)
class CorruptAudio:
    name: str  # a file name that says what is wrong
    data: bytes


def _wav(samples: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


def _encoded(samples: np.ndarray, fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, 16000, format=fmt, subtype=subtype)
    return buf.getvalue()


def _header(
    fmt_code: int = 1,
    channels: int = 1,
    rate: int = 16000,
    bits: int = 16,
    data_bytes: int = 3200,
    riff_bytes: int | None = None,
    fmt_bytes: int = 16,
) -> bytes:
    block = max(1, channels * bits // 8) & 0xFFFF
    fmt = struct.pack("<HHIIHH", fmt_code, channels, rate, (rate * block) & 0xFFFFFFFF, block, bits)
    riff = 36 + data_bytes if riff_bytes is None else riff_bytes
    return (
        b"RIFF"
        + struct.pack("<I", riff & 0xFFFFFFFF)
        + b"WAVEfmt "
        + struct.pack("<I", fmt_bytes)
        + fmt
        + b"data"
        + struct.pack("<I", data_bytes & 0xFFFFFFFF)
    )


def corrupt_corpus(seed: int = 7) -> list[CorruptAudio]:
    """At least 100 broken inputs, the same every run."""
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    good = _wav(tone)
    flac = _encoded(tone, "FLAC")
    ogg = _encoded(tone, "OGG", "VORBIS")
    items: list[CorruptAudio] = []

    def add(name: str, data: bytes) -> None:
        items.append(CorruptAudio(f"{len(items):03d}-{name}", data))

    add("empty.wav", b"")
    add("one-byte.wav", b"R")
    add("riff-only.wav", b"RIFF")
    add("text.wav", b"this is not audio at all\n" * 20)
    add("json.wav", b'{"audio": [1, 2, 3]}')
    add("png.wav", b"\x89PNG\r\n\x1a\n" + bytes(rng.integers(0, 256, 200, dtype=np.uint8)))
    add("zip.wav", b"PK\x03\x04" + bytes(200))
    add("elf.wav", b"\x7fELF" + bytes(300))
    add("html.wav", b"<html><body>not found</body></html>")
    add("zeros.wav", bytes(4096))
    add("ones.wav", b"\xff" * 4096)
    for i in range(10):
        add(f"random-{i}.wav", bytes(rng.integers(0, 256, 64 + 300 * i, dtype=np.uint8)))
    # Truncated at many points, through the header and into the data.
    for cut in (2, 4, 8, 11, 12, 16, 20, 24, 28, 32, 36, 40, 43, 44, 45, 100, 1001):
        add(f"truncated-at-{cut}.wav", good[:cut])
    # Impossible header values.
    add("no-frames.wav", _header(data_bytes=0))
    add("zero-channels.wav", _header(channels=0) + bytes(3200))
    add("rate-zero.wav", _header(rate=0) + bytes(3200))
    add("rate-one.wav", _header(rate=1) + bytes(3200))
    add("rate-huge.wav", _header(rate=0x7FFFFFFF) + bytes(3200))
    add("bits-3.wav", _header(bits=3) + bytes(3200))
    add("bits-zero.wav", _header(bits=0) + bytes(3200))
    add("bits-64-pcm.wav", _header(bits=64) + bytes(3200))
    add("format-code-99.wav", _header(fmt_code=99) + bytes(3200))
    add("format-code-zero.wav", _header(fmt_code=0) + bytes(3200))
    add("mu-law-bits-16.wav", _header(fmt_code=7) + bytes(3200))
    add("channels-huge.wav", _header(channels=65535) + bytes(3200))
    add("data-size-huge.wav", _header(data_bytes=0xFFFFFFF0) + bytes(3200))
    add("data-size-odd.wav", _header(data_bytes=3199) + bytes(3199))
    add("riff-size-zero.wav", _header(riff_bytes=0) + bytes(3200))
    add("riff-size-huge.wav", _header(riff_bytes=0xFFFFFFFF) + bytes(3200))
    add("fmt-size-zero.wav", _header(fmt_bytes=0) + bytes(3200))
    add("fmt-size-huge.wav", _header(fmt_bytes=0xFFFFFF) + bytes(3200))
    add("fmt-size-odd.wav", _header(fmt_bytes=15) + bytes(3200))
    add("wave-tag-wrong.wav", good[:8] + b"WAVX" + good[12:])
    add("fmt-tag-missing.wav", good[:12] + b"junk" + good[16:])
    add("data-tag-missing.wav", good[:36] + b"dada" + good[40:])
    add("rifx-big-endian-tag.wav", b"RIFX" + good[4:])
    # Bytes flipped in the header (each position, seeded).
    for i in range(20):
        data = bytearray(good)
        pos = int(rng.integers(0, 44))
        data[pos] ^= 1 << int(rng.integers(0, 8))
        add(f"header-bitflip-{i}-at-{pos}.wav", bytes(data))
    # Compressed formats, cut short or damaged.
    for cut in (4, 20, 100, len(flac) // 2):
        add(f"flac-truncated-at-{cut}.flac", flac[:cut])
    for cut in (4, 30, 200, len(ogg) // 2):
        add(f"ogg-truncated-at-{cut}.ogg", ogg[:cut])
    damaged = bytearray(flac)
    damaged[100:400] = bytes(rng.integers(0, 256, 300, dtype=np.uint8))
    add("flac-damaged-frames.flac", bytes(damaged))
    damaged = bytearray(ogg)
    damaged[60:300] = bytes(rng.integers(0, 256, 240, dtype=np.uint8))
    add("ogg-damaged-pages.ogg", bytes(damaged))
    add("flac-magic-only.flac", b"fLaC")
    add("ogg-magic-only.ogg", b"OggS" + bytes(30))
    # Samples no audio has.
    for name, value in (("nan", np.nan), ("inf", np.inf), ("minus-inf", -np.inf)):
        samples = tone.copy()
        samples[::997] = value
        add(f"float-{name}.wav", _wav(samples, subtype="FLOAT"))
    add("float-all-nan.wav", _wav(np.full(1600, np.nan, np.float32), subtype="FLOAT"))
    add("float-huge-values.wav", _wav(np.full(16000, 1e30, np.float32), subtype="FLOAT"))
    add("double-nan.wav", _wav(np.full(1600, np.nan, np.float64), subtype="DOUBLE"))
    # Plausible files that are still wrong for speech.
    add("one-sample.wav", _wav(np.zeros(1, np.float32)))
    add("rate-8-hz.wav", _wav(np.zeros(80, np.float32), rate=8))
    add("too-long.wav", _wav(np.zeros(16000 * 400, np.float32) + 0.001, rate=16000))
    add("tone-then-garbage.wav", good + bytes(rng.integers(0, 256, 999, dtype=np.uint8)))
    return items
