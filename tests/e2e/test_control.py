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


def _exchange(sock_path, line: bytes) -> dict:
    """One request line on the control socket, as a client of any version
    would send it; returns the decoded reply."""
    import json
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(str(sock_path))
    try:
        s.sendall(line)
        s.shutdown(socket.SHUT_WR)
    except BrokenPipeError:
        pass  # the server stopped reading (an oversized line); its reply is there

    raw = b""
    while chunk := s.recv(65536):
        raw += chunk
    s.close()
    return json.loads(raw)


def test_the_socket_speaks_a_versioned_typed_protocol(box):
    sock = box.data / "coffer.sock"
    box.add_user("carol")
    # A typed request and its typed answer.
    reply = _exchange(sock, b'{"version":1,"caller":"cli","request":{"unlock":{"name":"carol"}}}\n')
    assert reply == {"version": 1, "reply": {"Ok": {"unlocked": {"cleared": 0}}}}, reply
    # Errors keep their kind across the socket.
    reply = _exchange(sock, b'{"version":1,"caller":"cli","request":{"remove_account":{"name":"nobody"}}}\n')
    assert reply["reply"]["Err"]["kind"] == "not_found", reply
    # A client of another protocol version is told so, by number, and nothing runs.
    reply = _exchange(sock, b'{"version":2,"caller":"cli","request":{"remove_account":{"name":"carol"}}}\n')
    err = reply["reply"]["Err"]
    assert err["kind"] == "protocol" and "version 2" in err["message"] and "version 1" in err["message"], err
    assert "carol" in box.cli("user", "list").stdout
    # Garbage, an unknown request and a wrong shape get a clear error, not a hang or a crash.
    for line in [b"not json\n", b"{}\n", b'{"version":1,"request":"format_disk"}\n',
                 b'{"version":1,"request":{"remove_account":{}}}\n', b"\xff\xfe\n"]:
        err = _exchange(sock, line)["reply"]["Err"]
        assert err["kind"] == "protocol" and "could not read" in err["message"], (line, err)
    # An oversized line is cut at 1 MiB and refused ("longer than 1024 KiB"; the
    # kernel may reset the connection first, since the rest is never read), and
    # the server still answers afterwards.
    try:
        err = _exchange(sock, b'{"version":1,"request":{"unlock":{"name":"' + b"a" * (2 << 20) + b'"}}}\n')
        assert "longer than 1024 KiB" in err["reply"]["Err"]["message"], err
    except ConnectionResetError:
        pass
    assert "carol" in box.cli("user", "list").stdout
