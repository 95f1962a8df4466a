"""Finds the functions `coffer serve` runs from start to idle, those only its
first start runs (it makes the host keys and the certificate) and those an
SFTP session runs, for tools/link/startup-order.txt, in that order. Run by
tools/link/gen-startup-order, which builds the binary and sets up the data dir;
the comment there says why.

Two sources, because neither is complete alone:

1. valgrind's callgrind sees every function that runs, but on valgrind's
   idea of the CPU: code chosen at run time for AVX-512, SHA or the like
   (SHA-256, hashing in the store, the curve25519 and AEAD back ends) takes
   another path under it. A config, login or session path it did not see is
   missing too.
2. perf's page-fault events on the real CPU see the first function that runs
   in each page of code not yet mapped. Every fault outside the listed groups
   names a function that ran and was not listed: it is added, the binary is
   linked again with the new list (a fraction of a second; the build kept its
   objects), and the run repeats until no such fault is left.

Standard library only.
"""

import argparse
import bisect
import contextlib
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

LINE = re.compile(r"^(c?ob|c?fn)=\((\d+)\)(?: (.*))?$")
CIPHERS = ("aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes128-ctr")


def log(text):
    print(f"gen-startup-order: {text}", file=sys.stderr)


class Run:
    """One data dir, config, client key and payload, made by the caller."""

    def __init__(self, work):
        self.work = work
        self.batch = work / "batch"
        self.batch.write_text(
            f"put {work / 'payload'} payload\nget payload {work / 'back'}\nls -l\n"
            "rename payload moved\nrm moved\n")

    def forget_keys(self):
        """Makes the next start a first start: without host keys, certificate
        or files folder."""
        data = self.work / "data"
        for name in ("ssh_host_ed25519_key", "ssh_host_rsa_key"):
            (data / name).unlink(missing_ok=True)
        for name in ("tls", "files"):
            shutil.rmtree(data / name, ignore_errors=True)

    def serve(self, binary, prefix=(), config="coffer.toml"):
        """Starts `coffer serve` (under `prefix`); returns (process, port)."""
        cmd = [*prefix, str(binary), "--data-dir", str(self.work / "data"), "--seal",
               "keyfile", "serve", "--config", str(self.work / config)]
        with open(self.work / "serve.log", "ab") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err,
                                    stdin=subprocess.DEVNULL)
        line = proc.stdout.readline().decode()
        m = re.match(r"ready: sftp 127\.0\.0\.1:(\d+) ", line)
        if not m:
            proc.kill()
            sys.exit(f"gen-startup-order: the server did not start; see {self.work}/serve.log")
        return proc, int(m.group(1))

    @contextlib.contextmanager
    def serving(self, binary, prefix, config):
        """`serve`, ended with SIGKILL (not its shutdown path) on leaving."""
        proc, port = self.serve(binary, prefix, config)
        try:
            yield proc, port
        finally:
            proc.kill()
            proc.wait()

    def sftp(self, port, batch, *options):
        return ["sftp", "-q", "-b", str(batch), "-i", str(self.work / "key"), "-P", str(port),
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "ConnectTimeout=300", *options,
                "order@127.0.0.1"]

    def sessions(self, port):
        """One login with the key per cipher, with a file up and down, a
        listing, a rename and a remove; then 40 more logins, 8 at a time,
        each listing the home folder, as the benchmark's held sessions log in
        (curve25519, aes128-ctr, hmac-sha2-256): they reach the store's and
        the runtime's paths for many connections."""
        for cipher in CIPHERS:
            subprocess.run(self.sftp(port, self.batch, "-c", cipher,
                                     "-o", "MACs=hmac-sha2-256"),
                           check=True, stdout=subprocess.DEVNULL)
            if (self.work / "back").read_bytes() != (self.work / "payload").read_bytes():
                sys.exit(f"gen-startup-order: {cipher}: the download differs")
        listing = self.work / "list"
        listing.write_text("ls -l\n")
        for _ in range(5):
            wave = [subprocess.Popen(self.sftp(port, listing, "-c", "aes128-ctr",
                                               "-o", "MACs=hmac-sha2-256", "-o",
                                               "KexAlgorithms=curve25519-sha256@libssh.org"),
                                     stdout=subprocess.DEVNULL) for _ in range(8)]
            if any([proc.wait() != 0 for proc in wave]):
                sys.exit("gen-startup-order: a login of the wave failed")


