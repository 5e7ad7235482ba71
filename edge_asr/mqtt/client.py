"""Publishing to MQTT: availability, partials, and final transcripts that survive broker outages.

Finals go through a ``TranscriptSpool`` (``SqliteSpool`` on disk in the daemon, or
``MemorySpool``): a sender thread publishes the oldest one with QoS 1, waits for the broker's
PUBACK, then removes it, so finals reach the broker in order, whenever it is reachable. A
final can reach the broker twice only if the connection breaks between the broker receiving
it and its PUBACK arriving (QoS 1 semantics); its ``seq`` tells the copies apart.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from edge_asr.mqtt.payloads import PartialMessage, StatusMessage, TranscriptMessage
from edge_asr.mqtt.topics import Topics
from edge_asr.settings import MqttSettings

log = logging.getLogger(__name__)

QOS_FINAL = 1
QOS_PARTIAL = 0
QOS_STATUS = 1
_POLL_S = 0.2
_MAX_ACKED = 1024
_REFUSED_LOG_INTERVAL_S = 60.0
_DISCONNECTED_FLUSH_S = 1.0  # wait at shutdown for a broker that is away, with a disk spool


@dataclass(frozen=True)
class SpooledMessage:
    """A message waiting for the broker; ``key`` identifies it to ``TranscriptSpool.ack``."""

    key: int
    topic: str
    payload: bytes


class TranscriptSpool(Protocol):
    """Ordered store of finals not yet acknowledged by the broker."""

    def put(self, topic: str, payload: bytes) -> None:
        """Append a message (may drop the oldest if the spool is bounded and full)."""

    def peek(self, timeout: float) -> SpooledMessage | None:
        """The oldest message, waiting up to ``timeout`` seconds for one; None if empty."""

    def ack(self, message: SpooledMessage) -> None:
        """Remove ``message`` (the oldest) after the broker acknowledged it."""

    def __len__(self) -> int: ...

    @property
    def persistent(self) -> bool:
        """True if messages survive a restart of the process."""

    def close(self) -> None:
        """Release the storage (messages not acknowledged stay, if it is persistent)."""


class MemorySpool:
    """A bounded in-memory ``TranscriptSpool``; when full the oldest message is dropped."""

    def __init__(self, max_messages: int) -> None:
        self._max = max_messages
        self._items: collections.deque[SpooledMessage] = collections.deque()
        self._next_key = 0
        self._changed = threading.Condition()
        self.dropped = 0

    def put(self, topic: str, payload: bytes) -> None:
        with self._changed:
            if len(self._items) >= self._max:
                lost = self._items.popleft()
                self.dropped += 1
                log.warning(
                    "transcript queue full (%d): dropped the oldest unsent transcript (key %d); "
                    "%d dropped so far",
                    self._max,
                    lost.key,
                    self.dropped,
                )
            self._next_key += 1
            self._items.append(SpooledMessage(self._next_key, topic, payload))
            self._changed.notify_all()

    def peek(self, timeout: float) -> SpooledMessage | None:
        with self._changed:
            if not self._items:
                self._changed.wait(timeout)
            return self._items[0] if self._items else None

    def ack(self, message: SpooledMessage) -> None:
        with self._changed:
            if self._items and self._items[0].key == message.key:
                self._items.popleft()

    def __len__(self) -> int:
        with self._changed:
            return len(self._items)

    @property
    def persistent(self) -> bool:
        return False

    def close(self) -> None:
        pass


class MqttPublisher:
    """Publishes transcripts for one site; reconnects by itself (paho's loop thread)."""

    def __init__(
        self, settings: MqttSettings, topics: Topics, spool: TranscriptSpool | None = None
    ) -> None:
        self._settings = settings
        self._topics = topics
        self._spool: TranscriptSpool = (
            spool if spool is not None else MemorySpool(settings.queue_size)
        )
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._refused: str | None = None  # why the broker refused us, while it does
        self._last_refused_log = 0.0
        # mids the broker acknowledged (or paho sent, for QoS 0); capped, as nobody waits for most.
        self._acked: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._acked_changed = threading.Condition()
        self._handlers: dict[str, Callable[[str, bytes], None]] = {}
        self._on_connect_callbacks: list[Callable[[], None]] = []
        self._sender = threading.Thread(target=self._send_finals, name="mqtt-sender", daemon=True)
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        s = self._settings
        client_id = s.client_id or f"edge-asr-{self._topics.site_id}"
        client = make_client(s, client_id)
        client.will_set(self._topics.status, _status("offline"), qos=QOS_STATUS, retain=True)
        client.reconnect_delay_set(
            min_delay=int(s.reconnect_min_s), max_delay=int(s.reconnect_max_s)
        )
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def refused(self) -> str | None:
        """Why the broker refuses the connection (e.g. bad credentials); None otherwise."""
        return self._refused

    @property
    def dropped(self) -> int:
        """Finals dropped because the spool was full."""
        return int(getattr(self._spool, "dropped", 0))

    def pending(self) -> int:
        """Finals not yet acknowledged by the broker."""
        return len(self._spool)

    def start(self) -> None:
        """Connect in the background; a broker that is down is retried with backoff."""
        s = self._settings
        log.info("MQTT: connecting to %s:%d as %s", s.host, s.port, self._topics.prefix)
        self._client.connect_async(s.host, s.port, keepalive=s.keepalive_s)
        self._client.loop_start()
        self._sender.start()

    def subscribe(self, topic_filter: str, handler: Callable[[str, bytes], None]) -> None:
        """Call ``handler(topic, payload)`` for messages matching ``topic_filter`` (QoS 1).

        Subscriptions are (re)made on every connect, so they survive broker restarts. The
        handler runs in paho's network thread: it must be quick and must not block.
        """
        self._handlers[topic_filter] = handler
        if self._connected.is_set():
            self._client.subscribe(topic_filter, qos=1)

    def add_on_connect(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every successful (re)connect, once ``publish`` works.

        For what must be (re)published each time, like retained discovery configs. It runs in
        paho's network thread: it must be quick and must not block.
        """
        self._on_connect_callbacks.append(callback)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish any message now (dropped while disconnected, e.g. request responses)."""
        if self._connected.is_set():
            self._client.publish(topic, payload, qos=qos, retain=retain)

    def publish_final(self, message: TranscriptMessage) -> None:
        self._spool.put(self._topics.transcript, message.to_json())

    def publish_partial(self, message: PartialMessage) -> None:
        # Partials are only useful now: drop them while disconnected.
        if self._connected.is_set():
            self._client.publish(self._topics.partial, message.to_json(), qos=QOS_PARTIAL)

    def close(self, timeout: float = 5.0) -> None:
        """Send what is spooled (up to ``timeout``), mark the site offline, disconnect."""
        started = time.monotonic()
        deadline = started + timeout
        # Wait a little even while disconnected: the connection may be about to come (back).
        # A disk spool keeps what is left for the next start, so there is no point in more.
        while len(self._spool) and time.monotonic() < deadline:
            if (
                self._spool.persistent
                and not self._connected.is_set()
                and time.monotonic() - started > _DISCONNECTED_FLUSH_S
            ):
                break
            time.sleep(0.05)
        self._stopping.set()
        left = len(self._spool)
        if left:
            where = "kept in the spool for the next start" if self._spool.persistent else "lost"
            log.warning("MQTT: %d transcript(s) not delivered before shutdown: %s", left, where)
        if self._connected.is_set():
            info = self._client.publish(
                self._topics.status, _status("offline"), qos=QOS_STATUS, retain=True
            )
            self._wait_acked(info.mid, max(0.5, deadline - time.monotonic()))
            self._client.disconnect()
        self._client.loop_stop()
        self._sender.join(timeout=2.0)
        self._spool.close()

    # paho callbacks: run in paho's network thread, keep them short.

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        if reason_code.is_failure:
            # Bad credentials or a forbidden client id do not fix themselves: an error that
            # names the cause (repeated now and then), not a silent retry loop.
            first = self._refused is None
            self._refused = str(reason_code)
            now = time.monotonic()
            if first or now - self._last_refused_log >= _REFUSED_LOG_INTERVAL_S:
                log.error(
                    "MQTT: broker %s:%d refused the connection: %s%s; transcripts are kept in "
                    "the spool, retrying",
                    self._settings.host,
                    self._settings.port,
                    reason_code,
                    _refusal_hint(reason_code),
                )
                self._last_refused_log = now
            return
        self._refused = None
        log.info("MQTT: connected to %s:%d", self._settings.host, self._settings.port)
        client.publish(self._topics.status, _status("online"), qos=QOS_STATUS, retain=True)
        # Set before subscribing: a subscribe() racing with this either finds its handler
        # in the loop below or sees the connection and subscribes itself.
        self._connected.set()
        for topic_filter in list(self._handlers):
            client.subscribe(topic_filter, qos=1)
        for callback in list(self._on_connect_callbacks):
            try:
                callback()
            except Exception:  # a callback bug must not kill paho's network thread
                log.exception("MQTT: on-connect callback %s failed", callback)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._refused = None  # unreachable now, which is a different problem
        log.warning(
            "MQTT: cannot reach broker %s:%d, retrying", self._settings.host, self._settings.port
        )

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected and not self._stopping.is_set():
            log.warning("MQTT: connection lost (%s), reconnecting", reason_code)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_code: ReasonCode, properties: Any
    ) -> None:
        with self._acked_changed:
            self._acked[mid] = None
            while len(self._acked) > _MAX_ACKED:
                self._acked.popitem(last=False)
            self._acked_changed.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        for topic_filter, handler in list(self._handlers.items()):
            if mqtt.topic_matches_sub(topic_filter, message.topic):
                try:
                    handler(message.topic, bytes(message.payload))
                except Exception:  # a handler bug must not kill paho's network thread
                    log.exception("MQTT: handler for %s failed", message.topic)

    def _wait_acked(self, mid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._acked_changed:
            while mid not in self._acked:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._acked_changed.wait(min(left, _POLL_S))
            del self._acked[mid]
            return True

    def _send_finals(self) -> None:
        """Sender thread: publish the oldest final, wait for its PUBACK, remove it, repeat."""
        while not self._stopping.is_set():
            if not self._connected.wait(_POLL_S):
                continue
            message = self._spool.peek(_POLL_S)
            if message is None:
                continue
            info = self._client.publish(message.topic, message.payload, qos=QOS_FINAL)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                log.error("MQTT: cannot publish transcript: %s", mqtt.error_string(info.rc))
                time.sleep(1.0)
                continue
            # paho resends an unacknowledged QoS 1 message itself after a reconnect.
            while not self._stopping.is_set():
                if self._wait_acked(info.mid, _POLL_S):
                    self._spool.ack(message)
                    break


def make_client(settings: MqttSettings, client_id: str) -> mqtt.Client:
    """A paho client with the credentials and TLS of ``settings`` (not connected)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    if settings.username:
        client.username_pw_set(settings.username, settings.read_password())
    tls = settings.tls
    if tls.enabled:
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls.ca_file else None,
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
        )
        client.tls_insecure_set(tls.insecure)
    return client


def _refusal_hint(reason_code: ReasonCode) -> str:
    name = str(reason_code).lower()
    if "user name or password" in name or "not authorized" in name:
        return " (check mqtt.username and mqtt.password / mqtt.password_file)"
    if "client identifier" in name:
        return " (check mqtt.client_id)"
    return ""


def _status(state: str) -> bytes:
    return StatusMessage(state=state).to_json()  # type: ignore[arg-type]
