#!/usr/bin/env python3
"""Coffer side by side with OpenSSH's sshd and ProFTPD's mod_sftp.

Started by `benches/compare` (which installs the packages and builds Coffer);
run `benches/compare --help` for the options. Every server runs on a free
loopback port with a private configuration in a temporary folder on
/dev/shm, serves the same files (tmpfs) as the same system account, offers
the same ed25519 host key, and is driven by the same clients: OpenSSH's
`sftp` for transfers and logins, paramiko for held sessions.

What is measured, each figure the median (min-max) of the repeats:
throughput of one upload and one download per cipher, 8 parallel sessions,
many small files, login latency per method, server memory (idle, per held
session, peak during transfers), the connection rate, binary sizes and the
time from start to the first SSH banner. Server CPU time is read from
/proc (utime+stime of every process of the server, including the reaped
children's), so it does not depend on what else the machine is doing.
"""

import argparse
import base64
import filecmp
import hashlib
import hmac
import os
import platform
import pwd
import re
import resource
import secrets
import shutil
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
USER = "cofferbench"
PASSWORD = "correct-horse-battery-staple-9"
KEX = "curve25519-sha256"
AES = "aes128-gcm@openssh.com"
CHACHA = "chacha20-poly1305@openssh.com"
MAC = "hmac-sha2-256-etm@openssh.com"
MIB = 1 << 20
GIB = 1 << 30
TICK = os.sysconf("SC_CLK_TCK")
SERVERS = ("coffer", "openssh", "proftpd")
LABELS = {"coffer": "Coffer", "openssh": "OpenSSH", "proftpd": "ProFTPD"}
# Seconds between the end of one timed login and the start of the next.
LOGIN_PAUSE = 0.5


