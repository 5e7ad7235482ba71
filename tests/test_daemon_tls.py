"""MQTT over TLS with a client certificate and a password from a file, against mosquitto."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Broker, Daemon, Subscriber, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_pki(directory: Path) -> None:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    directory.mkdir()
    new_key = ["-newkey", "rsa:2048", "-nodes", "-days", "2"]
    _openssl("req", "-x509", *new_key, "-keyout", "ca.key", "-out", "ca.crt",
             "-subj", "/CN=edge-asr test CA", cwd=directory)  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, ext in (("server", ["-extfile", "san.ext"]), ("client", [])):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=directory)  # fmt: skip
        sign = ["-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", *ext]
        _openssl("x509", "-req", "-in", f"{name}.csr", "-out", f"{name}.crt", *sign, cwd=directory)


@pytest.fixture
def tls_broker(broker_factory: Callable[[], Broker], tmp_path: Path) -> tuple[Broker, int, Path]:
    """A mosquitto with a plain test listener and a TLS listener that wants a client
    certificate and a user name and password. Returns (broker, TLS port, PKI folder)."""
    for tool in ("openssl", "mosquitto_passwd", "mosquitto"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")
    pki = tmp_path / "pki"
    make_pki(pki)
    passwords = pki / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(passwords), "edge", "s3cret"], check=True, timeout=10
    )
    passwords.chmod(0o600)
    tls_port = free_port()
    broker = broker_factory()
    broker.extra_config = (
        f"listener {tls_port} 127.0.0.1\n"
        f"cafile {pki / 'ca.crt'}\ncertfile {pki / 'server.crt'}\nkeyfile {pki / 'server.key'}\n"
        f"require_certificate true\nallow_anonymous false\npassword_file {passwords}\n"
    )
    broker.start()
    return broker, tls_port, pki


def test_daemon_publishes_over_tls_with_client_certificate_and_password_file(
    tls_broker: tuple[Broker, int, Path],
    subscriber_factory: Callable[..., Subscriber],
    daemon_factory: Callable[..., Daemon],
    make_speech: Callable[..., Path],
    tmp_path: Path,
) -> None:
    broker, tls_port, pki = tls_broker
    sub = subscriber_factory(broker)  # on the plain listener
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "mqtt-password").write_text("s3cret\n")
    wav = make_speech("turn on the kitchen light")
    daemon = daemon_factory(
        "--source", f"file:{wav}", "--fast", "--mqtt-port", str(tls_port),
        broker=broker,
        env={
            "EDGE_ASR_MQTT__TLS__ENABLED": "true",
            "EDGE_ASR_MQTT__TLS__CA_FILE": str(pki / "ca.crt"),
            "EDGE_ASR_MQTT__TLS__CERT_FILE": str(pki / "client.crt"),
            "EDGE_ASR_MQTT__TLS__KEY_FILE": str(pki / "client.key"),
            "EDGE_ASR_MQTT__USERNAME": "edge",
            "EDGE_ASR_MQTT__PASSWORD_FILE": "mqtt-password",
            "CREDENTIALS_DIRECTORY": str(credentials),
        },
    ).start()  # fmt: skip
    assert daemon.wait_exit(60) == 0, daemon.log
    (final,) = sub.wait_for("transcript", timeout=20)
    assert final.json()["seq"] == 1
    assert "not delivered" not in daemon.log


def test_wrong_password_is_reported_and_nothing_is_published(
    tls_broker: tuple[Broker, int, Path],
    subscriber_factory: Callable[..., Subscriber],
    daemon_factory: Callable[..., Daemon],
) -> None:
    broker, tls_port, pki = tls_broker
    sub = subscriber_factory(broker)
    daemon = daemon_factory(
        "--source", "stdin", "--mqtt-port", str(tls_port),
        broker=broker,
        env={
            "EDGE_ASR_MQTT__TLS__ENABLED": "true",
            "EDGE_ASR_MQTT__TLS__CA_FILE": str(pki / "ca.crt"),
            "EDGE_ASR_MQTT__TLS__CERT_FILE": str(pki / "client.crt"),
            "EDGE_ASR_MQTT__TLS__KEY_FILE": str(pki / "client.key"),
            "EDGE_ASR_MQTT__USERNAME": "edge",
            "EDGE_ASR_MQTT__PASSWORD": "wrong",
        },
    ).start(stdin=subprocess.PIPE)  # fmt: skip
    daemon.wait_for_log(f"broker 127.0.0.1:{tls_port} refused the connection", timeout=30)
    assert "Not authorized (check mqtt.username and mqtt.password" in daemon.log
    assert daemon.stop() == 0
    assert sub.on("status") == []


def test_unreadable_password_file_exits_2_naming_the_key(
    daemon_factory: Callable[..., Daemon], tmp_path: Path
) -> None:
    daemon = daemon_factory(
        "--source", "stdin",
        env={
            "EDGE_ASR_MQTT__ENABLED": "true",
            "EDGE_ASR_MQTT__USERNAME": "edge",
            "EDGE_ASR_MQTT__PASSWORD_FILE": str(tmp_path / "missing"),
        },
    ).start()  # fmt: skip
    assert daemon.wait_exit(30) == 2
    assert "mqtt.password_file" in daemon.log and "Traceback" not in daemon.log