def callgrind(run, binary):
    """Functions of the binary that ran: in a first start up to idle, in a
    later start up to idle, and in the sessions after it."""
    prefix = ["valgrind", "--tool=callgrind", "--demangle=no"]

    def dump(proc, label):
        subprocess.run(["callgrind_control", f"--dump={label}", str(proc.pid)], check=True,
                       stdout=subprocess.DEVNULL)

    run.forget_keys()
    first = run.work / "callgrind-first.out"
    with run.serving(binary, [*prefix, f"--callgrind-out-file={first}"],
                     "callgrind.toml") as (proc, _):
        time.sleep(3)
        dump(proc, "first")
    later = run.work / "callgrind.out"
    with run.serving(binary, [*prefix, f"--callgrind-out-file={later}"],
                     "callgrind.toml") as (proc, port):
        time.sleep(5)
        dump(proc, "start")
        run.sessions(port)
        time.sleep(1)
        dump(proc, "session")
        time.sleep(1)
    dumps = [Path(f"{first}.1"), Path(f"{later}.1"), Path(f"{later}.2")]
    missing = [d.name for d in dumps if not d.is_file()]
    if missing:
        sys.exit(f"gen-startup-order: callgrind did not write {', '.join(missing)}")
    return [ran_in(d) for d in dumps]


def ran_in(dump):
    # Callgrind names each object once as "ob=(n) path" and each function once
    # as "fn=(n) name"; calls name the callee's object with "cob=" and the
    # callee with "cfn=". A function that appears at all has run.
    ran, objects, functions = set(), {}, {}
    current, callee_object = None, None
    for line in open(dump, encoding="utf-8", errors="replace"):
        m = LINE.match(line)
        if not m:
            continue
        kind, number, name = m.groups()
        table = objects if kind.endswith("ob") else functions
        if name:
            table[number] = name
        if kind == "ob":
            current = objects[number]
        elif kind == "cob":
            callee_object = objects[number]
        else:
            obj = current if kind == "fn" else (callee_object or current)
            if kind == "cfn":
                callee_object = None
            if obj and obj.endswith("/coffer"):
                ran.add(re.sub(r"'\d+$", "", functions[number]))
    return ran


class Functions:
    """The code symbols of one linked binary, by address."""

    def __init__(self, binary):
        listing = subprocess.run(["nm", "-S", "--defined-only", str(binary)],
                                 capture_output=True, text=True, check=True).stdout
        rows = []
        for fields in (line.split() for line in listing.splitlines()):
            if len(fields) == 4 and fields[2] in "tTwW":
                rows.append((int(fields[0], 16), int(fields[1], 16), fields[3]))
        rows.sort()
        self.rows = rows
        self.starts = [r[0] for r in rows]
        self.names = {r[2] for r in rows}

    def at(self, address):
        i = bisect.bisect_right(self.starts, address) - 1
        if i >= 0 and address < self.rows[i][0] + max(self.rows[i][1], 1):
            return self.rows[i][2]
        return None


class Linker:
    """Links the binary again from the objects the build kept, with another
    ordering list."""

    def __init__(self, command_file, work):
        words = shlex.split(Path(command_file).read_text())
        self.env = {}
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            key, _, value = words.pop(0).partition("=")
            self.env[key] = value
        self.words = [w for w in words if "symbol-ordering" not in w]
        out = self.words.index("-o")
        self.output = work / "coffer"
        self.words[out + 1] = str(self.output)
        self.order = work / "order.txt"

    def link(self, groups):
        self.order.write_text("\n".join(n for g in groups for n in sorted(g)) + "\n")
        subprocess.run(self.words + [f"-Wl,--symbol-ordering-file={self.order}",
                                     "-Wl,--no-warn-symbol-ordering"],
                       env=self.env, check=True)
        return self.output


