#!/usr/bin/env python3
"""Print the ``model_name`` and ``model_version`` of an ONNX model, space-separated.

Reads ModelProto.metadata_props (field 14; entries: key = 1, value = 2) straight from the
protobuf wire format, so build hosts need neither onnx nor onnxruntime.
Usage: model-meta.py [MODEL]   (default: the built-in edge_asr/models/home-en/model.int8.onnx)
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "edge_asr/models/home-en/model.int8.onnx"


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[i]
        value |= (byte & 0x7F) << shift
        shift += 7
        i += 1
        if byte < 0x80:
            return value, i


def _fields(data: bytes) -> Iterator[tuple[int, bytes | int | None]]:
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        wire = key & 7
        value: bytes | int | None
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            size, i = _varint(data, i)
            value, i = data[i : i + size], i + size
        elif wire in (1, 5):
            value, i = None, i + (8 if wire == 1 else 4)
        else:
            raise ValueError(f"unexpected protobuf wire type {wire} at byte {i}")
        yield key >> 3, value


def metadata(path: Path) -> dict[str, str]:
    """The model's metadata_props as a dict."""
    meta = {}
    for number, entry in _fields(path.read_bytes()):
        if number == 14 and isinstance(entry, bytes):
            kv = dict(_fields(entry))
            key, value = kv.get(1, b""), kv.get(2, b"")
            if isinstance(key, bytes) and isinstance(value, bytes):
                meta[key.decode()] = value.decode()
    return meta


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    try:
        meta = metadata(path)
    except (OSError, ValueError, IndexError) as err:
        print(f"model-meta: {path}: {err}", file=sys.stderr)
        return 1
    print(meta.get("model_name", "unknown"), meta.get("model_version", "unknown"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
