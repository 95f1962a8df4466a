#!/usr/bin/env python3
"""Memory during and after a burst of logins, as someone on the LAN makes it.

Usage: benches/login_burst.py COFFER_BINARY [--runs N]

For each burst, claims a fresh box (shipped argon2id cost, 19 MiB a hash),
starts `coffer serve` on loopback, warms it up with two logins, then sends
100 REST logins at once, 10 from each of 10 source addresses (127.0.4.1-10,
inside the per-address rate limit): with wrong passwords for made-up names
on one box, with the right password on another (each burst against its
own idle size; before, the second burst ran on the first one's box). Prints, for each burst, the idle RSS,
the peak RSS during the burst (sampled every 10 ms), the RSS 5 s after it,
and the time the burst took.
"""

import argparse
import json
import pathlib
import socket
import ssl
import subprocess
import tempfile
import threading
import time

PASSWORD = "correct-horse-battery-staple-9"


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def login(port, user, password, source):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), timeout=120, source_address=(source, 0))
    s = ctx.wrap_socket(raw)
    body = json.dumps({"username": user, "password": password}).encode()
    s.sendall(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: box\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return int(data.split(b" ", 2)[1])


def burst(pid, port, right):
    statuses, peak, stop = [], [0], threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kib(pid))
            time.sleep(0.01)

    def one(i):
        user, password = ("owner", PASSWORD) if right else (f"nobody{i}", "wrong password here")
        statuses.append(login(port, user, password, f"127.0.4.{1 + i % 10}"))

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - started
    time.sleep(5)
    stop.set()
    watcher.join()
    return statuses, peak[0], rss_kib(pid), took


def measure(coffer, right):
    """One burst on a freshly claimed box of its own, so each burst is
    measured against its own idle size."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "pw").write_text(PASSWORD + "\n")
        (tmp / "coffer.toml").write_text("version = 1\n[service]\nallow_root = true\n")
        base = [coffer, "--data-dir", str(tmp / "data"), "--seal", "keyfile"]
        subprocess.run(base + ["setup", "--admin", "owner", "--password-file", str(tmp / "pw")],
                       check=True, capture_output=True)
        proc = subprocess.Popen(base + ["serve", "--config", str(tmp / "coffer.toml"),
                                        "--sftp-listen", "127.0.0.1:0", "--https-listen", "127.0.0.1:0"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            line = proc.stdout.readline().decode()
            port = int(line.split()[4].rsplit(":", 1)[1])
            login(port, "owner", PASSWORD, "127.0.0.2")
            login(port, "nobody", "wrong password here", "127.0.0.2")
            time.sleep(1)
            idle = rss_kib(proc.pid)
            statuses, peak, after, took = burst(proc.pid, port, right)
            return idle, statuses, peak, after, took
        finally:
            proc.terminate()
            proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("coffer")
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    coffer = str(pathlib.Path(args.coffer).resolve())
    for run in range(args.runs):
        for right in (False, True):
            idle, statuses, peak, after, took = measure(coffer, right)
            kinds = sorted(set(statuses))
            print(f"run {run + 1}, {'right' if right else 'wrong'} passwords: idle {idle / 1024:.1f} MiB, "
                  f"peak {peak / 1024:.1f} MiB (+{(peak - idle) / 1024:.1f}), "
                  f"5 s after {after / 1024:.1f} MiB (+{(after - idle) / 1024:.1f}), "
                  f"burst {took:.1f} s, answers {kinds}")


if __name__ == "__main__":
    main()