def log(*args):
    print("..", *args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait4_timeout(proc, timeout):
    """Waits for a Popen child with os.wait4; returns (status, rusage). Past
    the timeout its process group is killed and TimeoutExpired raised."""
    expired = threading.Event()

    def kill():
        expired.set()
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass
    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if expired.is_set():
        raise subprocess.TimeoutExpired(proc.args, timeout)
    return status, usage


def loadavg():
    return Path("/proc/loadavg").read_text().split()[:3]


# --- /proc readings over a process tree ------------------------------------


def _stat(pid):
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def tree(root):
    """The pids of `root` and all its descendants."""
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(entry)
            if fields:
                parent[int(entry)] = int(fields[1])
    pids = {root} if root in parent else set()
    grew = True
    while grew:
        grew = False
        for pid, ppid in parent.items():
            if ppid in pids and pid not in pids:
                pids.add(pid)
                grew = True
    return pids


class CpuGroup:
    """A control group of its own for one server, so that its CPU time counts
    every process it ever forked (OpenSSH's per-connection processes are not
    all reaped by their parents, so /proc's cutime misses them). cgroup v2
    (`cpu.stat`) or v1 (`cpuacct`); without either, the /proc tree is read."""

    def __init__(self, name):
        self.path = self.usage_file = None
        for base, usage in (("/sys/fs/cgroup", "cpu.stat"),
                            ("/sys/fs/cgroup/cpuacct", "cpuacct.usage")):
            if Path(base, "cgroup.procs").exists():
                path = Path(base, f"{name}-{os.getpid()}")
                try:
                    path.mkdir(exist_ok=True)
                except OSError:
                    continue
                self.path, self.usage_file = path, path / usage
                break

    def enter(self):
        """Run in the child before exec: moves it into the group."""
        if self.path:
            (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def seconds(self):
        text = self.usage_file.read_text()
        if self.usage_file.name == "cpu.stat":
            return int(text.split("usage_usec")[1].split()[0]) / 1e6
        return int(text) / 1e9

    def remove(self):
        """Removes the group once its last process has gone (up to 5 s)."""
        for _ in range(250):
            if not self.path:
                return
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.02)


def cpu_seconds(root, group=None):
    """CPU time of a server: its control group, else its /proc tree (live
    processes plus the children they reaped)."""
    if group and group.path:
        return group.seconds()
    total = 0
    for pid in tree(root):
        fields = _stat(pid)
        if fields:
            total += sum(int(x) for x in fields[11:15])
    return total / TICK


def rss_kib(root):
    """VmRSS summed over every process of the tree, in KiB."""
    total = 0
    for pid in tree(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def pss_kib(root):
    """Pss (shared pages divided among their users) summed over the tree: a
    fairer view of servers that fork per connection."""
    total = 0
    for pid in tree(root):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


class PeakRss:
    """Samples a tree's summed RSS every 50 ms while in a `with` block."""

    def __init__(self, root):
        self.root, self.peak, self._stop = root, 0, threading.Event()

    def __enter__(self):
        def run():
            while not self._stop.is_set():
                self.peak = max(self.peak, rss_kib(self.root))
                self._stop.wait(0.05)
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# --- TOTP (RFC 6238, SHA1, 6 digits, 30 s) ---------------------------------


def totp(secret_b32, step=None):
    key = base64.b32decode(secret_b32.upper() + "=" * (-len(secret_b32) % 8))
    step = int(time.time()) // 30 if step is None else step
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 15
    value = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def fresh_step(margin=3):
    """Waits until the current 30 s step has `margin` seconds left."""
    left = 30 - time.time() % 30
    if left < margin:
        time.sleep(left + 0.05)


# --- the servers -----------------------------------------------------------


def wait_banner(port, deadline):
    """Seconds until the port answers with an SSH identification line."""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(64).startswith(b"SSH-"):
                    return True
        except OSError:
            time.sleep(0.002)
    return False


class Server:
    name = ""
    methods = ()

    def __init__(self, bench, variant="plain"):
        self.bench, self.variant = bench, variant
        self.proc = None
        self.port = free_port()

    @property
    def pid(self):
        return self.proc.pid

    def command(self):
        raise NotImplementedError

    def start(self):
        """Starts the server; returns seconds to the first SSH banner."""
        errlog = open(self.bench.work / f"{self.name}-{self.variant}.log", "ab")
        t0 = time.monotonic()
        self.group = CpuGroup(f"coffer-bench-{self.name}")
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE,
                                     stderr=errlog, stdin=subprocess.DEVNULL,
                                     preexec_fn=self.group.enter)
        errlog.close()
        self.ready_line = None
        if self.name == "coffer":
            line = self.proc.stdout.readline().decode()
            if not line.startswith("ready:"):
                raise RuntimeError(f"coffer did not start: {line!r}; see {errlog.name}")
            self.ready_line = time.monotonic() - t0
        if not wait_banner(self.port, time.monotonic() + 20):
            self.stop()
            raise RuntimeError(f"{self.name} ({self.variant}) did not answer; see {errlog.name}")
        return time.monotonic() - t0

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # sshd/proftpd children that outlived their parent
        for pid in tree(self.proc.pid) if self.proc else ():
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        self.proc = None
        self.group.remove()

    def cpu(self):
        return cpu_seconds(self.pid, self.group)

    def settle(self, timeout=5.0):
        """Waits until the server has no per-connection processes left."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(tree(self.pid)) > 1:
            time.sleep(0.02)

    def home(self):
        return self.bench.home


class Coffer(Server):
    name = "coffer"
    methods = ("password", "password+totp", "key", "key+totp", "token")

    def command(self):
        b = self.bench
        cfg = b.work / f"coffer-{self.port}.toml"
        cfg.write_text(f"""version = 1
files_root = "{b.coffer_files}"
log_level = "warn"
log_target = "stderr"
[sftp]
listen = "127.0.0.1:{self.port}"
max_connections = {max(b.args.sessions) + 100}
max_open_channels = {max(b.args.sessions) + 100}
rsa_host_key = false
[service]
user = "{USER}"
""")
        return [str(b.coffer), "--data-dir", str(b.coffer_data), "--seal", "keyfile",
                "serve", "--config", str(cfg), "--https-listen", "127.0.0.1:0"]

    def home(self):
        return self.bench.coffer_files / USER


class OpenSsh(Server):
    """A private sshd on its own port and configuration, as root.

    Variants: `plain` (publickey and password against /etc/shadow, no PAM),
    `pwtotp` and `keytotp` (PAM with pam_google_authenticator; the binary is
    started through a symlink so that PAM reads /etc/pam.d/sshd-pwtotp or
    /etc/pam.d/sshd-keytotp, written for the run and removed after)."""

    name = "openssh"
    methods = ("password", "password+totp", "key", "key+totp")

    def command(self):
        b = self.bench
        lines = [
            f"ListenAddress 127.0.0.1:{self.port}",
            f"HostKey {b.host_key}",
            f"AuthorizedKeysFile {b.authorized_keys}",
            f"AllowUsers {USER}",
            "StrictModes no", "PidFile none", "UseDNS no", "PrintMotd no",
            "PermitRootLogin no", "LogLevel ERROR",
            f"Ciphers {AES},{CHACHA},aes128-ctr", f"MACs {MAC},hmac-sha2-256",
            f"KexAlgorithms {KEX},curve25519-sha256@libssh.org",
            "HostKeyAlgorithms ssh-ed25519",
            "MaxStartups 100:30:200", "LoginGraceTime 30",
            "Subsystem sftp internal-sftp",
        ]
        if self.variant == "plain":
            lines += ["UsePAM no", "PasswordAuthentication yes",
                      "KbdInteractiveAuthentication no"]
            binary = "/usr/sbin/sshd"
        else:
            lines += ["UsePAM yes", "PasswordAuthentication no",
                      "KbdInteractiveAuthentication yes",
                      "AuthenticationMethods " + ("keyboard-interactive" if self.variant == "pwtotp"
                                                  else "publickey,keyboard-interactive")]
            binary = str(b.work / "bin" / f"sshd-{self.variant}")
        cfg = b.work / f"sshd-{self.variant}-{self.port}.conf"
        cfg.write_text("\n".join(lines) + "\n")
        return [binary, "-D", "-e", "-f", str(cfg)]


class ProFtpd(Server):
    """ProFTPD with mod_sftp; the TOTP variants add mod_sql, mod_sql_sqlite
    and mod_auth_otp (loaded after mod_sftp and mod_sql)."""

    name = "proftpd"
    methods = ("password", "password+totp", "key", "key+totp")

    def command(self):
        b = self.bench
        d = b.work / f"proftpd-{self.variant}"
        d.mkdir(exist_ok=True)
        auth_methods = {"plain": "publickey password",
                        "pwtotp": "password+keyboard-interactive",
                        "keytotp": "publickey+keyboard-interactive"}[self.variant]
        modules = ["mod_sftp.c"]
        # mod_auth_otp compares codes through the auth modules' "check"
        # handlers, so it must be in AuthOrder.
        auth_order = "mod_auth_unix.c"
        otp = ""
        if self.variant != "plain":
            modules += ["mod_sql.c", "mod_sql_sqlite.c", "mod_auth_otp.c"]
            auth_order = "mod_auth_otp.c mod_auth_unix.c"
            otp = f"""SQLEngine log
SQLBackend sqlite3
SQLConnectInfo {b.otp_db}
SQLAuthenticate off
SQLNamedQuery get-user-totp SELECT "secret, counter FROM auth_otp WHERE user = '%{{0}}'"
SQLNamedQuery update-user-totp UPDATE "counter = %{{1}} WHERE user = '%{{0}}'" auth_otp
AuthOTPEngine on
AuthOTPAlgorithm totp
AuthOTPTable sql:/get-user-totp/update-user-totp
AuthOTPLog {d}/auth_otp.log
"""
        cfg = d / "proftpd.conf"
        cfg.write_text(f"""ServerType standalone
ServerName "bench"
DefaultServer on
Port {self.port}
DefaultAddress 127.0.0.1
UseIPv6 off
User nobody
Group nogroup
PidFile {d}/proftpd.pid
ScoreboardFile {d}/proftpd.scoreboard
DelayTable none
WtmpLog off
TransferLog none
SystemLog {d}/system.log
UseReverseDNS off
MaxInstances 4000
TimeoutIdle 900
TimeoutLogin 30
RequireValidShell off
DefaultRoot ~
AuthOrder {auth_order}
AllowOverwrite on
Umask 022
ModulePath /usr/lib/proftpd
{chr(10).join("LoadModule " + m for m in modules)}
SFTPEngine on
SFTPHostKey {b.host_key}
SFTPAuthorizedUserKeys file:{b.authorized_rfc4716}
SFTPAuthMethods {auth_methods}
SFTPCiphers {AES} aes128-ctr
SFTPDigests {MAC} hmac-sha2-256
SFTPKeyExchanges {KEX} curve25519-sha256@libssh.org
SFTPCompression off
{otp}""")
        return ["/usr/sbin/proftpd", "-n", "-q", "-c", str(cfg)]


# --- the benchmark ---------------------------------------------------------


class Bench:
    def __init__(self, args):
        self.args = args
        self.coffer = Path(args.coffer).resolve()
        self.work = Path(tempfile.mkdtemp(prefix="coffer-bench.", dir="/dev/shm"))
        self.work.chmod(0o755)
        self.home = self.work / "home"
        self.coffer_data = self.work / "coffer"
        self.coffer_files = self.work / "coffer-files"
        self.rows = []
        self.loads = []
        self.commands = []
        self.notes = []
        self.pam_files = []
        self.created_user = False
        self.running = []

    # -- setup --

    def run(self, cmd, **kw):
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)

    def setup(self):
        w = self.work
        (w / "bin").mkdir()
        (w / "dl").mkdir()
        self.home.mkdir()
        # The same system account for every server.
        try:
            pwd.getpwnam(USER)
        except KeyError:
            self.run(["useradd", "--system", "--no-create-home", "--home-dir", str(self.home),
                      "--shell", "/bin/sh", USER])
            self.created_user = True
        self.run(["usermod", "--home", str(self.home), USER])
        self.run(["chpasswd"], input=f"{USER}:{PASSWORD}\n")
        shutil.chown(self.home, USER, USER)
        # Keys: one ed25519 host key for all, one client key.
        self.host_key = w / "host_ed25519"
        self.client_key = w / "client_ed25519"
        for k in (self.host_key, self.client_key):
            self.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(k)])
        self.authorized_keys = w / "authorized_keys"
        shutil.copy(f"{self.client_key}.pub", self.authorized_keys)
        self.authorized_rfc4716 = w / "authorized_keys.rfc4716"
        self.authorized_rfc4716.write_text(
            self.run(["ssh-keygen", "-e", "-f", f"{self.client_key}.pub"]).stdout)
        for f in (self.authorized_keys, self.authorized_rfc4716):
            f.chmod(0o644)
        # TOTP for the peers: one seed for the account (pam_google_authenticator
        # file; mod_auth_otp table). Reuse of a code is not refused by these
        # configurations; Coffer always refuses it, so it gets one enrolled
        # account per login.
        self.seed = base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")
        ga = w / "ga"
        ga.mkdir()
        ga.chmod(0o755)
        (ga / USER).write_text(f'{self.seed}\n" TOTP_AUTH\n" WINDOW_SIZE 3\n')
        (ga / USER).chmod(0o600)
        shutil.chown(ga / USER, USER, USER)
        self.otp_db = w / "auth_otp.sqlite"
        db = sqlite3.connect(self.otp_db)
        db.execute("CREATE TABLE auth_otp (user TEXT PRIMARY KEY, secret TEXT, counter INTEGER)")
        db.execute("INSERT INTO auth_otp VALUES (?, ?, 0)", (USER, self.seed))
        db.commit()
        db.close()
        self.otp_db.chmod(0o644)
        # Private PAM stacks for the TOTP variants of sshd.
        ga_line = f"auth required pam_google_authenticator.so secret={ga}/${{USER}}"
        stacks = {
            "pwtotp": ["auth required pam_unix.so", ga_line],
            "keytotp": [ga_line],
        }
        for variant, auth in stacks.items():
            pam = Path(f"/etc/pam.d/sshd-{variant}")
            if pam.exists():
                raise SystemExit(f"{pam} exists already; remove it (a leftover of an earlier run?)")
            self.pam_files.append(pam)
            pam.write_text("# Written by Coffer's benches/compare for one run; removed after.\n"
                           + "\n".join(auth + ["account required pam_unix.so",
                                               "session required pam_permit.so"]) + "\n")
            (w / "bin" / f"sshd-{variant}").symlink_to("/usr/sbin/sshd")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.setup_coffer()
        # Payloads.
        self.askpass = w / "askpass"
        self.askpass.write_text("#!/bin/sh\ncase \"$1\" in\n"
                                "  *[Cc]ode*|*[Vv]erification*|*[Oo]ne-[Tt]ime*|*OTP*) "
                                "printf '%s\\n' \"$BENCH_CODE\" ;;\n"
                                "  *) printf '%s\\n' \"$BENCH_PASSWORD\" ;;\nesac\n")
        self.askpass.chmod(0o755)
        log(f"writing payloads in {w}")
        self.payload = w / "payload.bin"
        self.write_random(self.payload, self.args.size_mib * MIB)
        self.part = w / "part.bin"
        self.write_random(self.part, max(1, self.args.size_mib // self.args.parallel) * MIB)
        self.small = w / "small"
        self.small.mkdir()
        for i in range(self.args.files):
            (self.small / f"f{i:05d}").write_bytes(os.urandom(4096))

    @staticmethod
    def write_random(path, size):
        with open(path, "wb") as f:
            chunk = os.urandom(MIB)
            for i in range(size // MIB):
                # cheap but not repeating: the first 16 bytes differ per MiB
                f.write(i.to_bytes(16, "little") + chunk[16:])

    def coffer_cli(self, *args, input=None):
        cmd = [str(self.coffer), "--data-dir", str(self.coffer_data), "--seal", "keyfile", *args]
        return self.run(cmd, input=input).stdout

    def setup_coffer(self):
        pw = self.work / "pw"
        pw.write_text(PASSWORD + "\n")
        pub = Path(f"{self.client_key}.pub").read_text().strip()
        self.coffer_cli("setup", "--admin", "owner", "--password-file", str(pw))
        self.coffer_cli("user", "add", USER, "--password-file", str(pw), "--key", pub)
        self.token = self.coffer_cli("token", "add", USER, "--label", "bench").strip()
        self.coffer_cli("policy", "set", "mfa.ssh_key_is_enough=false")
        # One enrolled account per TOTP login: Coffer never accepts a code twice.
        self.totp_accounts = []
        n = 2 * (self.args.repeats + 1) + self.args.rate_workers
        fresh_step(5)
        step = int(time.time()) // 30
        for i in range(n):
            name = f"benchtotp{i}"
            self.coffer_cli("user", "add", name, "--password-file", str(pw), "--key", pub)
            out = self.coffer_cli("mfa", "enroll", name)
            seed = re.search(r"^secret: (\S+)", out, re.M).group(1)
            # Confirmed with the previous step's code (±1 step is accepted),
            # so the current step's code logs in once.
            self.coffer_cli("mfa", "confirm", name, totp(seed, step - 1))
            self.totp_accounts.append((name, seed))
        self.coffer_files.mkdir(exist_ok=True)

    def cleanup(self):
        for s in self.running:
            try:
                s.stop()
            except Exception:
                pass
        for pam in self.pam_files:
            pam.unlink(missing_ok=True)
        if self.created_user:
            subprocess.run(["userdel", USER], capture_output=True)
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)

    # -- clients --

    def sftp(self, server, batch, method="key", user=USER, cipher=AES, code=None,
             password=PASSWORD, check=True, timeout=3600):
        """Runs OpenSSH's sftp with a batch; returns wall seconds."""
        timed = self.sftp_timed(server, batch, method, user, cipher, code, password, check,
                                timeout)
        return timed[0] if timed else None

    def sftp_timed(self, server, batch, method="key", user=USER, cipher=AES, code=None,
                   password=PASSWORD, check=True, timeout=3600):
        """Runs OpenSSH's sftp with a batch; returns (wall seconds, client CPU
        seconds), the CPU time of sftp and its ssh, or None if it failed."""
        cmd = ["sftp", "-F", "/dev/null", "-q", "-P", str(server.port), "-c", cipher,
               "-o", f"MACs={MAC}", "-o", f"KexAlgorithms={KEX}",
               "-o", "HostKeyAlgorithms=ssh-ed25519", "-o", "StrictHostKeyChecking=no",
               "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
               "-o", "IdentitiesOnly=yes", "-o", "NumberOfPasswordPrompts=1"]
        # Password + code: OpenSSH (PAM) and Coffer ask for both by
        # keyboard-interactive; ProFTPD asks for the password by the password
        # method, then for the code by keyboard-interactive.
        prefs = {"key": "publickey", "password": "password", "token": "password",
                 "password+totp": "keyboard-interactive,password",
                 "key+totp": "publickey,keyboard-interactive"}[method]
        cmd += ["-o", f"PreferredAuthentications={prefs}"]
        if "key" in method:
            cmd += ["-i", str(self.client_key)]
        else:
            cmd += ["-o", "PubkeyAuthentication=no"]
        if method != "key":
            cmd += ["-o", "BatchMode=no"]
        batch_file = self.work / f"batch-{threading.get_ident()}"
        batch_file.write_text("\n".join(batch) + "\n")
        cmd += ["-b", str(batch_file), f"{user}@127.0.0.1"]
        env = dict(os.environ, SSH_ASKPASS=str(self.askpass), SSH_ASKPASS_REQUIRE="force",
                   DISPLAY=":0", BENCH_PASSWORD=password, BENCH_CODE=code or "")
        # Each distinct client command once (servers, methods, ciphers).
        line = " ".join(cmd)
        if line not in self.commands and len(self.commands) < 40:
            self.commands.append(line)
        t0 = time.monotonic()
        with tempfile.TemporaryFile() as err:
            p = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
            # wait4: this client's own CPU time (sftp and the ssh it reaped),
            # separate from other clients running in parallel.
            status, usage = wait4_timeout(p, timeout)
            dt = time.monotonic() - t0
            err.seek(0)
            stderr = err.read()
        code_ = os.waitstatus_to_exitcode(status)
        if check and code_ != 0:
            raise RuntimeError(f"sftp to {server.name} ({method}) failed: "
                               f"{stderr.decode(errors='replace').strip()[:300]}")
        return (dt, usage.ru_utime + usage.ru_stime) if code_ == 0 else None

    def clean_home(self, server):
        home = server.home()
        if home.exists():
            for p in home.iterdir():
                if p.name.startswith("."):
                    continue
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        for p in (self.work / "dl").iterdir():
            shutil.rmtree(p) if p.is_dir() else p.unlink()

    # -- results --

    def add(self, section, metric, unit, better, values, target=None):
        """values: {server: [samples]} (missing server: not measured)."""
        self.rows.append(dict(section=section, metric=metric, unit=unit, better=better,
                              values=values, target=target))

    def server(self, name, variant="plain"):
        cls = {"coffer": Coffer, "openssh": OpenSsh, "proftpd": ProFtpd}[name]
        return cls(self, variant)

    def started(self, name, variant="plain"):
        s = self.server(name, variant)
        s.start()
        self.running.append(s)
        return s

    def stopped(self, s):
        s.stop()
        self.running.remove(s)

    def each(self, section, fn):
        """Runs fn(server) for each server with load averages around it."""
        for name in self.args.servers:
            before = loadavg()
            t0 = time.monotonic()
            log(f"{section}: {name}")
            try:
                fn(name)
            except Exception as e:  # a peer that cannot do something is reported, not fatal
                self.notes.append(f"{section} / {LABELS[name]}: {e}")
                log(f"  failed: {e}")
            self.loads.append((section, LABELS[name], " ".join(before), " ".join(loadavg()),
                               time.monotonic() - t0))

    # -- sections --

    def throughput(self):
        a, size = self.args, self.args.size_mib * MIB
        results = {}

        def one(name):
            s = self.started(name)
            try:
                for cipher in (AES, CHACHA):
                    if name == "proftpd" and cipher == CHACHA:
                        continue  # mod_sftp 1.3.8 has no chacha20-poly1305
                    for direction in ("up", "down"):
                        results.setdefault((cipher, direction), {}).setdefault(
                            name, ([], [], [], []))
                    self.sftp(s, ["put %s warm.bin" % self.part, "rm warm.bin"], cipher=cipher)
                    for rep in range(a.repeats):
                        self.clean_home(s)
                        for direction in ("up", "down"):
                            batch = ([f"put {self.payload} up.bin"] if direction == "up"
                                     else [f"get up.bin {self.work}/dl/down.bin"])
                            s.settle()
                            c0 = s.cpu()
                            with PeakRss(s.pid) as peak:
                                dt, client = self.sftp_timed(s, batch, cipher=cipher)
                            s.settle()
                            cpu = s.cpu() - c0
                            mbps, cpg, rss, ccpg = results[(cipher, direction)][name]
                            mbps.append(size / dt / 1e6)
                            cpg.append(cpu / (size / GIB))
                            rss.append(peak.peak / 1024)
                            ccpg.append(client / (size / GIB))
                        if rep == 0 and not filecmp.cmp(self.payload, self.work / "dl/down.bin",
                                                        shallow=False):
                            raise RuntimeError(f"{name}: the downloaded file differs")
                self.clean_home(s)
            finally:
                self.stopped(s)

        self.each("throughput", one)
        for (cipher, direction), per in results.items():
            short = cipher.split("@")[0]
            self.add("throughput", f"{a.size_mib} MiB {direction}, {short}", "MB/s", "higher",
                     {k: v[0] for k, v in per.items()}, "≥1.5× OpenSSH")
            self.add("throughput", f"server CPU per GiB, {direction}, {short}", "s", "lower",
                     {k: v[1] for k, v in per.items()}, "≤0.5× OpenSSH")
            self.add("throughput", f"client CPU per GiB (sftp + ssh), {direction}, {short}",
                     "s", "lower", {k: v[3] for k, v in per.items()})
            self.add("memory", f"peak RSS during {direction}, {short}", "MiB", "lower",
                     {k: v[2] for k, v in per.items()})

    def parallel(self):
        a = self.args
        part = self.part.stat().st_size
        total = part * a.parallel
        results = {}

        def one(name):
            s = self.started(name)
            try:
                for rep in range(a.repeats):
                    self.clean_home(s)
                    for direction in ("up", "down"):
                        batches = [[f"put {self.part} p{i}.bin"] if direction == "up"
                                   else [f"get p{i}.bin {self.work}/dl/p{i}.bin"]
                                   for i in range(a.parallel)]
                        s.settle()
                        c0 = s.cpu()
                        errors, clients = [], []

                        def go(b):
                            try:
                                clients.append(self.sftp_timed(s, b)[1])
                            except Exception as e:
                                errors.append(e)
                        threads = [threading.Thread(target=go, args=(b,)) for b in batches]
                        t0 = time.monotonic()
                        with PeakRss(s.pid) as peak:
                            for t in threads:
                                t.start()
                            for t in threads:
                                t.join()
                        dt = time.monotonic() - t0
                        if errors:
                            raise errors[0]
                        s.settle()
                        cpu = s.cpu() - c0
                        r = results.setdefault(direction, {}).setdefault(name, ([], [], [], []))
                        r[0].append(total / dt / 1e6)
                        r[1].append(cpu / (total / GIB))
                        r[2].append(peak.peak / 1024)
                        r[3].append(sum(clients) / (total / GIB))
                self.clean_home(s)
            finally:
                self.stopped(s)

        self.each("parallel", one)
        for direction, per in results.items():
            label = f"{a.parallel} sessions × {part // MIB} MiB {direction}, aes128-gcm"
            self.add("throughput", label, "MB/s", "higher", {k: v[0] for k, v in per.items()},
                     "≥1.5× OpenSSH")
            self.add("throughput", f"server CPU per GiB, {a.parallel} sessions {direction}", "s",
                     "lower", {k: v[1] for k, v in per.items()}, "≤0.5× OpenSSH")
            self.add("throughput", f"client CPU per GiB, {a.parallel} sessions {direction}", "s",
                     "lower", {k: v[3] for k, v in per.items()})
            self.add("memory", f"peak RSS during {a.parallel} sessions {direction}", "MiB",
                     "lower", {k: v[2] for k, v in per.items()})

    def small_files(self):
        a = self.args
        results = {}

        def one(name):
            s = self.started(name)
            try:
                for rep in range(a.repeats):
                    self.clean_home(s)
                    for direction in ("up", "down"):
                        batch = (["mkdir small", f"put -r {self.small} ."] if direction == "up"
                                 else [f"get -r small {self.work}/dl/small"])
                        s.settle()
                        c0 = s.cpu()
                        dt = self.sftp(s, batch)
                        s.settle()
                        cpu = s.cpu() - c0
                        r = results.setdefault(direction, {}).setdefault(name, ([], []))
                        r[0].append(a.files / dt)
                        r[1].append(cpu * 1000 / a.files)
                    got = len(list((self.work / "dl/small").iterdir()))
                    if got != a.files:
                        raise RuntimeError(f"{name}: {got} of {a.files} small files came back")
                self.clean_home(s)
            finally:
                self.stopped(s)

        self.each("small files", one)
        for direction, per in results.items():
            self.add("small files", f"{a.files} × 4 KiB {direction}", "files/s", "higher",
                     {k: v[0] for k, v in per.items()}, "≥1.0× OpenSSH")
            self.add("small files", f"server CPU per file, {direction}", "ms", "lower",
                     {k: v[1] for k, v in per.items()})

    def logins(self):
        a = self.args
        results = {}
        variants = {"password": "plain", "key": "plain", "token": "plain",
                    "password+totp": "pwtotp", "key+totp": "keytotp"}

        def one(name):
            cls = {"coffer": Coffer, "openssh": OpenSsh, "proftpd": ProFtpd}[name]
            totp_accounts = iter(self.totp_accounts) if name == "coffer" else None
            for method in ("password", "password+totp", "key", "key+totp", "token"):
                if method not in cls.methods:
                    continue
                variant = "plain" if name == "coffer" else variants[method]
                try:
                    s = self.started(name, variant)
                except RuntimeError as e:
                    self.notes.append(f"logins / {LABELS[name]} / {method}: {e}")
                    continue
                try:
                    samples = results.setdefault(method, {}).setdefault(name, [])
                    for rep in range(a.repeats + 1):  # the first one warms up
                        user, password, code = USER, PASSWORD, None
                        if method == "token":
                            password = self.token
                        if "totp" in method:
                            fresh_step()
                            if name == "coffer":
                                user, seed = next(totp_accounts)
                            else:
                                seed = self.seed
                            code = totp(seed)
                        s.settle()
                        # A login alone, not one right after another: after a
                        # session ends, ProFTPD's daemon sleeps twice 200 ms
                        # before it accepts again (the connection rate below
                        # measures logins back to back).
                        time.sleep(LOGIN_PAUSE)
                        try:
                            dt = self.sftp(s, ["bye"], method=method, user=user, code=code,
                                           password=password, timeout=60)
                        except RuntimeError as e:  # one method failing spares the others
                            self.notes.append(f"logins / {LABELS[name]} / {method}: {e}")
                            break
                        if rep:
                            samples.append(dt * 1000)
                finally:
                    self.stopped(s)

        self.each("logins", one)
        for method, per in results.items():
            target = "≤ OpenSSH" if "totp" in method else None
            self.add("logins", f"login + sftp start + exit: {method}", "ms", "lower", per, target)

    def memory(self):
        a = self.args
        idle, per_session, marginal, held, setup_s, pss = {}, {}, {}, {}, {}, {}
        import paramiko
        key = paramiko.Ed25519Key.from_private_key_file(str(self.client_key))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

        def one(name):
            for n in a.sessions:
                s = self.started(name)
                sessions = []
                try:
                    time.sleep(1)
                    base = rss_kib(s.pid)
                    pss_base = pss_kib(s.pid)
                    idle.setdefault(name, []).append(base / 1024)
                    t0 = time.monotonic()
                    one_held, pause = None, 0.0
                    for i in range(n):
                        if i == 1:
                            # The first session also brings in code and
                            # allocator state that every later one shares.
                            p0 = time.monotonic()
                            time.sleep(1)
                            one_held = rss_kib(s.pid)
                            pause = time.monotonic() - p0
                        t = paramiko.Transport(("127.0.0.1", s.port))
                        # paramiko has no AES-GCM: aes128-ctr + hmac-sha2-256 here
                        t.get_security_options().kex = ("curve25519-sha256@libssh.org",)
                        t.get_security_options().ciphers = ("aes128-ctr",)
                        t.get_security_options().digests = ("hmac-sha2-256",)
                        t.start_client(timeout=30)
                        t.auth_publickey(USER, key)
                        sessions.append((t, paramiko.SFTPClient.from_transport(t)))
                    setup_s.setdefault(n, {}).setdefault(name, []).append(
                        time.monotonic() - t0 - pause)
                    time.sleep(1)
                    for t, c in sessions:  # every session still answers
                        c.stat(".")
                    total = rss_kib(s.pid)
                    pss_n = pss_kib(s.pid)
                    pss.setdefault(n, {}).setdefault(name, []).append((pss_n - pss_base) / n)
                    held.setdefault(n, {}).setdefault(name, []).append(total / 1024)
                    per_session.setdefault(n, {}).setdefault(name, []).append((total - base) / n)
                    if one_held is not None:
                        marginal.setdefault(n, {}).setdefault(name, []).append(
                            (total - one_held) / (n - 1))
                finally:
                    for t, c in sessions:
                        try:
                            c.close()
                            t.close()
                        except Exception:
                            pass
                    self.stopped(s)

        self.each("memory", one)
        self.add("memory", "RSS idle (after start)", "MiB", "lower", idle, "≤ 8 MiB")
        for n in a.sessions:
            self.add("memory", f"RSS with {n} idle SFTP sessions", "MiB", "lower", held.get(n, {}),
                     "held without error" if n >= 1000 else None)
            self.add("memory", f"RSS per session ({n} held, over idle)", "KiB", "lower",
                     per_session.get(n, {}))
            self.add("memory", f"RSS per additional session ({n} held, over 1 held)", "KiB",
                     "lower", marginal.get(n, {}), "≤ 64 KiB")
            self.add("memory", f"PSS per session ({n} held)", "KiB", "lower", pss.get(n, {}))
            self.add("memory", f"time to open {n} sessions (paramiko)", "s", "lower",
                     setup_s.get(n, {}))

    def rate(self):
        a = self.args
        results, cpu_per = {}, {}

        def one(name):
            s = self.started(name)
            try:
                self.sftp(s, ["bye"])
                s.settle()
                c0 = s.cpu()
                done, failed = [0], [0]
                deadline = time.monotonic() + a.rate_seconds

                def worker():
                    while time.monotonic() < deadline:
                        ok = self.sftp(s, ["bye"], check=False, timeout=60)
                        if ok is None:
                            failed[0] += 1
                        else:
                            done[0] += 1
                t0 = time.monotonic()
                threads = [threading.Thread(target=worker) for _ in range(a.rate_workers)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                dt = time.monotonic() - t0
                s.settle()
                cpu = s.cpu() - c0
                results[name] = [done[0] / dt]
                cpu_per[name] = [cpu * 1000 / max(done[0], 1)]
                if failed[0]:
                    self.notes.append(f"connection rate / {LABELS[name]}: {failed[0]} failed logins")
            finally:
                self.stopped(s)

        self.each("connection rate", one)
        self.add("connections", f"new connections + key login per second ({a.rate_workers} "
                 f"clients, {a.rate_seconds} s)", "1/s", "higher", results, "≥ OpenSSH")
        self.add("connections", "server CPU per connection + login", "ms", "lower", cpu_per)

    def startup(self):
        a = self.args
        results, ready = {}, {}

        def one(name):
            for _ in range(a.repeats + 1):
                s = self.server(name)
                dt = s.start()
                self.running.append(s)
                self.stopped(s)
                results.setdefault(name, []).append(dt * 1000)
                if s.ready_line is not None:
                    ready.setdefault(name, []).append(s.ready_line * 1000)
            results[name] = results[name][1:]  # the first start warms the page cache
            if name in ready:
                ready[name] = ready[name][1:]

        self.each("start", one)
        self.add("start", "start to first SSH banner", "ms", "lower", results, "≤ 100 ms")
        self.add("start", "start to `ready:` line", "ms", "lower", ready)

    def sizes(self):
        def mib(path):
            return [Path(path).stat().st_size / MIB]
        coffer = {"coffer": mib(self.coffer)}
        self.add("binary", "stripped release (glibc, TPM feature)", "MiB", "lower", coffer)
        helper = Path(self.coffer).with_name("coffer-tpm")
        if helper.exists():
            self.add("binary", "its TPM helper, coffer-tpm (links tpm2-tss; run only to "
                     "seal and unseal)", "MiB", "lower", {"coffer": mib(helper)})
        peers = {"openssh": mib("/usr/sbin/sshd"), "proftpd": mib("/usr/sbin/proftpd")}
        self.notes.append("Peer binary sizes are the dynamically linked Debian main binaries "
                          "(sshd; proftpd without its modules), for scale only.")
        self.add("binary", "main binary (Debian, dynamic)", "MiB", "lower", peers)
        if not self.args.static:
            return
        target_dir = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
        for target, env in (("x86_64-unknown-linux-musl", {
                                "CC_x86_64_unknown_linux_musl": "musl-gcc"}),
                            ("aarch64-unknown-linux-musl", {
                                "CC_aarch64_unknown_linux_musl": "aarch64-linux-gnu-gcc",
                                "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER":
                                    "aarch64-linux-gnu-gcc"})):
            cmd = ["cargo", "build", "--release", "--locked", "--no-default-features",
                   "--target", target]
            self.commands.append(" ".join([*(f"{k}={v}" for k, v in env.items()), *cmd]))
            log(f"building {target}")
            r = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, **env), capture_output=True,
                               text=True)
            binary = target_dir / target / "release" / "coffer"
            if r.returncode != 0 or not binary.exists():
                self.notes.append(f"static build for {target} failed: "
                                  f"{r.stderr.strip().splitlines()[-1:]}")
                continue
            kind = subprocess.run(["file", "-b", str(binary)], capture_output=True,
                                  text=True).stdout.strip() if shutil.which("file") else ""
            self.add("binary", f"static musl, {target.split('-')[0]}, stripped", "MiB", "lower",
                     {"coffer": mib(binary)}, "≤ 10 MiB")
            if target.startswith("x86_64") and "coffer" in self.args.servers:
                # The same idle measurement as the memory section, with the
                # static build (key-file sealing, no shared libraries).
                glibc, self.coffer = self.coffer, binary
                try:
                    idle = []
                    for _ in range(3):
                        s = self.started("coffer")
                        try:
                            time.sleep(1)
                            idle.append(rss_kib(s.pid) / 1024)
                        finally:
                            self.stopped(s)
                    self.add("memory", "RSS idle, static musl x86_64 build", "MiB", "lower",
                             {"coffer": idle}, "≤ 8 MiB")
                except Exception as e:
                    self.notes.append(f"static build idle RSS: {e}")
                finally:
                    self.coffer = glibc
            if kind:
                self.notes.append(f"{target}: {kind}")

    # -- report --

    def table(self):
        peers = [p for p in self.args.servers if p != "coffer"]
        head = ["figure", "unit"] + [LABELS[s] for s in self.args.servers]
        head += [f"Coffer/{LABELS[p]}" for p in peers if "coffer" in self.args.servers]
        head += ["target"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

        def fmt(xs):
            if not xs:
                return "–"
            med = statistics.median(xs)
            digits = 0 if med >= 100 else 1 if med >= 10 else 2
            if len(xs) == 1:
                return f"{med:.{digits}f}"
            return f"{med:.{digits}f} ({min(xs):.{digits}f}–{max(xs):.{digits}f})"

        for row in self.rows:
            v = row["values"]
            cells = [row["metric"], row["unit"] + (" ↑" if row["better"] == "higher" else " ↓")]
            cells += [fmt(v.get(s)) for s in self.args.servers]
            if "coffer" in self.args.servers:
                for p in peers:
                    if v.get("coffer") and v.get(p) and statistics.median(v[p]):
                        cells.append(f"{statistics.median(v['coffer']) / statistics.median(v[p]):.2f}")
                    else:
                        cells.append("–")
            cells.append(row["target"] or "")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def versions(self):
        def first(cmd):
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
                return (r.stdout + r.stderr).strip().splitlines()[0]
            except Exception:
                return "?"
        def pkg(p):
            return first(["dpkg-query", "-W", "-f", "${Version}", p])
        cpu = "?"
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        return [
            f"- CPU: {cpu}, {os.cpu_count()} logical cores; {int(mem) // 1024} MiB RAM",
            f"- Kernel: {platform.release()}; {first(['sh', '-c', '. /etc/os-release; echo $PRETTY_NAME'])}",
            f"- Coffer: {first([str(self.coffer), '--version'])} (release build, git "
            f"{first(['git', '-C', str(REPO), 'rev-parse', '--short', 'HEAD'])})",
            f"- OpenSSH: openssh-server {pkg('openssh-server')}; client {first(['ssh', '-V'])}",
            f"- ProFTPD: proftpd-core {pkg('proftpd-core')} (mod_sftp, mod_auth_otp, mod_sql_sqlite)",
            f"- pam_google_authenticator: {pkg('libpam-google-authenticator')}; "
            f"paramiko {__import__('paramiko').__version__}; Python {platform.python_version()}",
        ]

    def report(self, started):
        a = self.args
        table = self.table()
        print("\n" + table + "\n")
        text = [
            "# Benchmark results",
            "",
            f"Written by `benches/compare {' '.join(a.argv)}` on "
            f"{time.strftime('%Y-%m-%d %H:%M %Z')}; the run took "
            f"{(time.monotonic() - started) / 60:.0f} minutes.",
            "",
            "Median (min–max) of the repeats; ↑ higher is better, ↓ lower is better. "
            "Ratios are Coffer's median over the peer's.",
            "",
            table,
            "",
            "## Machine",
            "",
            *self.versions(),
            "",
            "## Load average before and after each server's part",
            "",
            "The client (OpenSSH's sftp, paramiko) shares the machine with the server, so "
            "throughput depends on what else runs; server CPU time and RSS are read from "
            "/proc and do not.",
            "",
            "| section | server | load before | load after | seconds |",
            "|---|---|---|---|---|",
            *[f"| {s} | {n} | {b} | {e} | {t:.0f} |" for s, n, b, e, t in self.loads],
            "",
            "## Settings",
            "",
            f"- Sizes: {a.size_mib} MiB single transfers, {a.parallel} parallel sessions of "
            f"{max(1, a.size_mib // a.parallel)} MiB, {a.files} files of 4 KiB, "
            f"{a.repeats} repeats, held sessions {', '.join(map(str, a.sessions))}, "
            f"connection rate {a.rate_seconds} s with {a.rate_workers} clients.",
            f"- Every server: 127.0.0.1, ed25519 host key (the same key), kex {KEX}, "
            f"cipher as named ({AES} unless chacha20 is named), MAC {MAC} (unused with AEAD "
            "ciphers), files on /dev/shm, system account `cofferbench` (Coffer: an account of "
            "the same name; the server drops to that system account).",
            "- Coffer: `coffer serve` with defaults except `rsa_host_key = false`, "
            "`max_connections` and `max_open_channels` raised for the held-session test, `[service] user`.",
            "- OpenSSH: `sshd -D -f CONFIG` with `Subsystem sftp internal-sftp`; publickey and "
            "password against /etc/shadow (`UsePAM no`); for TOTP, `UsePAM yes`, "
            "keyboard-interactive and pam_google_authenticator through a private PAM service "
            "(`sshd-pwtotp`: pam_unix + pam_google_authenticator; `sshd-keytotp`: "
            "`AuthenticationMethods publickey,keyboard-interactive` + pam_google_authenticator).",
            "- ProFTPD: `proftpd -n -c CONFIG` with mod_sftp (`DefaultRoot ~`, mod_auth_unix); "
            "for TOTP, mod_sql + mod_sql_sqlite + mod_auth_otp (`AuthOrder mod_auth_otp.c "
            "mod_auth_unix.c`: mod_auth_otp compares codes through the auth modules) with "
            "`SFTPAuthMethods password+keyboard-interactive` (the client sends the password "
            "by the password method, then the code by keyboard-interactive) or "
            "`publickey+keyboard-interactive`. mod_sftp 1.3.8 has no chacha20-poly1305.",
            "- TOTP replay: Coffer never accepts a code twice, so each TOTP login uses its own "
            "enrolled account; the peers' configurations accept a repeated code.",
            "- Login latency is the wall time of `sftp -b` with the batch `bye`: client start, "
            "key exchange, authentication, the SFTP subsystem, exit; each login starts "
            f"{LOGIN_PAUSE} s after the one before has ended.",
            "",
            "## Notes",
            "",
            *[f"- {n}" for n in self.notes],
            "",
            "## Commands",
            "",
            "```",
            *self.commands,
            "```",
            "",
        ]
        Path(a.out).write_text("\n".join(text))
        log(f"wrote {a.out}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--coffer", default=str(REPO / "target/release/coffer"))
    p.add_argument("--quick", action="store_true",
                   help="a short run: 64 MiB, 500 files, 30 sessions, 2 repeats, 5 s rate")
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--parallel", type=int, default=8)
    p.add_argument("--files", type=int, default=10000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--sessions", default="100,1000",
                   help="numbers of held SFTP sessions, comma separated")
    p.add_argument("--rate-seconds", type=int, default=30)
    p.add_argument("--rate-workers", type=int, default=4)
    p.add_argument("--servers", default=",".join(SERVERS))
    p.add_argument("--only", default="throughput,parallel,small,logins,memory,rate,start,size",
                   help="sections to run, comma separated")
    p.add_argument("--static", action="store_true",
                   help="also cross-build the static musl binaries (x86_64, aarch64)")
    p.add_argument("--out", default=str(REPO / "benches/RESULTS.md"))
    p.add_argument("--keep", action="store_true", help="keep the work folder on /dev/shm")
    argv = sys.argv[1:]
    a = p.parse_args()
    a.argv = [x for x in argv if not x.startswith("--coffer")]
    if a.quick:
        defaults = {"size_mib": 64, "files": 500, "repeats": 2, "sessions": "30",
                    "rate_seconds": 5}
        for k, v in defaults.items():
            if getattr(a, k) == p.get_default(k):
                setattr(a, k, v)
    a.sessions = [int(x) for x in str(a.sessions).split(",") if x]
    a.servers = [s for s in a.servers.split(",") if s]
    sections = a.only.split(",")
    if a.out == p.get_default("out") and a.quick:
        a.out = str(REPO / "benches/RESULTS-quick.md")
    started = time.monotonic()
    bench = Bench(a)
    try:
        bench.setup()
        for section, fn in (("throughput", bench.throughput), ("parallel", bench.parallel),
                            ("small", bench.small_files), ("logins", bench.logins),
                            ("memory", bench.memory), ("rate", bench.rate),
                            ("start", bench.startup), ("size", bench.sizes)):
            if section in sections:
                fn()
        bench.report(started)
    finally:
        bench.cleanup()


if __name__ == "__main__":
    main()
