"""Floods and garbage on the SSH port: the owner still logs in, memory stays
bounded, nothing crashes."""

import os
import random
import socket
import threading
import time

import paramiko

from conftest import OWNER, PASSWORD


def vm_hwm_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def owner_login(box, source="127.0.0.1"):
    started = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", box.port), timeout=20, source_address=(source, 0))
    t = paramiko.Transport(sock)
    t.start_client(timeout=20)
    t.auth_password(OWNER, PASSWORD, fallback=False)
    ok = t.is_authenticated()
    t.close()
    return ok, time.monotonic() - started


def test_owner_logs_in_during_a_flood_of_stalled_and_failing_connections(box):
    stalled = []

    def stall_from(address, count):
        for _ in range(count):
            try:
                s = socket.create_connection(("127.0.0.1", box.port), timeout=5, source_address=(address, 0))
                stalled.append(s)  # never says a word
            except OSError:
                pass

    failures = {"attempts": 0}

    def fail_from(address):
        while failures["attempts"] < 200:
            failures["attempts"] += 1
            try:
                sock = socket.create_connection(("127.0.0.1", box.port), timeout=10, source_address=(address, 0))
                t = paramiko.Transport(sock)
                t.start_client(timeout=10)
                try:
                    t.auth_password(OWNER, "not the password", fallback=False)
                except paramiko.AuthenticationException:
                    pass
                t.close()
            except (OSError, paramiko.SSHException, EOFError):
                pass

    # 300 stalled connections from 30 addresses.
    threads = [threading.Thread(target=stall_from, args=(f"127.0.2.{i}", 10)) for i in range(1, 31)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 200 bad logins from 8 other addresses, running while the owner logs in.
    bad = [threading.Thread(target=fail_from, args=(f"127.0.3.{i}",)) for i in range(1, 9)]
    for t in bad:
        t.start()
    try:
        time.sleep(0.5)
        ok, took = owner_login(box)
        assert ok, "the owner could not log in during the flood"
        assert took < 5, f"the owner's login took {took:.1f} s during the flood"
    finally:
        for t in bad:
            t.join(timeout=60)
        for s in stalled:
            s.close()
    peak = vm_hwm_kib(box.proc.pid)
    print(f"\nflood: owner login {took:.2f} s; {failures['attempts']} bad logins; peak RSS {peak / 1024:.1f} MiB")
    assert failures["attempts"] >= 200
    assert peak < 200 * 1024, f"peak RSS {peak} KiB"
    assert box.proc.poll() is None, "the server died"


def test_garbage_truncated_packets_and_huge_lengths_never_crash_the_server(box):
    rnd = random.Random(7)
    samples = [
        b"",
        b"\x00" * 64,
        os.urandom(4096),
        b"SSH-2.0-garbage\r\n" + os.urandom(2048),
        b"SSH-2.0-x\r\n" + b"\xff\xff\xff\xff" + os.urandom(64),  # huge length
        b"SSH-2.0-x\r\n" + b"\x00\x00\x00\x05\x00",  # truncated packet
        b"SSH-2.0-x\r\n" + b"\x00\x00\x00\x0c\x0a\x14" + b"\x00" * 3,  # KEXINIT cut short
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"SSH-1.5-old\r\n",
        b"\r\n" * 5000,
        b"SSH-2.0-" + b"A" * 300 + b"\r\n",
    ]
    samples += [bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 3000))) for _ in range(40)]
    for data in samples:
        try:
            s = socket.create_connection(("127.0.0.1", box.port), timeout=5)
            s.sendall(data)
            s.settimeout(1)
            try:
                s.recv(4096)
            except OSError:
                pass
            s.close()
        except OSError:
            pass
        assert box.proc.poll() is None, f"the server died on {data[:40]!r}"
    ok, _ = owner_login(box)
    assert ok
    assert "panicked" not in box.log_text()
