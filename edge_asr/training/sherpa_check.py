"""Decode WAVs with sherpa-onnx's Zipformer2-CTC loader; prints a JSON list of transcripts.

Usage: python -m edge_asr.training.sherpa_check MODEL TOKENS WAV...
Run in a subprocess: a malformed model can kill the process.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    import sherpa_onnx
    import soundfile as sf

    model, tokens, *wavs = argv
    recognizer = sherpa_onnx.OfflineRecognizer.from_zipformer_ctc(
        model=model,
        tokens=tokens,
        num_threads=1,
        sample_rate=16000,
        feature_dim=80,
        decoding_method="greedy_search",
    )
    texts = []
    for wav in wavs:
        samples, rate = sf.read(wav, dtype="float32")
        stream = recognizer.create_stream()
        stream.accept_waveform(rate, samples)
        recognizer.decode_stream(stream)
        texts.append(" ".join(stream.result.text.split()))
    sys.stdout.write(json.dumps(texts) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
