"""State kept across restarts in the state folder."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from edge_asr.errors import ConfigError

log = logging.getLogger(__name__)

SEQ_FILE = "seq"


class SequenceCounter:
    """The transcript sequence number: increases by one per final, survives restarts.

    The new value is on disk (written and renamed atomically) before it is handed out, so a
    crash never reuses a number; at worst one is skipped.
    """

    def __init__(self, state_dir: Path) -> None:
        self._path = state_dir / SEQ_FILE
        self._lock = threading.Lock()
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"state_dir: cannot create {state_dir}: {err.strerror}") from None
        self._value = self._read()

    def _read(self) -> int:
        try:
            text = self._path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return 0
        except OSError as err:
            raise ConfigError(f"state_dir: cannot read {self._path}: {err.strerror}") from None
        try:
            value = int(text)
        except ValueError:
            log.warning("%s is corrupt (%r); sequence numbers restart at 1", self._path, text)
            return 0
        return max(0, value)

    @property
    def value(self) -> int:
        """The last number handed out (0 if none yet)."""
        return self._value

    def next(self) -> int:
        """Reserve and return the next number."""
        with self._lock:
            value = self._value + 1
            tmp = self._path.with_suffix(".tmp")
            try:
                with open(tmp, "w", encoding="ascii") as f:
                    f.write(f"{value}\n")
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self._path)
            except OSError as err:  # keep counting in memory; the next write may work
                log.error("cannot save sequence number to %s: %s", self._path, err.strerror)
            self._value = value
            return value
