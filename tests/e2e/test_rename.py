"""Renaming an account, through the real front ends: the account keeps its
password, its TOTP seed (the same authenticator keeps working), its tokens
and its files under the new name; the old name no longer logs in; the
account's open sessions end at once; and the refusals (a taken name in any
case, a bad new name, an administrator renaming the owner, an access token,
a home folder that exists already) change nothing."""

import time

import urllib3

from conftest import OWNER, PASSWORD, ssh_password_login, totp
from test_rest import USER_PASSWORD, Api, error
from test_revocation import closed_within, sftp_session
from test_roles import Browser

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


def owner_api(box):
    api = Api(box.https_port)
    api.token = api.token_for()
    return api


def test_a_rest_rename_keeps_the_second_factor_and_the_files_over_sftp(box):
    box.add_user("alice", "user", USER_PASSWORD)
    secret, _ = box.enrol("alice")
    token = box.token("alice")
    step = int(time.time()) // 30
    t, sftp = sftp_session(box, "alice", USER_PASSWORD, totp(secret, step=step))
    with sftp.open("report.txt", "w") as f:
        f.write("quarterly numbers")
    sftp.listdir(".")

    r = owner_api(box).patch("/users/alice", json={"username": "alicia"})
    assert r.status_code == 200, r.text
    assert r.json()["username"] == "alicia" and r.json()["home_folder"] == "alicia", r.json()
    assert r.json()["mfa"]["enrolled"], r.json()

    # The open SFTP session of the renamed account is closed within 2 s.
    assert closed_within(t, sftp, 2.0), "SFTP still open after the rename"
    t.close()
    ended = box.audit(user="alice", event="sessions_revoked")
    assert ended and "account renamed" in ended[0]["detail"], ended

    # The same authenticator (a code of the next step: the first is used).
    t, sftp = sftp_session(box, "alicia", USER_PASSWORD, totp(secret, step=step + 1))
    assert sftp.listdir(".") == ["report.txt"]
    with sftp.open("report.txt") as f:
        assert f.read() == b"quarterly numbers"
    t.close()
    assert not (box.data / "files" / "alice").exists()

    # The old name logs in nowhere; the token now belongs to the new name.
    assert not ssh_password_login(box, "alice", USER_PASSWORD)
    error(Api(box.https_port).login("alice", USER_PASSWORD, totp(secret, step=step + 2)), 401)
    me = Api(box.https_port, token).get("/me")
    assert me.status_code == 200 and me.json()["username"] == "alicia", me.text

    events = box.audit(event="account_renamed")
    assert events and events[0]["id"] == 1511, events
    assert events[0]["account"] == "alicia"
    assert events[0]["detail"].startswith("renamed from alice to alicia; home folder moved"), events[0]


def test_the_cli_renames_and_the_old_name_stops_working(box):
    box.add_user("bob", "user", USER_PASSWORD)
    home = box.data / "files" / "bob"
    home.mkdir(parents=True)
    (home / "kept.txt").write_text("x")
    r = box.cli("user", "rename", "bob", "robert")
    assert r.stdout.strip() == "renamed bob to robert (home folder robert)", r.stdout
    assert ssh_password_login(box, "robert", USER_PASSWORD)
    assert not ssh_password_login(box, "bob", USER_PASSWORD)
    assert (box.data / "files" / "robert" / "kept.txt").read_text() == "x"
    shown = box.cli("user", "show", "robert").stdout
    assert "robert" in shown
    r = box.cli("user", "show", "bob", check=False)
    assert r.returncode == 2, r.stderr


def test_refused_renames_change_nothing(box):
    box.add_user("alice", "user", USER_PASSWORD)
    box.add_user("bob", "user", USER_PASSWORD)
    box.add_user("adam", "admin", USER_PASSWORD)
    (box.data / "files" / "bob").mkdir(parents=True)
    (box.data / "files" / "carol").mkdir(parents=True)
    api = owner_api(box)

    # A name taken in another case.
    body = error(api.patch("/users/bob", json={"username": "ALICE"}), 409, "exists")
    assert '"alice"' in body["message"], body
    # Names outside the alphabet.
    for bad in ["**", ".x", "a/b", "", "x" * 65]:
        error(api.patch("/users/bob", json={"username": bad}), 400)
    # The folder the home would move to exists already.
    body = error(api.patch("/users/bob", json={"username": "carol"}), 409, "exists")
    assert "carol" in body["message"], body
    # An administrator renaming the owner.
    adam = Api(box.https_port, Api(box.https_port).token_for("adam", USER_PASSWORD))
    error(adam.patch(f"/users/{OWNER}", json={"username": "boss"}), 403)
    # A caller signed in with an access token, even the owner's.
    by_token = Api(box.https_port, box.token(OWNER))
    error(by_token.patch("/users/bob", json={"username": "robert"}), 403,
          "token_cannot_manage_credentials")
    # The command line refuses the same way.
    r = box.cli("user", "rename", "bob", "Alice", check=False)
    assert r.returncode == 2 and "exists" in r.stderr, r.stderr

    names = sorted(u["username"] for u in api.get("/users").json())
    assert names == sorted(["adam", "alice", "bob", OWNER]), names
    assert (box.data / "files" / "bob").is_dir()
    assert ssh_password_login(box, "bob", USER_PASSWORD)
    assert ssh_password_login(box, OWNER, PASSWORD)
    assert not box.audit(event="account_renamed")


def test_a_rename_with_other_fields_applies_them_all(box):
    box.add_user("dora", "user", USER_PASSWORD)
    r = owner_api(box).patch("/users/dora", json={"read_only": True, "username": "dorothy"})
    assert r.status_code == 200, r.text
    assert r.json()["username"] == "dorothy" and r.json()["read_only"] is True, r.json()


def test_the_admin_page_renames_with_its_form(box):
    box.add_user("erin", "user", USER_PASSWORD)
    browser = Browser(box).sign_in(OWNER, PASSWORD)
    token = browser.csrf("/admin/users/erin")
    r = browser.request("POST", "/admin/users/erin",
                        {"csrf": token, "action": "rename", "new_name": "erina"})
    assert r.status_code == 303 and r.headers["Location"] == "/admin/users/erina", r.headers
    page = browser.request("GET", "/admin/users/erina").text
    assert "is now" in page and "erina" in page, page[:2000]
    assert ssh_password_login(box, "erina", USER_PASSWORD)
    # Refused: the form shows why, and nothing changes.
    token = browser.csrf("/admin/users/erina")
    r = browser.request("POST", "/admin/users/erina",
                        {"csrf": token, "action": "rename", "new_name": "**"})
    assert r.headers["Location"] == "/admin/users/erina", r.headers
    page = browser.request("GET", "/admin/users/erina").text
    assert 'role="alert"' in page and "letters" in page, page[:2000]
