"""A change of an account's credentials ends its live sessions at once: an
open SFTP connection is closed and a REST session answers 401 within two
seconds, whether the change comes from the REST API, the command line or the
technician console. And the owner cannot be shut out: a group with a
system_admin member is the owner's to change, and no path leaves the box
without an enabled system_admin that can log in."""

import socket
import time

import paramiko
import pytest
import requests
import urllib3

from conftest import OWNER, PASSWORD, Box, totp
from test_console import NEW_PASSWORD, Console, console_section, reset_dialog

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

USER_PASSWORD = "plum-orchard-telescope-41"
OTHER_PASSWORD = "quartz-lantern-meadow-77"


class Api:
    def __init__(self, box, token=None):
        self.base = f"https://127.0.0.1:{box.https_port}/api/v1"
        self.token = token

    def call(self, method, path, token=None, **kw):
        t = token or self.token
        headers = {"Authorization": f"Bearer {t}"} if t else {}
        return requests.request(method, self.base + path, headers=headers, verify=False, timeout=30, **kw)

    def login(self, username, password, code=None):
        body = {"username": username, "password": password}
        if code is not None:
            body["code"] = code
        r = self.call("POST", "/auth/login", json=body)
        assert r.status_code == 200, r.text
        return r.json()["token"]


def sftp_session(box, user, password, code=None):
    """An SFTP session over keyboard-interactive (password, then the code)."""
    sock = socket.create_connection(("127.0.0.1", box.port), timeout=10)
    t = paramiko.Transport(sock)
    t.start_client(timeout=10)

    def handler(title, instructions, prompts):
        return [password if p.startswith("Password") else code for p, _ in prompts]

    t.auth_interactive(user, handler)
    assert t.is_authenticated()
    return t, paramiko.SFTPClient.from_transport(t)


