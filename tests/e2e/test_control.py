"""The command line reaches a running server over its control socket, with the
same output as when it opens the store itself."""

import os
import stat
import subprocess
import time

from conftest import COFFER, PASSWORD


def test_cli_through_the_socket_matches_the_cli_on_the_store(box):
    sock = box.data / "coffer.sock"
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    box.add_user("bob")
    box.cli("user", "set", "bob", "--ip-allow", "10.0.0.0/8")
    box.cli("policy", "set", "lockout.max_failures=7")
    running = {
        args: box.cli(*args).stdout
        for args in [("user", "show", "bob"), ("user", "list", "--json"), ("policy", "show"), ("group", "list")]
    }
    status = box.cli("status").stdout
    assert "server:    running" in status
    # A second server on the same data dir is refused, naming the first.
    second = subprocess.run(
        [COFFER, "--data-dir", str(box.data), "serve", "--config", str(box.config),
         "--sftp-listen", "127.0.0.1:0", "--https-listen", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=30,
    )
    assert second.returncode == 2
    assert "in use by process" in second.stderr and "serve" in second.stderr, second.stderr
    box.stop()
    assert not sock.exists(), "the socket is removed at shutdown"
    for args, text in running.items():
        assert box.cli(*args).stdout == text, args
    assert "server:    not running" in box.cli("status").stdout


def test_errors_through_the_socket_are_one_line_and_exit_2(box):
    r = box.cli("user", "show", "nobody", check=False)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ['coffer: there is no account named "nobody"']
    r = box.cli("user", "add", "weak", "--password-file", "-", input="password1\n", check=False)
    assert r.returncode == 2 and "too short" in r.stderr
    assert "weak" not in box.cli("user", "list").stdout
