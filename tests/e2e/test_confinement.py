"""Confinement of account names and home folders, through the real front
ends: a name that would map to the data dir (`..`) or the files root (`.`)
is refused everywhere an account is made, and a symbolic link planted on the
path of another account's home never roots that account's session outside
the files root."""

import os
import socket
import subprocess

import paramiko
import pytest

from conftest import COFFER, OWNER, PASSWORD, Box
from test_rest import USER_PASSWORD, Api, error

# Under the old rules these were accepted, and their folders were `..` (the
# data dir: data key, store, TLS and host keys) or `.` (every user's files).
ESCAPING_NAMES = ["**", "//", ".:", "*", "/", "?", "..", "."]
OTHER_BAD_NAMES = [".hidden", "ACME\\joe", "has space", "ünï", "x" * 65, ""]


@pytest.fixture
def api(box):
    a = Api(box.https_port)
    a.token = a.token_for()
    return a


def test_rest_refuses_names_outside_the_alphabet_with_400(api, box):
    for name in ESCAPING_NAMES + OTHER_BAD_NAMES:
        body = error(api.post("/users", json={"username": name, "password": USER_PASSWORD}), 400)
        assert "letters" in body["message"] or "characters" in body["message"] or "dot" in body["message"], body
    names = [u["username"] for u in api.get("/users").json()]
    assert names == [OWNER], names
    # An administrator (not only the owner) is refused the same way.
    assert api.post("/users", json={"username": "adam", "password": USER_PASSWORD, "role": "admin"}).status_code == 201
    adam = Api(box.https_port, Api(box.https_port).token_for("adam", USER_PASSWORD))
    error(adam.post("/users", json={"username": ".:", "password": USER_PASSWORD}), 400)
    # The documented alphabet is accepted.
    r = adam.post("/users", json={"username": "joe.b-1_x@acme", "password": USER_PASSWORD})
    assert r.status_code == 201, r.text
    assert r.json()["home_folder"] == "joe.b-1_x@acme"


def test_rest_names_are_unique_regardless_of_case(api):
    assert api.post("/users", json={"username": "alice", "password": USER_PASSWORD}).status_code == 201
    body = error(api.post("/users", json={"username": "Alice", "password": USER_PASSWORD}), 409, "exists")
    assert '"alice"' in body["message"], body
    error(api.post("/users", json={"username": "ALICE", "password": USER_PASSWORD}), 409, "exists")


def test_rest_refuses_homes_and_templates_that_leave_the_files_root(api):
    error(api.post("/users", json={"username": "bob", "password": USER_PASSWORD, "home": "../.."}), 400)
    assert api.post("/users", json={"username": "bob", "password": USER_PASSWORD}).status_code == 201
    for home in ["../..", "/etc", "a/../..", "a//b", "."]:
        error(api.patch("/users/bob", json={"home": home}), 400)
    for template in ["../${USER}", "/${USER}", "${USER}/.."]:
        error(api.post("/groups", json={"name": "g", "home_template": template}), 400)


def test_cli_and_setup_refuse_such_names(box, tmp_path):
    r = box.cli("user", "add", ".:", "--password-file", "-", input=PASSWORD + "\n", check=False)
    assert r.returncode == 2 and "letters" in r.stderr, r.stderr
    pw = tmp_path / "pw2"
    pw.write_text(PASSWORD + "\n")
    other = tmp_path / "other"
    r = subprocess.run([COFFER, "--data-dir", str(other), "--seal", "keyfile", "setup", "--admin", "**",
                        "--password-file", str(pw)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "letters" in r.stderr, r.stderr


def test_the_claim_wizard_refuses_such_an_owner_name(tmp_path):
    b = Box(tmp_path, claimed=False)
    try:
        a = Api(b.https_port)
        code = b.claim_code()
        for name in ["..", ".:", "*"]:
            error(a.post("/claim", json={"claim_code": code, "username": name, "password": PASSWORD}), 400)
        assert a.get("/health").json()["claimed"] is False
        r = a.post("/claim", json={"claim_code": code, "username": "owner", "password": PASSWORD})
        assert r.status_code == 201, r.text
    finally:
        b.stop()


def sftp_as(box, user, password=PASSWORD):
    sock = socket.create_connection(("127.0.0.1", box.port), timeout=10)
    t = paramiko.Transport(sock)
    t.start_client(timeout=10)
    t.auth_password(user, password)
    return t, paramiko.SFTPClient.from_transport(t)


def test_a_link_planted_on_another_accounts_home_path_does_not_escape(box):
    box.cli("group", "add", "team", "--home-template", "team/${USER}")
    box.add_user("manager", "user", PASSWORD, "--home", "team")
    box.add_user("bob", "user", PASSWORD, "--group", "team")
    box.add_user("carol", "user", PASSWORD, "--group", "team")

    # Carol logs in first: her connection is authenticated before the link.
    tc = paramiko.Transport(socket.create_connection(("127.0.0.1", box.port), timeout=10))
    tc.start_client(timeout=10)
    tc.auth_password("carol", PASSWORD)

    # The manager's home holds the team's homes; it plants links where
    # bob's and carol's homes will be, pointing at the data dir.
    tm, manager = sftp_as(box, "manager")
    manager.symlink("../..", "bob")
    manager.symlink("../..", "carol")
    assert manager.readlink("bob") == "../.."
    tm.close()

    # Bob's login is refused, and the audit log says why.
    with pytest.raises(paramiko.AuthenticationException):
        sftp_as(box, "bob")
    refused = box.audit(user="bob", event="home_refused")
    assert refused and "symbolic link" in refused[0]["detail"], refused
    assert "login_granted" not in [e["event"] for e in box.audit(user="bob")]

    # Carol's session does not open: no listing of the data dir.
    with pytest.raises((paramiko.SSHException, EOFError, OSError)):
        carol = paramiko.SFTPClient.from_transport(tc)
        carol.listdir(".")
    tc.close()
    refused = box.audit(user="carol", event="home_refused")
    assert refused and "team/carol" in refused[0]["detail"], refused

    # The links are left as they were: nothing was created through them.
    for name in ["bob", "carol"]:
        assert os.readlink(box.data / "files" / "team" / name) == "../.."
    assert not (box.data / "bob").exists() and not (box.data / "carol").exists()


def test_a_web_session_whose_home_path_gets_a_link_is_refused_file_access(box):
    box.cli("group", "add", "team", "--home-template", "team/${USER}")
    box.add_user("manager", "user", PASSWORD, "--home", "team")
    box.add_user("dave", "user", PASSWORD, "--group", "team")
    dave = Api(box.https_port, Api(box.https_port).token_for("dave", PASSWORD))
    assert dave.get("/files").status_code == 200
    tm, manager = sftp_as(box, "manager")
    manager.rename("dave", "dave-moved")
    manager.symlink("../..", "dave")
    tm.close()
    body = error(dave.get("/files"), 403, "home_refused")
    assert "symbolic link" in body["message"] and "team/dave" in body["message"], body
    error(dave.put("/files/content", params={"path": "/x"}, data=b"x"), 403, "home_refused")
    assert not (box.data / "x").exists()
    assert box.audit(user="dave", event="home_refused")
