#!/usr/bin/env python3
"""What a flood of failed SSH logins costs the store and the audit trail.

Usage: benches/audit_flood.py COFFER_BINARY [--attempts N]

Claims a fresh box, records a few real events (an account created, a login),
then floods the SSH port from 127.0.5.1 with N password attempts in each of
three kinds, one connection each:
- names of 100 KiB (refused before the flow: nothing should be written);
- 64-character made-up names (each a failure, until the address is locked;
  then `login_while_locked`, one record for the whole flood);
- the owner's name with wrong passwords (the same, for a real account).
Prints, for each kind, the store's growth in bytes per attempt and the audit
records added, and checks that the real events recorded before the flood
are still in the log after it.
"""

import argparse
import json
import pathlib
import socket
import subprocess
import tempfile
import time

import paramiko

PASSWORD = "correct-horse-battery-staple-9"


def attempts(port, names, password, source="127.0.5.1"):
    """Tries each name once, a connection each (paramiko cannot retry on
    one connection with russh: it asks for the userauth service again)."""
    for name in names:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
        t = paramiko.Transport(sock)
        try:
            t.start_client(timeout=30)
            t.auth_password(name, password, fallback=False)
        except (paramiko.SSHException, EOFError, OSError):
            pass
        finally:
            t.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("coffer")
    ap.add_argument("--attempts", type=int, default=300)
    args = ap.parse_args()
    coffer = str(pathlib.Path(args.coffer).resolve())
    n = args.attempts
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "pw").write_text(PASSWORD + "\n")
        (tmp / "coffer.toml").write_text(
            'version = 1\n[sftp]\nfailure_delay = "1ms"\nrsa_host_key = false\n[service]\nallow_root = true\n')
        base = [coffer, "--data-dir", str(tmp / "data"), "--seal", "keyfile"]

        def cli(*a):
            return subprocess.run(base + list(a), check=True, capture_output=True, text=True).stdout

        cli("setup", "--admin", "owner", "--password-file", str(tmp / "pw"), "--hash-cost", "m=64,t=1,p=1")
        proc = subprocess.Popen(base + ["serve", "--config", str(tmp / "coffer.toml"),
                                        "--sftp-listen", "127.0.0.1:0", "--https-listen", "127.0.0.1:0"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            port = int(proc.stdout.readline().decode().split()[2].rsplit(":", 1)[1])
            subprocess.run(base + ["user", "add", "alice", "--password-file", "-"], input=PASSWORD + "\n",
                           check=True, capture_output=True, text=True)
            attempts(port, ["alice"], PASSWORD, source="127.0.5.9")
            real = json.loads(cli("audit", "--json", "--limit", "10000"))
            store = tmp / "data" / "coffer.redb"
            kinds = [
                ("100 KiB names", ["x" * 100_000] * n, "whatever"),
                ("64-character made-up names", [f"{i:064d}" for i in range(n)], "whatever"),
                ("the owner, wrong passwords", ["owner"] * n, "not the password"),
            ]
            for label, names, password in kinds:
                before_size = store.stat().st_size
                before = len(json.loads(cli("audit", "--json", "--limit", "100000")))
                started = time.monotonic()
                attempts(port, names, password)
                took = time.monotonic() - started
                after_size = store.stat().st_size
                log = json.loads(cli("audit", "--json", "--limit", "100000"))
                added = len(log) - before
                locked = [r for r in log if r["event"] == "login_while_locked"]
                repeated = sum(r.get("repeated", 0) + 1 for r in locked)
                print(f"{label}: {n} attempts in {took:.1f} s; store +{after_size - before_size} bytes "
                      f"({(after_size - before_size) / n:.1f} per attempt); {added} audit records added; "
                      f"login_while_locked: {len(locked)} records counting {repeated} attempts")
            log = json.loads(cli("audit", "--json", "--limit", "100000"))
            seqs = {r["seq"] for r in log}
            kept = sum(1 for r in real if r["seq"] in seqs)
            print(f"real events recorded before the floods still in the log: {kept} of {len(real)}")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
