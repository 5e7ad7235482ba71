"""Run sherpa-onnx's offline zipformer-CTC recognizer on WAVs and print JSON lines.

Run as a subprocess by the parity tests: a bad bundle can kill the process that loads it.
Usage: python sherpa_decode.py MODEL.onnx TOKENS.txt WAV...
"""

from __future__ import annotations

import json
import sys

import sherpa_onnx
import soundfile as sf


def main() -> None:
    model, tokens, *wavs = sys.argv[1:]
    recognizer = sherpa_onnx.OfflineRecognizer.from_zipformer_ctc(
        model=model,
        tokens=tokens,
        num_threads=1,
        sample_rate=16000,
        feature_dim=80,
        decoding_method="greedy_search",
    )
    for wav in wavs:
        samples, rate = sf.read(wav, dtype="float32")
        stream = recognizer.create_stream()
        stream.accept_waveform(rate, samples)
        recognizer.decode_stream(stream)
        result = stream.result
        print(
            json.dumps(
                {
                    "text": result.text,
                    "tokens": list(result.tokens),
                    "timestamps": [round(t, 2) for t in result.timestamps],
                }
            )
        )


if __name__ == "__main__":
    main()