def faults(run, binary, phase):
    """Addresses in the binary (as linked) of every page fault `coffer serve`
    takes: in a first start up to idle, in a later one, or in a later one
    and the sessions after it."""
    data = run.work / "faults.data"
    if phase == "first":
        run.forget_keys()
    proc, port = run.serve(binary, ["perf", "record", "-q", "-e", "page-faults", "-c", "1",
                                    "-d", "-o", str(data), "--"])
    try:
        time.sleep(1)
        if phase == "session":
            run.sessions(port)
        time.sleep(2)
    finally:
        # The server is perf's child: end it without its shutdown path.
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        for child in children:
            subprocess.run(["kill", "-9", child], check=False)
        proc.wait()
    script = subprocess.run(["perf", "script", "-i", str(data), "--show-mmap-events",
                             "-F", "addr"], capture_output=True, text=True, check=True).stdout
    base = None
    addresses = []
    for line in script.splitlines():
        if "PERF_RECORD_MMAP" in line:
            m = re.search(r"\[(0x[0-9a-f]+)\((0x[0-9a-f]+)\) @ (0x[0-9a-f]+|0) .*\]: \S+ (\S+)$",
                          line)
            if m and m.group(4) == str(binary) and int(m.group(3), 16) == 0:
                base = int(m.group(1), 16)
            continue
        word = line.strip()
        if re.fullmatch(r"[0-9a-f]+", word):
            addresses.append(int(word, 16))
    if base is None:
        sys.exit("gen-startup-order: perf recorded no mapping of the binary")
    return [a - base for a in addresses]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--binary", required=True, type=Path)
    p.add_argument("--link-command", required=True, type=Path)
    p.add_argument("--work", required=True, type=Path)
    p.add_argument("--rounds", type=int, default=40)
    a = p.parse_args()
    run = Run(a.work)
    code = Functions(a.binary).names
    first_ran, start_ran, session_ran = callgrind(run, a.binary)
    # The groups, in their order in .text. A session's code goes with the
    # sessions even if the first start ran it too.
    start = start_ran & code
    session = (session_ran & code) - start
    first = (first_ran & code) - start - session
    log(f"callgrind: {len(start)} functions up to idle, {len(first)} more in a first start, "
        f"{len(session)} more in sessions")

    linker = Linker(a.link_command, a.work)
    for round_ in range(1, a.rounds + 1):
        binary = linker.link((start, first, session))
        functions = Functions(binary)
        found = {"start": set(), "first": set(), "session": set()}
        for phase in ("start", "first", "session"):
            for address in faults(run, binary, phase):
                name = functions.at(address)
                listed = {"start": start, "first": start | first | session,
                          "session": start | session}[phase]
                if name is not None and name not in listed:
                    found[phase].add(name)
        log(f"round {round_}: " + ", ".join(f"{len(v)} more in {k}" for k, v in found.items()))
        if not any(found.values()):
            break
        start |= found["start"]
        session = (session | found["session"]) - start
        first = (first | found["first"]) - start - session
    else:
        log(f"still finding functions after {a.rounds} rounds; the list is what was found")

    print("# The functions `coffer serve` runs from start to idle, then those only")
    print("# its first start runs, then those an SFTP session runs (x86_64 glibc")
    print("# release build), generated by tools/link/gen-startup-order: do not edit.")
    for group in (start, first, session):
        if group:
            print("\n".join(sorted(group)))
    log(f"{len(start)} functions up to idle, {len(first)} more in a first start, "
        f"{len(session)} more in sessions")


if __name__ == "__main__":
    main()
