"""Limits that protect the box, and a clean stop on SIGTERM."""

import signal
import socket
import threading
import time

import paramiko
import pytest

from conftest import PASSWORD


def session(box, user="bob"):
    t = paramiko.Transport(socket.create_connection(("127.0.0.1", box.port), timeout=10))
    t.start_client(timeout=10)
    t.auth_password(user, PASSWORD, fallback=False)
    return t


def test_login_grace_time_closes_a_silent_connection(box_factory):
    box = box_factory('login_grace_time = "2s"\n')
    s = socket.create_connection(("127.0.0.1", box.port), timeout=10)
    started = time.monotonic()
    s.recv(256)  # the server's version line
    while True:
        data = s.recv(4096)  # kex init, then the close
        if not data:
            break
    took = time.monotonic() - started
    assert 1.5 < took < 6, f"closed after {took:.1f} s"


def test_channels_per_connection_are_bounded(box_factory):
    box = box_factory("max_channels = 2\n")
    box.add_user("bob")
    t = session(box)
    a = paramiko.SFTPClient.from_transport(t)
    b = paramiko.SFTPClient.from_transport(t)
    with pytest.raises(paramiko.ChannelException):
        paramiko.SFTPClient.from_transport(t)
    a.close()
    time.sleep(0.3)
    c = paramiko.SFTPClient.from_transport(t)  # a closed channel frees its slot
    assert c.listdir(".") == []
    b.close()
    c.close()
    t.close()


def test_sigterm_lets_a_transfer_finish_within_the_grace_then_stops(box_factory, tmp_path):
    box = box_factory('\n[shutdown]\ngrace = "10s"\n')
    box.add_user("bob")
    idle = socket.create_connection(("127.0.0.1", box.port), timeout=10)  # never logs in
    t = session(box)
    sftp = paramiko.SFTPClient.from_transport(t)
    written = {"bytes": 0, "error": None}
    chunk = b"x" * (256 * 1024)

    def upload():
        try:
            with sftp.open("big.bin", "wb") as f:
                f.set_pipelined(True)
                for _ in range(16):  # 4 MiB, finishes well inside the grace
                    f.write(chunk)
                    written["bytes"] += len(chunk)
        except Exception as e:  # noqa: BLE001 - reported below
            written["error"] = e

    worker = threading.Thread(target=upload)
    worker.start()
    time.sleep(0.2)
    stopped_at = time.monotonic()
    box.proc.send_signal(signal.SIGTERM)
    worker.join(timeout=30)
    assert written["error"] is None, written["error"]
    box.proc.wait(timeout=20)
    took = time.monotonic() - stopped_at
    assert box.proc.returncode == 0
    assert took < 10 + 5, f"the server took {took:.1f} s to stop"
    assert (box.data / "files" / "bob" / "big.bin").stat().st_size == 16 * len(chunk)
    idle.settimeout(5)
    try:
        while idle.recv(4096):
            pass
    except OSError:
        pass
    idle.close()
