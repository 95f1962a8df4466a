"""The test image booted in QEMU: helpers to start it, read its serial
console, run commands on its test shell, and claim it.

A `Vm` is one boot of `image/run-test-image` with a given data disk and swtpm
state directory. Its serial console (ttyS0: kernel, server log, technician
console) and test shell (ttyS1) are Unix sockets read by background threads.
"""

import base64
import hashlib
import hmac
import json
import os
import pathlib
import re
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ANSI = re.compile(rb"\x1b\[[0-9;]*m")
READY = re.compile(r"ready: sftp (\S+)(?: https (\S+))?")
CLAIM_CODE = re.compile(r"claim code ([A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4})")
TIMINGS = {}


def record(name, value):
    """Keeps a figure (seconds, a size, a hash) for the summary at the end."""
    TIMINGS[name] = round(value, 1) if isinstance(value, float) else value


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.write_sep("-", "test image figures")
        for name, value in TIMINGS.items():
            terminalreporter.write_line(f"{name}: {value}")


def totp(secret, offset=0):
    """RFC 6238 code (SHA1, 6 digits, 30 s) for the current step + offset."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    step = int(time.time()) // 30 + offset
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    o = digest[-1] & 15
    return "%06d" % ((struct.unpack(">I", digest[o:o + 4])[0] & 0x7FFFFFFF) % 1000000)


LAST_STEP = {}


def fresh_code(secret):
    """A code for a step later than any this run used for `secret` (a code
    works once), not in the last seconds of its step."""
    while True:
        now = time.time()
        step = int(now) // 30
        if step > LAST_STEP.get(secret, -1) and now % 30 < 27:
            LAST_STEP[secret] = step
            return totp(secret)
        time.sleep(0.5)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Reader:
    """Everything a Unix socket sends, kept in memory (and a file)."""

    def __init__(self, path, log):
        self.sock = socket.socket(socket.AF_UNIX)
        deadline = time.time() + 20
        while True:
            try:
                self.sock.connect(str(path))
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        self.data = b""
        self.lock = threading.Condition()
        self.log = open(log, "ab")
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                chunk = b""
            with self.lock:
                if not chunk:
                    self.closed = True
                    self.lock.notify_all()
                    return
                self.log.write(chunk)
                self.log.flush()
                self.data += ANSI.sub(b"", chunk)
                self.lock.notify_all()

    def text(self, start=0):
        with self.lock:
            return self.data[start:].decode(errors="replace")

    def mark(self):
        with self.lock:
            return len(self.data)

    def wait(self, pattern, timeout, start=0):
        """The first match of `pattern` in what arrived since `start`."""
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        with self.lock:
            while True:
                m = rx.search(self.data[start:].decode(errors="replace"))
                if m:
                    return m
                left = deadline - time.time()
                if left <= 0 or getattr(self, "closed", False):
                    tail = self.data[-3000:].decode(errors="replace")
                    raise AssertionError(f"no {pattern!r} within {timeout} s; last output:\n{tail}")
                self.lock.wait(min(left, 0.5))

    def send(self, text):
        self.sock.sendall(text.encode())


class Vm:
    """One boot of the test image."""

    def __init__(self, workdir, data, tpm_state, name):
        # Unix socket paths must stay short: a directory of their own in /tmp.
        self.sockets = pathlib.Path(tempfile.mkdtemp(prefix="coffer-vm-"))
        self.workdir = pathlib.Path(workdir)
        self.sftp_port = free_port()
        self.https_port = free_port()
        self.started = time.time()
        self.console_log = self.workdir / f"{name}-serial.log"
        self.proc = subprocess.Popen(
            [
                str(ROOT / "image" / "run-test-image"),
                "--image", str(image_dir()),
                "--data", str(data),
                "--tpm-state", str(tpm_state),
                "--sftp-port", str(self.sftp_port),
                "--https-port", str(self.https_port),
                "--serial", str(self.sockets / "serial"),
                "--shell", str(self.sockets / "shell"),
            ],
            stdout=open(self.workdir / f"{name}-qemu.log", "ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.serial = Reader(self.sockets / "serial", self.console_log)
        self.shell = Reader(self.sockets / "shell", self.workdir / f"{name}-shell.log")
        self.calls = 0
        self.https = None

    def wait_ready(self, timeout=120):
        """Waits for the server's ready line; returns seconds since start."""
        m = self.serial.wait(READY.pattern, timeout)
        self.https = m.group(2)
        return time.time() - self.started

    def sh(self, command, timeout=60, check=True):
        """Runs a command on the guest's test shell: (status, output)."""
        if self.calls == 0:
            self.shell.wait(r"#|\$", 30)  # the shell's first prompt
            self.shell.send("stty -echo; PS1=''\n")
            time.sleep(0.5)
        self.calls += 1
        n = self.calls
        start = self.shell.mark()
        self.shell.send(f'{command}\necho "@@{n}:$?@@"\n')
        m = self.shell.wait(rf"@@{n}:(\d+)@@", timeout, start)
        output = self.shell.text(start)
        output = output[: output.find(f"@@{n}:")]
        status = int(m.group(1))
        if check and status != 0:
            raise AssertionError(f"guest command failed ({status}): {command}\n{output}")
        return status, output

    def power_off(self, timeout=60):
        """A clean shutdown (the server gets SIGTERM, the disk is unmounted)."""
        try:
            self.shell.send("poweroff\n")
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the guest did not power off")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def image_dir():
    return pathlib.Path(os.environ.get("COFFER_TEST_IMAGE", ROOT / "target" / "test-image"))


def https_json(port, method, path, body=None, token=None):
    """A REST call over the box's self-signed TLS: (status, JSON)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"https://127.0.0.1:{port}{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@pytest.fixture(scope="session")
def vm_dir():
    d = ROOT / "target" / "test-image-run"
    d.mkdir(parents=True, exist_ok=True)
    return d
