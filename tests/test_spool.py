"""The disk spool keeps every transcript until the broker acknowledged it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge_asr.mqtt.spool import SqliteSpool

pytestmark = pytest.mark.timeout(60)


def drain(spool: SqliteSpool) -> list[bytes]:
    out = []
    while (msg := spool.peek(0)) is not None:
        out.append(msg.payload)
        spool.ack(msg)
    return out


def test_messages_come_out_in_order_and_leave_only_when_acked(tmp_path: Path) -> None:
    spool = SqliteSpool(tmp_path / "spool.db")
    for i in range(5):
        spool.put("t", f"{i}".encode())
    first = spool.peek(0)
    assert first is not None and first.payload == b"0"
    assert spool.peek(0) == first  # not removed by looking
    assert len(spool) == 5
    assert drain(spool) == [f"{i}".encode() for i in range(5)]
    assert len(spool) == 0
    assert spool.peek(0.05) is None


def test_pending_messages_survive_reopening(tmp_path: Path) -> None:
    spool = SqliteSpool(tmp_path / "spool.db")
    for i in range(3):
        spool.put("edge-asr/x/transcript", f"{i}".encode())
    msg = spool.peek(0)
    assert msg is not None
    spool.ack(msg)
    spool.close()
    again = SqliteSpool(tmp_path / "spool.db")
    assert len(again) == 2
    assert drain(again) == [b"1", b"2"]


def test_a_killed_writer_loses_nothing_it_put(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    code = textwrap.dedent(
        f"""
        import sys, time
        from edge_asr.mqtt.spool import SqliteSpool
        spool = SqliteSpool({str(path)!r})
        for i in range(20):
            spool.put("t", str(i).encode())
        print("written", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "written"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert drain(SqliteSpool(path)) == [str(i).encode() for i in range(20)]


def test_full_spool_drops_the_oldest_and_counts(tmp_path: Path) -> None:
    spool = SqliteSpool(tmp_path / "spool.db", max_messages=3)
    for i in range(5):
        spool.put("t", f"{i}".encode())
    assert spool.dropped == 2
    assert drain(spool) == [b"2", b"3", b"4"]


def test_corrupt_spool_is_moved_aside_and_a_new_one_used(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    path.write_bytes(b"this is not a database" * 100)
    spool = SqliteSpool(path)
    assert len(spool) == 0
    spool.put("t", b"after")
    assert drain(spool) == [b"after"]
    aside = list(tmp_path.glob("spool.db.corrupt-*"))
    assert len(aside) == 1
    assert aside[0].read_bytes().startswith(b"this is not a database")


def test_waiting_peek_wakes_when_a_message_arrives(tmp_path: Path) -> None:
    import threading

    spool = SqliteSpool(tmp_path / "spool.db")
    timer = threading.Timer(0.1, spool.put, args=("t", b"late"))
    timer.start()
    msg = spool.peek(5)
    timer.join()
    assert msg is not None and msg.payload == b"late"
