"""The exceptions users see. Each message says what is wrong and, where it can, where."""

from __future__ import annotations


class EdgeAsrError(Exception):
    """Base class: the message is meant for the user, one line, no traceback needed."""


class BundleError(EdgeAsrError):
    """A model bundle folder is missing a file, or a file or metadata key is wrong."""


class AudioError(EdgeAsrError):
    """An audio file or stream cannot be used (missing, not audio, empty, NaN, too long)."""


class AudioFormatError(AudioError):
    """The data is not audio libsndfile can decode (a service answers 415)."""


class AudioTooLongError(AudioError):
    """The audio is longer than the limit (a service answers 413)."""


class GrammarError(EdgeAsrError):
    """A sentences file cannot be parsed."""


class ConfigError(EdgeAsrError):
    """Settings are invalid; the message names the key."""
