"""Subcommands of the edge-asr command line, one module each."""
