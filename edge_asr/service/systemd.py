"""systemd integration: the notify protocol (READY, STATUS, WATCHDOG, STOPPING) and the journal.

The notify protocol is a few lines of our own that never block (see ``_send``); the journal
handler comes from systemd-python where it is installed. Without ``NOTIFY_SOCKET`` every
notify call is a no-op, so containers and non-systemd hosts need nothing extra.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


def _send(message: str) -> bool:
    """Send one notify datagram without ever waiting; True if the socket took it.

    Our own few lines rather than systemd-python's ``daemon.notify``: that one blocks while
    holding the GIL when the receiver's queue is full, which would freeze every thread of the
    daemon (capture included). A message that does not fit now is dropped; the next
    heartbeat sends a fresh one.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.send(message.encode(), socket.MSG_DONTWAIT)
        return True
    except OSError as e:  # BlockingIOError included: the receiver is not reading
        log.debug("sd_notify %r failed: %s", message, e)
        return False


class SystemdNotifier:
    """Tells systemd how the service is doing; pets the watchdog only while healthy."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.watchdog_interval_s = self._watchdog_interval()

    @staticmethod
    def _watchdog_interval() -> float | None:
        """Half of WatchdogSec (systemd's advice), or None when no watchdog is set."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        try:
            return max(0.05, int(usec) / 1e6 / 2)
        except ValueError:
            return None

    def ready(self, status: str) -> None:
        _send(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        _send(f"STATUS={status}")

    def stopping(self, status: str = "stopping") -> None:
        self._stop.set()
        _send(f"STOPPING=1\nSTATUS={status}")

    def start_watchdog(self, healthy: Callable[[], bool]) -> None:
        """Ping WATCHDOG=1 every half interval, but only while ``healthy()`` is true, so a
        stalled capture or dead worker makes systemd restart the service."""
        interval = self.watchdog_interval_s
        if interval is None or self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(interval):
                if healthy():
                    _send("WATCHDOG=1")
                else:
                    log.warning("not healthy: withholding the systemd watchdog ping")

        self._thread = threading.Thread(target=loop, name="systemd-watchdog", daemon=True)
        self._thread.start()


def under_systemd() -> bool:
    """True when systemd started this process (it sets INVOCATION_ID and JOURNAL_STREAM)."""
    return bool(os.environ.get("INVOCATION_ID") and os.environ.get("JOURNAL_STREAM"))


def journal_handler() -> logging.Handler | None:
    """A handler that logs to the journal with structured fields, if systemd-python is here."""
    try:
        from systemd.journal import JournalHandler
    except ImportError:
        return None
    return JournalHandler(SYSLOG_IDENTIFIER="edge-asr")
