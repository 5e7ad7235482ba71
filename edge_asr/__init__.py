"""edge-asr: offline speech recognition for small Linux boxes."""

__version__ = "0.1.0"
