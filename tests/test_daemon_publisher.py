"""The MQTT publisher against a real mosquitto: ordering, outages, the bounded queue,
subscriptions that survive reconnects, and the availability topic."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

import pytest
from conftest import Broker, Daemon, Subscriber, wait_until
from messages import transcript

from edge_asr.mqtt.client import MemorySpool, MqttPublisher
from edge_asr.mqtt.payloads import PartialMessage, TranscriptMessage
from edge_asr.mqtt.topics import Topics
from edge_asr.settings import MqttSettings

pytestmark = pytest.mark.timeout(90)

NOW = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)


def final(seq: int, text: str = "hello") -> TranscriptMessage:
    return transcript(text, seq, started_at=NOW, site_id="test")


@pytest.fixture
def publisher_factory() -> Iterator[Callable[..., MqttPublisher]]:
    made: list[MqttPublisher] = []

    def make(broker: Broker, **settings: object) -> MqttPublisher:
        mqtt_settings = MqttSettings(
            host=broker.host, port=broker.port, reconnect_max_s=1, **settings
        )
        publisher = MqttPublisher(mqtt_settings, Topics("edge-asr", "test"))
        made.append(publisher)
        return publisher

    yield make
    for publisher in made:
        publisher.close(timeout=1.0)


def test_message_json_uses_iso_utc_with_z() -> None:
    raw = final(1).model_dump(mode="json")
    assert raw["started_at"] == "2026-01-02T03:04:05.678Z"
    assert raw["model"] == {"name": "home-en", "version": "1"}


def test_finals_arrive_in_order_with_qos_1_and_partials_with_qos_0(
    broker: Broker,
    subscriber_factory: Callable[..., Subscriber],
    publisher_factory: Callable[..., MqttPublisher],
) -> None:
    sub = subscriber_factory(broker)
    publisher = publisher_factory(broker)
    publisher.start()
    assert wait_until(lambda: publisher.connected, 10)
    partial = PartialMessage(
        text="hel", utterance_id="u1", site_id="test", started_at=NOW, duration_s=0.3,
        processing_ms=1.0,
    )  # fmt: skip
    publisher.publish_partial(partial)
    for seq in range(1, 21):
        publisher.publish_final(final(seq))
    got = sub.wait_for("transcript", 20)
    assert [m.json()["seq"] for m in got] == list(range(1, 21))
    assert all(not m.retain and m.qos == 1 for m in got)
    (partial_received,) = sub.wait_for("partial")
    assert partial_received.json()["text"] == "hel" and partial_received.qos == 0
    assert wait_until(lambda: publisher.pending() == 0, 5)


def test_finals_made_while_the_broker_is_down_are_kept_and_sent_in_order(
    broker_factory: Callable[[], Broker],
    subscriber_factory: Callable[..., Subscriber],
    publisher_factory: Callable[..., MqttPublisher],
) -> None:
    broker = broker_factory()
    publisher = publisher_factory(broker)
    publisher.start()  # nothing listens yet
    for seq in range(1, 6):
        publisher.publish_final(final(seq))
    publisher.publish_partial(
        PartialMessage(
            text="x",
            utterance_id="u",
            site_id="test",
            started_at=NOW,
            duration_s=0.3,
            processing_ms=1.0,
        )  # fmt: skip
    )
    assert publisher.pending() == 5 and not publisher.connected
    broker.start()
    sub = subscriber_factory(broker)
    got = sub.wait_for("transcript", 5, timeout=20)
    assert [m.json()["seq"] for m in got] == [1, 2, 3, 4, 5]
    assert sub.on("partial") == []  # partials are only for now: dropped while disconnected


def test_a_full_queue_drops_the_oldest_and_counts_it(caplog: pytest.LogCaptureFixture) -> None:
    spool = MemorySpool(max_messages=3)
    for i in range(5):
        spool.put("t", str(i).encode())
    assert spool.dropped == 2 and len(spool) == 3
    assert "dropped the oldest unsent transcript" in caplog.text
    out = []
    while (message := spool.peek(0)) is not None:
        out.append(message.payload)
        spool.ack(message)
    assert out == [b"2", b"3", b"4"]


def test_subscriptions_are_renewed_after_a_broker_restart(
    broker: Broker,
    subscriber_factory: Callable[..., Subscriber],
    publisher_factory: Callable[..., MqttPublisher],
) -> None:
    received: list[tuple[str, bytes]] = []
    publisher = publisher_factory(broker)
    publisher.subscribe("edge-asr/test/request/+", lambda t, p: received.append((t, p)))
    publisher.start()
    assert wait_until(lambda: publisher.connected, 10)
    sender = subscriber_factory(broker, "unused/#")
    sender.publish("edge-asr/test/request/ping", b"1")
    assert wait_until(lambda: len(received) == 1, 10)
    broker.stop()
    assert wait_until(lambda: not publisher.connected, 10)
    broker.start()
    assert wait_until(lambda: publisher.connected, 15)
    sender = subscriber_factory(broker, "unused/#")
    sender.publish("edge-asr/test/request/ping", b"2")
    assert wait_until(lambda: len(received) == 2, 10)
    assert received == [("edge-asr/test/request/ping", b"1"), ("edge-asr/test/request/ping", b"2")]


def test_killed_daemon_is_marked_offline_by_its_will(
    broker: Broker,
    subscriber_factory: Callable[..., Subscriber],
    daemon_factory: Callable[..., Daemon],
) -> None:
    daemon = daemon_factory("--source", "stdin", broker=broker)
    daemon.start(stdin=subprocess.PIPE)  # the pipe stays open: the daemon keeps running
    daemon.wait_for_log("MQTT: connected")
    sub = subscriber_factory(broker)
    assert sub.wait_for("status")[-1].json() == {"state": "online"}
    assert daemon.proc is not None
    os.kill(daemon.proc.pid, signal.SIGKILL)
    daemon.proc.wait(10)
    statuses = sub.wait_for("status", 2, timeout=20)
    assert statuses[-1].json() == {"state": "offline"}
