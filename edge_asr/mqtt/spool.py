"""A disk spool for final transcripts: written before publishing, removed after the PUBACK.

SQLite in WAL mode with ``synchronous=FULL``: a transcript that ``put`` returned for survives
``kill -9`` and power loss. When the spool is full the oldest transcript is dropped (counted
and logged): the newest speech matters most to a home that is listening now. A spool file
that SQLite cannot read is moved aside (``*.corrupt-<time>``) and a new one started.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

from edge_asr.mqtt.client import SpooledMessage

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    key INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL
)
"""


class SqliteSpool:
    """A bounded, persistent ``TranscriptSpool``."""

    def __init__(self, path: Path, max_messages: int = 10000) -> None:
        self.path = Path(path)
        self.max_messages = max_messages
        self.dropped = 0
        self._changed = threading.Condition()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as e:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.warning("spool %s is unreadable (%s); moved aside to %s", self.path, e, aside)
            self.path.rename(aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self._db = self._open()
        self._count = self._db.execute("SELECT COUNT(*) FROM pending").fetchone()[0]
        if self._count:
            log.info("spool %s: %d transcripts from before are still to be sent", path, self._count)

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("integrity check failed")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(_SCHEMA)
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def put(self, topic: str, payload: bytes) -> None:
        with self._changed:
            self._db.execute(
                "INSERT INTO pending (topic, payload, created) VALUES (?, ?, ?)",
                (topic, payload, time.time()),
            )
            self._count += 1
            if self._count > self.max_messages:
                excess = self._count - self.max_messages
                self._db.execute(
                    "DELETE FROM pending WHERE key IN "
                    "(SELECT key FROM pending ORDER BY key LIMIT ?)",
                    (excess,),
                )
                self._count -= excess
                self.dropped += excess
                log.warning(
                    "spool full (%d transcripts): dropped the %d oldest unsent; %d dropped so far",
                    self.max_messages,
                    excess,
                    self.dropped,
                )
            self._changed.notify_all()

    def peek(self, timeout: float) -> SpooledMessage | None:
        with self._changed:
            if not self._count:
                self._changed.wait(timeout)
            row = self._db.execute(
                "SELECT key, topic, payload FROM pending ORDER BY key LIMIT 1"
            ).fetchone()
        return SpooledMessage(row[0], row[1], bytes(row[2])) if row else None

    def ack(self, message: SpooledMessage) -> None:
        with self._changed:
            deleted = self._db.execute("DELETE FROM pending WHERE key = ?", (message.key,))
            self._count -= deleted.rowcount

    def __len__(self) -> int:
        # No lock: a put may be waiting for its fsync, and health and status must not wait.
        return self._count

    @property
    def persistent(self) -> bool:
        return True

    def close(self) -> None:
        with self._changed:
            self._db.close()
