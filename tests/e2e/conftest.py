"""End-to-end tests: the real `coffer` binary, driven by real clients.

Each test gets its own box: a fresh data dir, an owner claimed with
`coffer setup`, and `coffer serve` on a free loopback port. Administration
goes through the `coffer` command line, which reaches the running server over
its control socket, exactly as an operator's would.
"""

import base64
import contextlib
import hashlib
import hmac
import json
import os
import pathlib
import signal
import struct
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
COFFER = os.environ.get("COFFER_BIN", str(ROOT / "target" / "debug" / "coffer"))
PASSWORD = "correct-horse-battery-staple-9"
OWNER = "owner"


def totp(secret, step=None, offset=0):
    """RFC 6238 code (SHA1, 6 digits, 30 s) for the current step + offset."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    if step is None:
        step = int(time.time()) // 30
    digest = hmac.new(key, struct.pack(">Q", step + offset), hashlib.sha1).digest()
    o = digest[-1] & 15
    return "%06d" % ((struct.unpack(">I", digest[o:o + 4])[0] & 0x7FFFFFFF) % 1000000)


def fresh_code(secret):
    """A code for a step no earlier code of this test used: waits for the
    next step if the current one is already half gone, so a login that
    follows still lands in the ±1 window."""
    if int(time.time()) % 30 > 25:
        time.sleep(31 - int(time.time()) % 30)
    return totp(secret)


def service_section(config_extra=""):
    """CI runs as root, and a root server drops to a service account or, as
    here, is told to stay root (the privilege drop has tests of its own)."""
    if os.geteuid() == 0 and "[service]" not in config_extra:
        return "\n[service]\nallow_root = true\n"
    return ""


class Box:
    """A running server. `claimed=False` leaves the box unclaimed (no
    `coffer setup`), for the browser's setup wizard."""

    def __init__(self, tmp, config_extra="", claimed=True):
        self.tmp = pathlib.Path(tmp)
        self.data = self.tmp / "data"
        self.pw = self.tmp / "pw"
        self.pw.write_text(PASSWORD + "\n")
        self.config = self.tmp / "coffer.toml"
        self.config.write_text(
            "version = 1\n[sftp]\nfailure_delay = \"50ms\"\nrsa_host_key = false\n" + config_extra
            + service_section(config_extra)
        )
        if claimed:
            self.cli("setup", "--admin", OWNER, "--password-file", str(self.pw), "--hash-cost", "m=64,t=1,p=1")
        self.log = open(self.tmp / "serve.log", "wb")
        self.proc = subprocess.Popen(
            [COFFER, "--data-dir", str(self.data), "--seal", "keyfile", "serve",
             "--config", str(self.config), "--sftp-listen", "127.0.0.1:0", "--https-listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=self.log,
        )
        line = self.proc.stdout.readline().decode()
        assert line.startswith("ready: sftp "), f"server did not start: {line!r}, log: {self.log_text()}"
        words = line.split()
        self.port = int(words[2].rsplit(":", 1)[1])
        self.https_port = int(words[4].rsplit(":", 1)[1])

    def claim_code(self, timeout=10):
        """The claim code an unclaimed box printed in its log."""
        import re
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(r"claim code ([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})", self.log_text())
            if m:
                return m.group(1)
            time.sleep(0.1)
        raise AssertionError(f"no claim code in the log: {self.log_text()}")

    @property
    def url(self):
        return f"https://127.0.0.1:{self.https_port}"

    def log_text(self):
        return (self.tmp / "serve.log").read_text(errors="replace")

    def cli(self, *args, input=None, check=True):
        r = subprocess.run([COFFER, "--data-dir", str(self.data), "--seal", "keyfile", *args],
                           input=input, capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"coffer {' '.join(args)} failed: {r.stderr}")
        return r

    def add_user(self, name, role="user", password=PASSWORD, *extra):
        args = ["user", "add", name, "--role", role, *extra]
        if password is not None:
            args += ["--password-file", "-"]
        self.cli(*args, input=(password + "\n") if password is not None else None)

    def enrol(self, name):
        out = self.cli("mfa", "enroll", name).stdout
        secret = next(l.split()[1] for l in out.splitlines() if l.startswith("secret:"))
        codes = self.cli("mfa", "confirm", name, totp(secret, offset=-1)).stdout.splitlines()[1:]
        return secret, codes

    def token(self, name, *extra):
        return self.cli("token", "add", name, "--label", "test", *extra).stdout.strip()

    def audit(self, user=None, event=None):
        args = ["audit", "--json", "--limit", "200"]
        if user:
            args += ["--user", user]
        if event:
            args += ["--event", event]
        return json.loads(self.cli(*args).stdout)

    def rss_kib(self):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def box(tmp_path):
    b = Box(tmp_path)
    yield b
    b.stop()


@pytest.fixture
def wizard_box(tmp_path):
    """An unclaimed box, for the browser's setup wizard."""
    b = Box(tmp_path, claimed=False)
    yield b
    b.stop()


@pytest.fixture
def box_factory(tmp_path):
    boxes = []

    def make(config_extra=""):
        sub = tmp_path / f"box{len(boxes)}"
        sub.mkdir()
        b = Box(sub, config_extra)
        boxes.append(b)
        return b

    yield make
    for b in boxes:
        b.stop()


def ssh_password_login(box, user, password, source="127.0.0.1"):
    """One SSH password attempt on a new connection from `source`; whether
    it logged in."""
    import paramiko
    import socket
    sock = socket.create_connection(("127.0.0.1", box.port), timeout=20, source_address=(source, 0))
    t = paramiko.Transport(sock)
    t.start_client(timeout=20)
    try:
        t.auth_password(user, password, fallback=False)
        return t.is_authenticated()
    except paramiko.AuthenticationException:
        return False
    finally:
        t.close()


@contextlib.contextmanager
def skip_second_service_request():
    """paramiko asks for the `ssh-userauth` service again before each method;
    after a partial success the server (russh) ignores that second request and
    paramiko waits forever. Within this block paramiko sends the next
    authentication request directly, as OpenSSH's client does."""
    import paramiko
    from paramiko.auth_handler import AuthHandler

    original = AuthHandler._request_auth

    def direct(self):
        m = paramiko.Message()
        m.add_string("ssh-userauth")
        m.rewind()
        self._parse_service_accept(m)

    AuthHandler._request_auth = direct
    try:
        yield
    finally:
        AuthHandler._request_auth = original