def closed_within(transport, sftp, seconds=2.0):
    """Whether the server closed the connection within `seconds`: listing
    fails and the transport is down."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if not transport.is_active():
            break
        time.sleep(0.05)
    try:
        sftp.listdir(".")
        return False
    except (OSError, EOFError, paramiko.SSHException):
        return not transport.is_active()


def revoked_counts(box, user):
    return [e for e in box.audit(user=user, event="sessions_revoked")]


# Each change, as an administrator makes it over REST.
CHANGES = {
    "disable": lambda api: api.call("PATCH", "/users/alice", json={"disabled": True}),
    "remove": lambda api: api.call("DELETE", "/users/alice"),
    "password": lambda api: api.call("PATCH", "/users/alice", json={"password": OTHER_PASSWORD}),
    "demote": lambda api: api.call("PATCH", "/users/alice", json={"role": "user"}),
    "rehome": lambda api: api.call("PATCH", "/users/alice", json={"home": "elsewhere"}),
    "mfa_reset": lambda api: api.call("DELETE", "/users/alice/mfa"),
    "group": lambda api: api.call("PATCH", "/groups/staff", json={"read_only": True}),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_an_admin_change_closes_sftp_and_ends_web_sessions(box, change):
    box.add_user("alice", "admin", USER_PASSWORD)
    box.cli("group", "add", "staff")
    box.cli("user", "set", "alice", "--group", "staff")
    secret, _ = box.enrol("alice")
    api = Api(box)
    admin = api.login(OWNER, PASSWORD)
    step = int(time.time()) // 30
    t, sftp = sftp_session(box, "alice", USER_PASSWORD, totp(secret, step=step))
    web = api.login("alice", USER_PASSWORD, totp(secret, step=step + 1))
    sftp.listdir(".")
    assert api.call("GET", "/me", token=web).status_code == 200

    r = CHANGES[change](Api(box, admin))
    assert r.status_code in (200, 204), r.text

    assert closed_within(t, sftp), f"SFTP still open after {change}"
    assert api.call("GET", "/me", token=web).status_code == 401
    ended = revoked_counts(box, "alice")
    assert ended and ended[0]["id"] == 1510, ended
    assert ended[0]["detail"].startswith("2 sessions ended: "), ended[0]
    assert "1 web" in ended[0]["detail"] and "1 ssh" in ended[0]["detail"]
    t.close()


def test_a_change_over_the_control_socket_closes_sftp(box):
    box.add_user("bob", "user", USER_PASSWORD)
    t, sftp = sftp_session(box, "bob", USER_PASSWORD)
    sftp.listdir(".")
    box.cli("user", "disable", "bob")
    assert closed_within(t, sftp)
    t.close()


def test_an_scp_upload_in_progress_is_cut(box):
    box.add_user("bob", "user", USER_PASSWORD)
    t, _ = sftp_session(box, "bob", USER_PASSWORD)
    chan = t.open_session()
    chan.exec_command("scp -t .")
    assert chan.recv(1) == b"\0"
    chan.sendall(b"C0644 1048576 big.bin\n")
    assert chan.recv(1) == b"\0"
    chan.sendall(b"x" * 65536)
    box.cli("user", "set", "bob", "--home", "elsewhere")
    deadline = time.time() + 2
    while t.is_active() and time.time() < deadline:
        time.sleep(0.05)
    assert not t.is_active(), "the SCP connection is still open"
    with pytest.raises((OSError, EOFError, paramiko.SSHException)):
        for _ in range(32):
            chan.sendall(b"x" * 32768)
    t.close()


def test_revoking_a_token_closes_the_sessions_opened_with_it(box):
    box.add_user("bob", "user", USER_PASSWORD)
    token = box.token("bob")
    with_token, s1 = sftp_session(box, "bob", token)
    with_password, s2 = sftp_session(box, "bob", USER_PASSWORD)
    box.cli("token", "revoke", token.split("_")[1])
    assert closed_within(with_token, s1)
    s2.listdir(".")
    assert with_password.is_active()
    with_token.close()
    with_password.close()


def test_other_accounts_keep_their_sessions(box):
    box.add_user("bob", "user", USER_PASSWORD)
    box.add_user("carol", "user", USER_PASSWORD)
    t, sftp = sftp_session(box, "carol", USER_PASSWORD)
    box.cli("user", "disable", "bob")
    time.sleep(0.5)
    sftp.listdir(".")
    assert t.is_active()
    t.close()


def test_console_owner_reset_ends_the_owners_sessions(tmp_path):
    box = Box(tmp_path, console_section(tmp_path / "console"))
    try:
        api = Api(box)
        web = api.login(OWNER, PASSWORD)
        t, sftp = sftp_session(box, OWNER, PASSWORD)
        assert api.call("GET", "/me", token=web).status_code == 200
        c = Console(box)
        code = reset_dialog(c)
        c.send(code, then="New password for owner: ")
        c.send(NEW_PASSWORD, then="Type it again: ")
        out = c.send(NEW_PASSWORD)
        assert "Done: owner has a new password" in out
        c.send("b")
        c.leave()
        assert api.call("GET", "/me", token=web).status_code == 401
        assert closed_within(t, sftp)
        ended = revoked_counts(box, OWNER)
        assert ended and "console owner reset" in ended[0]["detail"], ended
        assert ended[0]["detail"].startswith("2 sessions ended"), ended[0]
        t.close()
    finally:
        box.stop()


# --- The owner cannot be shut out -----------------------------------------


@pytest.fixture
def owners_group(box):
    """The owner in group `owners`; `adam` an admin; both logged in over REST."""
    box.cli("group", "add", "owners")
    box.cli("user", "set", OWNER, "--group", "owners")
    api = Api(box)
    api.token = api.login(OWNER, PASSWORD)
    box.add_user("adam", "admin", USER_PASSWORD)
    admin = Api(box)
    admin.token = admin.login("adam", USER_PASSWORD)
    return api, admin


def error(r, status):
    assert r.status_code == status, f"{r.status_code} {r.text}"
    body = r.json()
    assert set(body) == {"error", "message"} and body["message"], body
    return body


@pytest.mark.parametrize("patch", [
    {"enabled": False},
    {"home_template": "elsewhere/${USER}"},
    {"ip_allow": ["192.0.2.0/24"]},
    {"read_only": True},
])
def test_an_admin_cannot_change_the_owners_group(box, owners_group, patch):
    owner, admin = owners_group
    body = error(admin.call("PATCH", "/groups/owners", json=patch), 403)
    assert "system_admin" in body["message"]
    group = owner.call("GET", "/groups/owners").json()
    assert group["enabled"] and group["home_template"] == "${USER}" and not group["ip_allow"]
    assert not group["read_only"]


def test_an_admin_cannot_remove_the_owners_group(box, owners_group):
    owner, admin = owners_group
    error(admin.call("DELETE", "/groups/owners"), 403)
    assert owner.call("GET", "/groups/owners").status_code == 200


def test_an_admin_may_still_change_other_groups(box, owners_group):
    _, admin = owners_group
    assert admin.call("POST", "/groups", json={"name": "staff"}).status_code in (200, 201)
    assert admin.call("PATCH", "/groups/staff", json={"enabled": False}).status_code == 200
    assert admin.call("DELETE", "/groups/staff").status_code == 204


@pytest.mark.parametrize("path,patch", [
    ("/groups/owners", {"enabled": False}),
    ("/groups/owners", {"ip_deny": ["0.0.0.0/0", "::/0"]}),
    ("/groups/owners", {"ip_allow": ["10.0.0.0/8"], "ip_deny": ["10.0.0.0/8"]}),
    (f"/users/{OWNER}", {"ip_deny": ["0.0.0.0/0", "::/0"]}),
    (f"/users/{OWNER}", {"disabled": True}),
])
def test_the_last_owner_cannot_be_shut_out(box, owners_group, path, patch):
    owner, _ = owners_group
    body = error(owner.call("PATCH", path, json=patch), 403)
    assert "last enabled system_admin" in body["message"]
    # The owner still logs in.
    assert Api(box).login(OWNER, PASSWORD)


def test_a_second_owner_lets_the_first_be_restricted(box, owners_group):
    owner, _ = owners_group
    box.add_user("olga", "system_admin", USER_PASSWORD)
    r = owner.call("PATCH", "/groups/owners", json={"ip_deny": ["0.0.0.0/0", "::/0"]})
    assert r.status_code == 200, r.text
    # Now olga is the only owner that can log in: she cannot be disabled.
    r = box.cli("user", "disable", "olga", check=False)
    assert r.returncode == 2 and "last enabled system_admin" in r.stderr, r.stderr
