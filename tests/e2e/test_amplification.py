"""Authenticated amplification: one request or one command must not make
the server do unbounded work. `copy-data` copies a bounded number of bytes
and never eats into the file system's reserve; `scp -r` sends each folder
once however many symbolic links lead to it; SSH channels are capped
process-wide (part of the memory budget, docs/configuration.md, "Memory budget")."""

import os
import socket
import subprocess
import time

import paramiko
import pytest
import requests

from conftest import PASSWORD
from test_openssh import SSH_OPTIONS, drive, payload, scp
from test_rest import Api, error

MIB = 1024 * 1024


def connect(box, user="bob"):
    sock = socket.create_connection(("127.0.0.1", box.port), timeout=10)
    t = paramiko.Transport(sock)
    t.start_client(timeout=10)
    t.auth_password(user, PASSWORD)
    return t


def copy_data(s, src, read_offset, read_len, dst, write_offset):
    q = paramiko.sftp.int64
    s._request(paramiko.sftp.CMD_EXTENDED, "copy-data", src.handle, q(read_offset), q(read_len),
               dst.handle, q(write_offset))


@pytest.fixture
def small_home(box):
    """bob's home on a 64 MiB tmpfs of its own, so a copy that grows
    without end fills that and nothing else (needs root to mount)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    box.add_user("bob")
    home = box.data / "files" / "bob"
    home.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", str(home)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr}")
    try:
        yield home
    finally:
        box.stop()
        subprocess.run(["umount", "-l", str(home)], check=False)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_copy_data_onto_its_own_end_copies_the_file_once(box, small_home):
    (small_home / "f.bin").write_bytes(os.urandom(MIB))
    t = connect(box)
    s = paramiko.SFTPClient.from_transport(t)
    try:
        src = s.open("f.bin", "r")
        dst = s.open("f.bin", "r+")
        # Length 0 means "to the end of the file": the end as it was when
        # the request came, not an end that moves ahead of the copy.
        copy_data(s, src, 0, 0, dst, MIB)
        src.close()
        dst.close()
    finally:
        t.close()
    data = (small_home / "f.bin").read_bytes()
    assert len(data) == 2 * MIB
    assert data[:MIB] == data[MIB:]


def test_copy_data_is_refused_before_it_eats_the_reserve(box, small_home):
    t = connect(box)
    s = paramiko.SFTPClient.from_transport(t)
    try:
        # A sparse 1 GiB source costs no space; copying it would write 1 GiB.
        sparse = s.open("sparse.bin", "w")
        sparse.truncate(1 << 30)
        sparse.close()
        before = free_bytes(small_home)
        src = s.open("sparse.bin", "r")
        dst = s.open("big.bin", "w")
        with pytest.raises(IOError) as e:
            copy_data(s, src, 0, 1 << 30, dst, 0)
        assert "No space left on device" in str(e.value), e.value
        assert s.stat("big.bin").st_size == 0, "nothing is written"
        # Also what would merely cut into the reserve (5 % of 64 MiB).
        with pytest.raises(IOError):
            copy_data(s, src, 0, before - MIB, dst, 0)
        assert s.stat("big.bin").st_size == 0
        # What fits above the reserve is copied.
        copy_data(s, src, 0, 8 * MIB, dst, 0)
        assert s.stat("big.bin").st_size == 8 * MIB
        src.close()
        dst.close()
    finally:
        t.close()
    assert free_bytes(small_home) >= 64 * MIB // 20


RESERVE = 64 * MIB // 20


def test_uploads_stop_short_of_the_reserve(box, small_home, tmp_path):
    """SFTP, SCP (both modes) and HTTPS uploads fill the file system up to
    its reserve (5 %) and fail there with "no space", never below it."""
    big = payload(tmp_path, "big.bin", 80 * MIB)
    t = connect(box)
    s = paramiko.SFTPClient.from_transport(t)
    try:
        with pytest.raises(IOError) as e:
            s.put(str(big), "sftp.bin")
        assert "No space left on device" in str(e.value) or "Failure" in str(e.value), e.value
        assert free_bytes(small_home) >= RESERVE
        s.remove("sftp.bin")
    finally:
        t.close()
    for legacy in (True, False):
        status, _, out = scp(box, str(big), "bob@127.0.0.1:scp.bin", legacy=legacy, timeout=120)
        assert status != 0, out
        assert free_bytes(small_home) >= RESERVE
        (small_home / "scp.bin").unlink(missing_ok=True)
    api = Api(box.https_port)
    api.token = api.token_for("bob", PASSWORD)
    # The server answers 507 as soon as the reserve is reached and closes
    # the connection; a client still sending may see only the close.
    try:
        with open(big, "rb") as f:
            r = api.put("/files/content", params={"path": "/https.bin"}, data=f)
        error(r, 507)
    except requests.exceptions.ConnectionError:
        pass
    assert free_bytes(small_home) >= RESERVE
    assert not (small_home / "https.bin").exists()
    # Below the reserve's edge, uploads go through as before.
    small = payload(tmp_path, "small.bin", 8 * MIB)
    t = connect(box)
    try:
        paramiko.SFTPClient.from_transport(t).put(str(small), "small.bin")
    finally:
        t.close()
    assert (small_home / "small.bin").read_bytes() == small.read_bytes()


def lattice(home, levels):
    """lattice/d0 .. d{levels}: each folder holds two links to the next, so
    there are 2**levels paths to the last one but only levels + 1 folders."""
    top = home / "lattice"
    for n in range(levels + 1):
        (top / f"d{n}").mkdir(parents=True)
    for n in range(levels):
        os.symlink(f"../d{n + 1}", top / f"d{n}" / "a")
        os.symlink(f"../d{n + 1}", top / f"d{n}" / "b")
    (top / f"d{levels}" / "leaf.txt").write_text("leaf")


def test_scp_r_sends_each_folder_once(box, tmp_path):
    box.add_user("bob")
    home = box.data / "files" / "bob"
    home.mkdir(parents=True, exist_ok=True)
    lattice(home, 24)
    out = tmp_path / "copy"
    args = ["-O", "-r", "-P", str(box.port), *SSH_OPTIONS, "-o", "PreferredAuthentications=keyboard-interactive",
            "bob@127.0.0.1:lattice/d0", str(out)]
    started = time.monotonic()
    status, _, text = drive("scp", args, timeout=60)
    took = time.monotonic() - started
    assert took < 30, f"scp -r took {took:.0f} s"
    # Each folder went once; the second link to it is skipped, and said so.
    assert "folder already sent (symbolic link), skipped" in text, text
    assert status == 1, text
    leaves = [p for p in out.rglob("leaf.txt")]
    assert len(leaves) == 1, leaves
    assert sum(1 for p in out.rglob("*") if p.is_dir()) == 24


def test_channels_are_capped_process_wide(box_factory):
    box = box_factory("max_open_channels = 16\n")
    box.add_user("bob")
    transports, clients = [], []
    try:
        # 16 channels (2 connections of 8) are served ...
        for _ in range(2):
            t = connect(box)
            transports.append(t)
            for _ in range(8):
                clients.append(paramiko.SFTPClient.from_transport(t))
        assert all(c.listdir(".") == [] for c in clients[:3])
        # ... the 17th is refused, on a connection of its own ...
        extra = connect(box)
        transports.append(extra)
        with pytest.raises((EOFError, OSError, paramiko.SSHException)):
            paramiko.SFTPClient.from_transport(extra)
        # ... and served once one of the others ends.
        clients.pop().close()
        deadline = time.time() + 10
        while True:
            try:
                c = paramiko.SFTPClient.from_transport(extra)
                break
            except (EOFError, OSError, paramiko.SSHException):
                assert time.time() < deadline, "a freed slot was not reused"
                time.sleep(0.2)
        assert c.listdir(".") == []
    finally:
        for t in transports:
            t.close()
    assert "too many channels open in the process" in box.log_text()


def test_many_idle_sessions_are_held_by_default(box):
    """The default cap leaves room for far more idle sessions than the
    old per-process cap of 64 file channels."""
    box.add_user("bob")
    transports, clients = [], []
    try:
        for _ in range(12):
            t = connect(box)
            transports.append(t)
            for _ in range(8):
                clients.append(paramiko.SFTPClient.from_transport(t))
        assert len(clients) == 96
        assert all(c.listdir(".") == [] for c in clients[::8])
    finally:
        for t in transports:
            t.close()

