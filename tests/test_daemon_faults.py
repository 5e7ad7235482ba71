"""Nothing lost: the disk spool, broker restarts and refusals, control requests, pause, reload.

The daemon reads raw PCM from a pipe that a feeder thread keeps flowing in real time
(silence, with speech where a test says), so audio behaves like a live microphone.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, Broker, Daemon, ModelUnderTest, Subscriber, wait_until
from feeder import StdinFeeder

from edge_asr.mqtt.payloads import TranscriptMessage

pytestmark = pytest.mark.slow

PREFIX = "edge-asr/default"


@pytest.fixture(scope="module")
def commands(make_speech: Callable[..., Path]) -> list[np.ndarray]:
    texts = ["turn on the kitchen light", "what time is it", "set a timer for five minutes"]
    return [sf.read(str(make_speech(t, lead_s=0.0, tail_s=0.0)), dtype="float32")[0] for t in texts]


@dataclass
class Rig:
    """A broker (not started), test subscribers, and daemons on a stdin feeder."""

    broker: Broker
    subscriber: Callable[..., Subscriber]
    make_daemon: Callable[..., Daemon]
    commands: list[np.ndarray]
    state: Path
    feeders: list[StdinFeeder] = field(default_factory=list)

    def start(
        self, *args: str, env: dict[str, str] | None = None, speed: float = 1.0
    ) -> tuple[Daemon, StdinFeeder]:
        """A daemon reading the stdin feeder, publishing to the broker, without partials."""
        no_partials = ("--set", "recognizer.partials=false")
        daemon = self.make_daemon(
            "--source", "stdin", *no_partials, *args,
            broker=self.broker, state_dir=self.state, env=env,
        )  # fmt: skip
        feeder = StdinFeeder(daemon, speed)
        self.feeders.append(feeder)
        return daemon, feeder


@pytest.fixture
def rig(
    broker_factory: Callable[[], Broker],
    subscriber_factory: Callable[..., Subscriber],
    daemon_factory: Callable[..., Daemon],
    commands: list[np.ndarray],
    tmp_path: Path,
) -> Iterator[Rig]:
    if not shutil.which("mosquitto"):
        pytest.skip("mosquitto is not installed")
    made = Rig(broker_factory(), subscriber_factory, daemon_factory, commands, tmp_path / "state")
    yield made
    for feeder in made.feeders:
        feeder.close()


def _finals(sub: Subscriber, count: int, timeout: float = 60) -> list[TranscriptMessage]:
    return [
        TranscriptMessage.model_validate_json(m.payload)
        for m in sub.wait_for("transcript", count, timeout=timeout)
    ]


def _request(
    sub: Subscriber, command: str, payload: Any = None, timeout: float = 20
) -> dict[str, Any]:
    before = len(sub.on(f"response/{command}"))
    body = b"" if payload is None else json.dumps(payload).encode()
    sub.publish(f"{PREFIX}/request/{command}", body)
    answers = sub.wait_for(f"response/{command}", before + 1, timeout=timeout)
    return answers[-1].json()  # type: ignore[no-any-return]


def _spooled(state_dir: Path) -> list[int]:
    db = sqlite3.connect(state_dir / "spool.sqlite3")
    try:
        return [json.loads(p)["seq"] for (p,) in db.execute("SELECT payload FROM pending")]
    finally:
        db.close()


# --- control requests -------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_pause_resume_and_status_requests_steer_listening(rig: Rig) -> None:
    rig.broker.start()
    sub = rig.subscriber(rig.broker)
    daemon, feeder = rig.start()
    daemon.wait_listening()
    daemon.wait_for_log("MQTT: connected")

    status = _request(sub, "status", {"transaction": 7})
    assert status["status"] == "ok" and status["transaction"] == 7 and status["error"] is None
    assert status["data"]["state"] == "listening"
    assert status["data"]["paused"] is False and status["data"]["audio_flowing"] is True
    assert status["data"]["model"]["name"]

    paused = _request(sub, "pause")
    assert paused["status"] == "ok" and paused["data"]["paused"] is True
    assert paused["data"]["state"] == "paused"
    feeder.say(rig.commands[0])
    feeder.wait_said()
    time.sleep(1.0)
    assert sub.on("transcript") == [], "a paused daemon published a transcript"

    resumed = _request(sub, "resume", {"transaction": "abc"})
    assert resumed["data"]["paused"] is False and resumed["transaction"] == "abc"
    feeder.say(rig.commands[1])
    (final,) = _finals(sub, 1)
    assert final.seq == 1
    assert daemon.stop() == 0


@pytest.mark.timeout(180)
def test_pause_is_kept_across_a_restart(rig: Rig) -> None:
    rig.broker.start()
    sub = rig.subscriber(rig.broker)
    first, _ = rig.start()
    first.wait_for_log("MQTT: connected")
    assert _request(sub, "pause")["data"]["paused"] is True
    assert first.stop() == 0

    second, feeder = rig.start()
    second.wait_for_log("MQTT: connected")
    assert "listening is paused" in second.log
    assert _request(sub, "status")["data"]["state"] == "paused"
    feeder.say(rig.commands[0])
    feeder.wait_said()
    time.sleep(1.0)
    assert sub.on("transcript") == []
    assert second.stop() == 0


MALFORMED: list[tuple[str, bytes]] = [
    *[("status", p) for p in (b"{", b"[]", b"42", b'"text"', b"null", b"\xff\xfe", b"{]")],
    *[("pause", json.dumps({"unexpected": i}).encode()) for i in range(10)],
    *[("resume", json.dumps({"transaction": bad}).encode()) for bad in (True, 1.5, [], {})],
    *[(f"no-such-command-{i}", b"{}") for i in range(20)],
    ("status", b"{" * 100_000),  # larger than the request limit
    ("status", b'{"a": ' * 2000),  # deep nesting, truncated
    *[("reload", b"{}") for _ in range(5)],  # no sentences file set: refused
    # Control bytes and junk (whitespace alone counts as an empty request, which is fine).
    *[("status", bytes([i]) * 17) for i in range(1, 64) if not chr(i).isspace()],
]


@pytest.mark.timeout(240)
def test_a_hundred_malformed_requests_each_get_an_error_and_the_daemon_goes_on(rig: Rig) -> None:
    assert len(MALFORMED) >= 100
    rig.broker.start()
    sub = rig.subscriber(rig.broker)
    daemon, feeder = rig.start()
    daemon.wait_for_log("MQTT: connected")
    feeder.say(rig.commands[0])  # speech while the requests arrive: its transcript must stay
    for command, payload in MALFORMED:
        before = len(sub.on(f"response/{command}"))
        sub.publish(f"{PREFIX}/request/{command}", payload)
        answer = sub.wait_for(f"response/{command}", before + 1, timeout=20)[-1].json()
        assert answer["status"] == "error", (command, payload[:40], answer)
        assert answer["error"] and "\n" not in answer["error"], answer
        assert answer["data"] is None
    assert _request(sub, "status")["status"] == "ok"
    (final,) = _finals(sub, 1)
    assert final.seq == 1
    assert daemon.proc is not None and daemon.proc.poll() is None
    assert "Traceback" not in daemon.log
    assert daemon.stop() == 0


# --- reload -------------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_sighup_reloads_the_sentences_file_without_stopping_audio(
    rig: Rig, tmp_path: Path, test_model: ModelUnderTest
) -> None:
    if not test_model.real:
        pytest.skip("needs the trained model")
    what_time = rig.commands[1]
    sentences = tmp_path / "sentences.ini"
    sentences.write_text("[lights]\nturn on the kitchen light\n", encoding="utf-8")
    rig.broker.start()
    sub = rig.subscriber(rig.broker)
    daemon, feeder = rig.start("--set", f"recognizer.sentences={sentences}")
    daemon.wait_for_log("MQTT: connected")
    feeder.say(what_time)  # not in the grammar yet
    (before,) = _finals(sub, 1)
    assert before.text != "what time is it"

    sentences.write_text(
        "[lights]\nturn on the kitchen light\n[time]\nwhat time is it\n", encoding="utf-8"
    )
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for_log(f"sentences loaded from {sentences}", timeout=30)
    feeder.say(what_time)
    _, after = _finals(sub, 2)
    assert after.text == "what time is it" and after.intent == "time"

    sentences.write_text("[broken]\nturn (on\n", encoding="utf-8")
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for_log("reload failed, the previous grammar stays", timeout=30)
    answer = _request(sub, "reload")
    assert answer["status"] == "error" and "sentences" in answer["error"]
    feeder.say(what_time)
    *_, last = _finals(sub, 3)
    assert last.text == "what time is it"
    status = _request(sub, "status")["data"]
    assert status["audio_overruns"] == 0 and status["recognizer_overruns"] == 0
    assert daemon.stop() == 0


# --- the spool ----------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_spooled_transcripts_survive_kill_9_and_are_sent_in_order_after_restart(rig: Rig) -> None:
    first, feeder = rig.start()  # the broker is down
    first.wait_listening()
    for samples in rig.commands:
        feeder.say(samples)
    first.wait_for_log("transcript 3:", timeout=60)
    assert wait_until(lambda: _spooled(rig.state) == [1, 2, 3], timeout=10)
    assert first.proc is not None
    first.proc.kill()  # no chance to flush anything
    first.proc.wait(10)

    rig.broker.start()
    sub = rig.subscriber(rig.broker)
    second, feeder = rig.start()
    finals = _finals(sub, 3)
    assert [f.seq for f in finals] == [1, 2, 3]
    assert "3 transcripts from before are still to be sent" in second.log
    feeder.say(rig.commands[0])
    assert _finals(sub, 4)[-1].seq == 4
    assert wait_until(lambda: _spooled(rig.state) == [], timeout=10)
    assert second.stop() == 0


@pytest.mark.timeout(180)
def test_stop_while_the_broker_is_down_is_quick_and_keeps_transcripts_for_the_next_start(
    rig: Rig,
) -> None:
    first, feeder = rig.start()  # the broker is down
    first.wait_listening()
    feeder.say(rig.commands[0])
    first.wait_for_log("transcript 1:", timeout=60)
    asked = time.monotonic()
    assert first.stop() == 0
    assert time.monotonic() - asked < 5.0, "stopping took longer than 5 s"
    assert "kept in the spool for the next start" in first.log
    assert _spooled(rig.state) == [1]

    rig.broker.start()
    sub = rig.subscriber(rig.broker)
    second, _ = rig.start()
    assert [f.seq for f in _finals(sub, 1)] == [1]
    assert second.stop() == 0


@pytest.mark.timeout(120)
def test_a_corrupt_spool_is_moved_aside_and_the_daemon_goes_on(rig: Rig) -> None:
    rig.state.mkdir()
    (rig.state / "spool.sqlite3").write_bytes(b"this is not a database" * 100)
    rig.broker.start()
    sub = rig.subscriber(rig.broker)
    daemon, feeder = rig.start()
    daemon.wait_for_log("MQTT: connected")
    assert "moved aside" in daemon.log
    assert list(rig.state.glob("spool.sqlite3.corrupt-*"))
    feeder.say(rig.commands[0])
    assert _finals(sub, 1)[0].seq == 1
    assert daemon.stop() == 0


# --- broker faults -------------------------------------------------------------------------


@pytest.mark.timeout(600)
def test_fifty_utterances_through_five_broker_restarts_reach_a_persistent_subscriber(
    rig: Rig,
) -> None:
    rig.broker.persistent = True  # sessions and queued messages survive a restart
    rig.broker.start()
    sub = rig.subscriber(rig.broker, "edge-asr/+/transcript", persistent=True)
    # The stdin source does not mind audio faster than real time.
    daemon, feeder = rig.start(env={"EDGE_ASR_MQTT__RECONNECT_MAX_S": "1"}, speed=4.0)
    daemon.wait_for_log("MQTT: connected")
    for restart in range(5):
        for i in range(10):
            feeder.say(rig.commands[(restart + i) % len(rig.commands)], silence_after_s=0.9)
            if i == 4:
                feeder.wait_said(60)
                rig.broker.stop()
                time.sleep(1.0)
                rig.broker.start()
        feeder.wait_said(120)
    daemon.wait_for_log("transcript 50:", timeout=120)
    seqs = [f.seq for f in _finals(sub, 50, timeout=120)]
    assert sorted(set(seqs)) == list(range(1, 51)), seqs
    # QoS 1 may deliver twice, but never out of order once deduplicated by seq.
    first_seen = list(dict.fromkeys(seqs))
    assert first_seen == list(range(1, 51)), seqs
    assert daemon.log.count("MQTT: connected to") >= 6
    assert daemon.stop() == 0


@pytest.mark.timeout(120)
def test_refused_credentials_are_an_error_state_named_in_log_status_and_health(
    rig: Rig, tmp_path: Path
) -> None:
    rig.broker.users = {"edge": "right-password"}
    rig.broker.start()
    password = tmp_path / "password"
    password.write_text("wrong-password\n", encoding="utf-8")
    daemon, feeder = rig.start(
        env={"EDGE_ASR_MQTT__USERNAME": "edge", "EDGE_ASR_MQTT__PASSWORD_FILE": str(password)}
    )
    daemon.wait_for_log("refused the connection", timeout=30)
    assert "check mqtt.username and mqtt.password" in daemon.log
    feeder.say(rig.commands[0])
    daemon.wait_for_log("transcript 1:", timeout=60)

    def report() -> dict[str, Any]:
        return json.loads((rig.state / "health.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]

    assert wait_until(lambda: report()["spool_pending"] == 1, timeout=10), report()
    assert report()["broker_connected"] is False and "refused" in report()["broker_error"]
    checked = subprocess.run(
        [sys.executable, "-m", "edge_asr", "health", "--state-dir", str(rig.state)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert checked.returncode == 0, checked.stdout  # the spool keeps transcripts: still healthy
    assert "broker refused the connection: Not authorized" in checked.stdout
    assert daemon.log.count("refused the connection") <= 2, "refusal logged on every retry"
    assert daemon.stop() == 0
