"""The REST API under /api/v1, driven over TLS with `requests`: every
route's success and error paths, the login with a second factor, tokens,
sessions, files, and inputs that must never make the server fail."""

import json
import os
import pathlib
import re
import socket
import ssl
import subprocess
import time

import pytest
import requests
import urllib3

from conftest import COFFER, OWNER, PASSWORD, fresh_code, service_section, totp

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

USER_PASSWORD = "plum-orchard-telescope-41"
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop"


class Api:
    """A client for one box's API; `token` is sent as the bearer."""

    def __init__(self, port, token=None):
        self.base = f"https://127.0.0.1:{port}/api/v1"
        self.token = token
        self.http = requests.Session()
        self.http.verify = False

    def call(self, method, path, token=None, headers=None, **kw):
        h = dict(headers or {})
        t = token if token is not None else self.token
        if t:
            h["Authorization"] = f"Bearer {t}"
        kw.setdefault("verify", False)
        return self.http.request(method, self.base + path, headers=h, timeout=60, **kw)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, **kw):
        return self.call("POST", path, **kw)

    def put(self, path, **kw):
        return self.call("PUT", path, **kw)

    def patch(self, path, **kw):
        return self.call("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)

    def login(self, username=OWNER, password=PASSWORD, code=None, headers=None):
        body = {"username": username, "password": password}
        if code is not None:
            body["code"] = code
        return self.call("POST", "/auth/login", token="", json=body, headers=headers)

    def token_for(self, username=OWNER, password=PASSWORD, code=None):
        r = self.login(username, password, code)
        assert r.status_code == 200, r.text
        return r.json()["token"]


def error(r, status, code=None):
    """Asserts a JSON error answer `{error, message}` with this status."""
    assert r.status_code == status, f"{r.status_code} {r.text}"
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error", "message"}, body
    assert body["message"], body
    if code is not None:
        assert body["error"] == code, body
    return body


@pytest.fixture
def api(box):
    a = Api(box.https_port)
    a.token = a.token_for()
    return a


def add_user(box, name="alice", role="user"):
    box.add_user(name, role, USER_PASSWORD)


# --- logging in ------------------------------------------------------------

def test_login_answers_a_bearer_token_and_api_answers_carry_the_security_headers(box):
    a = Api(box.https_port)
    r = a.login()
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token"].startswith("cws_") and body["expires_at"] > time.time()
    me = a.get("/me", token=body["token"])
    assert me.status_code == 200
    assert me.json()["username"] == OWNER and me.json()["role"] == "system_admin"
    for r in (me, error(a.get("/me"), 401, "unauthenticated") and a.get("/me")):
        h = r.headers
        assert h["Strict-Transport-Security"].startswith("max-age=")
        assert "frame-ancestors 'none'" in h["Content-Security-Policy"]
        assert h["X-Frame-Options"] == "DENY"
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["Referrer-Policy"] == "no-referrer"
        assert h["Cache-Control"] == "no-store"
    error(a.get("/me", token="cws_not-a-token"), 401, "unauthenticated")
    error(a.get("/me", headers={"Authorization": "Basic b3duZXI6eA=="}), 401)


def test_wrong_and_unknown_credentials_are_one_answer(box):
    a = Api(box.https_port)
    wrong = error(a.login(OWNER, "not the password"), 401, "invalid_credentials")
    unknown = error(a.login("nobody", "not the password"), 401, "invalid_credentials")
    assert wrong["message"] == unknown["message"]


def test_login_with_a_second_factor_in_the_body_the_header_replay_and_recovery_codes(box):
    add_user(box)
    secret, recovery = box.enrol("alice")
    a = Api(box.https_port)
    error(a.login("alice", USER_PASSWORD), 401, "otp_required")
    code = fresh_code(secret)
    r = a.login("alice", USER_PASSWORD, code)
    assert r.status_code == 200, r.text
    # The same code again is refused (replay), in the body or the header.
    error(a.login("alice", USER_PASSWORD, code), 401, "invalid_credentials")
    error(a.login("alice", USER_PASSWORD, headers={"X-Coffer-OTP": code}), 401, "invalid_credentials")
    # The next step's code, in the header.
    r = a.login("alice", USER_PASSWORD, headers={"X-Coffer-OTP": totp(secret, offset=1)})
    assert r.status_code == 200, r.text
    # A recovery code works once.
    r = a.login("alice", USER_PASSWORD, recovery[0])
    assert r.status_code == 200, r.text
    error(a.login("alice", USER_PASSWORD, recovery[0]), 401, "invalid_credentials")
    # A wrong password with a right code is no better than a wrong password.
    error(a.login("alice", "wrong password", recovery[1]), 401, "invalid_credentials")
    events = {e["event"] for e in box.audit(user="alice")}
    assert {"code_accepted", "code_replayed", "recovery_code_used"} <= events


def test_lockout_answers_locked_with_retry_after_and_unlock_clears_it(box):
    add_user(box)
    owner = Api(box.https_port)
    owner.token = owner.token_for()
    a = Api(box.https_port)
    for _ in range(5):
        error(a.login("alice", "wrong password"), 401)
    r = a.login("alice", USER_PASSWORD)
    error(r, 401, "locked")
    assert int(r.headers["Retry-After"]) > 0
    r = owner.post("/users/alice/unlock")
    assert r.status_code == 200 and r.json()["cleared"] >= 1, r.text
    assert a.login("alice", USER_PASSWORD).status_code == 200
    error(owner.post("/users/nobody/unlock"), 404, "not_found")


def test_the_login_rate_limit_answers_429_with_retry_after(box_factory):
    b = box_factory("[https]\nlogin_rate = 4\n")
    a = Api(b.https_port)
    for _ in range(4):
        assert a.login(OWNER, "wrong").status_code == 401
    r = a.login()
    error(r, 429, "rate_limited")
    assert int(r.headers["Retry-After"]) > 0


def test_logout_ends_the_token(api):
    assert api.get("/me").status_code == 200
    assert api.post("/auth/logout").status_code == 204
    error(api.get("/me"), 401, "unauthenticated")
    error(api.post("/auth/logout"), 401)


def test_a_password_change_ends_the_other_sessions(box):
    add_user(box)
    a = Api(box.https_port)
    first = a.token_for("alice", USER_PASSWORD)
    other = a.token_for("alice", USER_PASSWORD)
    error(a.put("/me/password", token=first, json={"current_password": "wrong", "new_password": "x"}), 403)
    error(a.put("/me/password", token=first, json={"current_password": USER_PASSWORD,
                                                   "new_password": "short"}), 400, "password_refused")
    r = a.put("/me/password", token=first, json={"current_password": USER_PASSWORD,
                                                 "new_password": "saffron-lighthouse-mosaic-77"})
    assert r.status_code == 200, r.text
    fresh = r.json()["token"]
    assert a.get("/me", token=fresh).status_code == 200
    error(a.get("/me", token=other), 401)
    error(a.get("/me", token=first), 401)
    error(a.login("alice", USER_PASSWORD), 401, "invalid_credentials")
    assert a.login("alice", "saffron-lighthouse-mosaic-77").status_code == 200


def test_totp_enrolment_over_the_api_ends_other_sessions_and_removal_needs_a_code(box):
    add_user(box)
    a = Api(box.https_port)
    token = a.token_for("alice", USER_PASSWORD)
    other = a.token_for("alice", USER_PASSWORD)
    r = a.post("/me/mfa/totp", token=token)
    assert r.status_code == 200, r.text
    start = r.json()
    assert start["otpauth_uri"].startswith("otpauth://totp/")
    assert "<svg" in start["qr_svg"]
    secret = start["secret"]
    assert f"secret={secret}" in start["otpauth_uri"]
    error(a.post("/me/mfa/totp/confirm", token=token, json={"code": "000000" if totp(secret) != "000000" else "111111"}), 400, "invalid_code")
    error(a.post("/me/mfa/totp/confirm", token=token, json={"code": 123456}), 400, "invalid")
    r = a.post("/me/mfa/totp/confirm", token=token, json={"code": fresh_code(secret)})
    assert r.status_code == 200, r.text
    codes = r.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    token = r.json()["token"]
    error(a.get("/me", token=other), 401)
    me = a.get("/me", token=token).json()
    assert me["mfa"]["enrolled"] is True
    error(a.login("alice", USER_PASSWORD), 401, "otp_required")
    # New recovery codes need a current code (here a recovery code) and
    # replace the old ones.
    error(a.post("/me/mfa/recovery-codes", token=token), 400, "invalid")
    r = a.post("/me/mfa/recovery-codes", token=token, json={"code": codes[9]})
    assert r.status_code == 200 and len(r.json()["recovery_codes"]) == 10
    error(a.login("alice", USER_PASSWORD, codes[0]), 401)
    codes = r.json()["recovery_codes"]
    # Removing it needs a code in the header.
    other = a.token_for("alice", USER_PASSWORD, codes[0])
    error(a.delete("/me/mfa", token=token), 400, "invalid")
    error(a.delete("/me/mfa", token=token, headers={"X-Coffer-OTP": "12"}), 400, "invalid_code")
    r = a.delete("/me/mfa", token=token, headers={"X-Coffer-OTP": codes[1]})
    assert r.status_code == 204, r.text
    error(a.get("/me", token=other), 401)
    assert a.login("alice", USER_PASSWORD).status_code == 200


def test_a_required_enrolment_is_the_only_way_in(box):
    add_user(box)
    box.cli("policy", "set", "mfa.required_for=user")
    a = Api(box.https_port)
    r = a.login("alice", USER_PASSWORD)
    assert r.status_code == 200 and r.json()["must_enrol"] is True, r.text
    pending = r.json()["token"]
    error(a.get("/me", token=pending), 403, "enrolment_required")
    error(a.get("/files", token=pending), 403, "enrolment_required")
    start = a.post("/me/mfa/totp", token=pending).json()
    r = a.post("/me/mfa/totp/confirm", token=pending, json={"code": fresh_code(start["secret"])})
    assert r.status_code == 200, r.text
    assert len(r.json()["recovery_codes"]) == 10
    granted = r.json()["token"]
    assert a.get("/me", token=granted).json()["mfa"]["enrolled"] is True
    error(a.get("/me", token=pending), 401)


def test_skipping_enrolment_keeps_the_session(box):
    add_user(box)
    a = Api(box.https_port)
    r = a.login("alice", USER_PASSWORD)
    assert r.json()["enrolment_offered"] is True
    token = r.json()["token"]
    assert a.post("/me/mfa/skip", token=token).status_code == 204
    me = a.get("/me", token=token)
    assert me.status_code == 200 and me.json()["mfa"]["skip"] is True
    assert a.login("alice", USER_PASSWORD).json()["enrolment_offered"] is False


# --- access tokens and sessions --------------------------------------------

def test_access_tokens_work_as_bearer_are_listed_without_values_and_revoke(box):
    add_user(box)
    a = Api(box.https_port)
    session = a.token_for("alice", USER_PASSWORD)
    r = a.post("/me/tokens", token=session, json={"label": "backup", "scope": ["https"]})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["token"].startswith("cft_") and made["label"] == "backup" and made["scope"] == ["https"]
    listed = a.get("/me/tokens", token=session).json()
    assert [t["id"] for t in listed] == [made["id"]]
    assert all("token" not in t for t in listed)
    assert made["token"] not in json.dumps(listed)
    me = a.get("/me", token=made["token"])
    assert me.status_code == 200 and me.json()["username"] == "alice", me.text
    # The token in place of the password logs in without a code; that
    # session manages no credentials, a password session does.
    secret, _ = box.enrol("alice")
    by_token = a.token_for("alice", made["token"])
    error(a.post("/me/tokens", token=by_token, json={"label": "more"}), 403, "token_cannot_manage_credentials")
    session = a.token_for("alice", USER_PASSWORD, fresh_code(secret))
    # SSH-only tokens do not open HTTPS.
    ssh_only = a.post("/me/tokens", token=session, json={"label": "sftp", "scope": ["ssh"]}).json()
    error(a.get("/me", token=ssh_only["token"]), 401, "unauthenticated")
    # Bad input.
    error(a.post("/me/tokens", token=session, json={"label": "x", "scope": ["gopher"]}), 400)
    error(a.post("/me/tokens", token=session, json={"label": "x", "expires_at": 1}), 400)
    error(a.post("/me/tokens", token=session, json={"label": "x", "expires_at": -1}), 400)
    error(a.post("/me/tokens", token=session, json={"label": "x", "expires_at": 10**30}), 400)
    error(a.post("/me/tokens", token=session, json={}), 400)
    # Revoked: 401 at once.
    assert a.delete(f"/me/tokens/{made['id']}", token=session).status_code == 204
    error(a.get("/me", token=made["token"]), 401, "unauthenticated")
    error(a.delete(f"/me/tokens/{made['id']}", token=session), 404)
    error(a.delete("/me/tokens/%FF%FE", token=session), 400)


def test_administrators_manage_other_accounts_tokens(api, box):
    add_user(box)
    add_user(box, "bob")
    r = api.post("/users/alice/tokens", json={"label": "rclone"})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["account"] == "alice"
    assert [t["id"] for t in api.get("/users/alice/tokens").json()] == [made["id"]]
    error(api.delete(f"/users/bob/tokens/{made['id']}"), 404)
    assert api.delete(f"/users/alice/tokens/{made['id']}").status_code == 204
    error(api.get("/me", token=made["token"]), 401)
    error(api.get("/users/nobody/tokens"), 404)


def test_sessions_are_listed_and_can_be_signed_out(box):
    a = Api(box.https_port)
    mine = a.token_for()
    other = a.token_for()
    listed = a.get("/me/sessions", token=mine).json()
    assert len(listed) == 2 and sum(s["current"] for s in listed) == 1
    victim = next(s["id"] for s in listed if not s["current"])
    assert a.delete(f"/me/sessions/{victim}", token=mine).status_code == 204
    error(a.get("/me", token=other), 401)
    error(a.delete(f"/me/sessions/{victim}", token=mine), 404)
    assert a.get("/me", token=mine).status_code == 200


# --- what an access token may not do, and proof for credential changes ----

def credential_routes(token_id="abcdef012345", session_id="abcdef012345"):
    """Every route that manages a credential of one's own."""
    return [
        ("POST", "/me/tokens", {"label": "forever"}),
        ("GET", "/me/tokens", None),
        ("DELETE", f"/me/tokens/{token_id}", None),
        ("POST", "/me/mfa/totp", None),
        ("POST", "/me/mfa/totp/confirm", {"code": "123456"}),
        ("POST", "/me/mfa/recovery-codes", {"code": "123456"}),
        ("DELETE", "/me/mfa", None),
        ("PUT", "/me/password", {"current_password": USER_PASSWORD, "new_password": "saffron-lighthouse-mosaic-77"}),
        ("GET", "/me/sessions", None),
        ("DELETE", f"/me/sessions/{session_id}", None),
    ]


def test_an_access_token_manages_no_credentials(box):
    """An https-only, one-day token cannot mint an unscoped, permanent one
    (nor touch TOTP, recovery codes, the password or sessions), as the
    bearer or as the password of a login."""
    add_user(box)
    secret, _ = box.enrol("alice")
    a = Api(box.https_port)
    session = a.token_for("alice", USER_PASSWORD, fresh_code(secret))
    r = a.post("/me/tokens", token=session,
               json={"label": "web, a day", "scope": ["https"], "expires_at": int(time.time()) + 86400})
    assert r.status_code == 201, r.text
    narrow = r.json()
    session_id = next(s["id"] for s in a.get("/me/sessions", token=session).json() if s["current"])
    by_login = a.token_for("alice", narrow["token"])
    for bearer in (narrow["token"], by_login):
        assert a.get("/me", token=bearer).status_code == 200
        for method, path, body in credential_routes(narrow["id"], session_id):
            kw = {"json": body} if body is not None else {}
            error(a.call(method, path, token=bearer, headers={"X-Coffer-OTP": "123456"}, **kw),
                  403, "token_cannot_manage_credentials")
    # Nothing changed: one token, the session alive, the same password.
    assert [t["id"] for t in a.get("/me/tokens", token=session).json()] == [narrow["id"]]
    assert a.get("/me", token=session).status_code == 200
    assert a.login("alice", USER_PASSWORD).status_code == 401  # otp_required, not a new password
    error(a.login("alice", "saffron-lighthouse-mosaic-77"), 401, "invalid_credentials")


def test_an_administrators_token_manages_no_credentials_of_others(box):
    add_user(box)
    owner = Api(box.https_port)
    token = owner.post("/me/tokens", token=owner.token_for(), json={"label": "automation"}).json()["token"]
    for method, path, body in (
        ("POST", "/users/alice/tokens", {"label": "x"}),
        ("GET", "/users/alice/tokens", None),
        ("DELETE", "/users/alice/mfa", None),
        ("PATCH", "/users/alice", {"password": "saffron-lighthouse-mosaic-77"}),
        ("PATCH", "/users/alice", {"public_keys": [ED25519]}),
    ):
        kw = {"json": body} if body is not None else {}
        error(owner.call(method, path, token=token, **kw), 403, "token_cannot_manage_credentials")
    # Account settings are no credential.
    r = owner.patch("/users/alice", token=token, json={"read_only": True})
    assert r.status_code == 200 and r.json()["read_only"] is True, r.text
    assert owner.get("/users/alice", token=token).json()["public_keys"] == []


def test_replacing_totp_needs_a_current_code_and_rotates_the_session(box):
    add_user(box)
    secret, recovery = box.enrol("alice")
    a = Api(box.https_port)
    login_code = fresh_code(secret)
    token = a.token_for("alice", USER_PASSWORD, login_code)
    other = a.token_for("alice", USER_PASSWORD, recovery[0])
    # Without a code, a wrong one, the one the login used: refused.
    error(a.post("/me/mfa/totp", token=token), 400, "invalid")
    wrong = "000000" if totp(secret, offset=1) != "000000" else "111111"
    error(a.post("/me/mfa/totp", token=token, json={"code": wrong}), 400, "invalid_code")
    error(a.post("/me/mfa/totp", token=token, json={"code": login_code}), 400, "invalid_code")
    error(a.post("/me/mfa/totp", token=token, json={"code": recovery[0]}), 400, "invalid_code")
    error(a.post("/me/mfa/totp", token=token, json={"code": 123456}), 400, "invalid")
    error(a.post("/me/mfa/totp", token=token, json={"code": "1", "extra": 1}), 400, "invalid")
    assert a.get("/me", token=other).status_code == 200
    # The next step's code proves it.
    r = a.post("/me/mfa/totp", token=token, json={"code": totp(secret, offset=1)})
    assert r.status_code == 200, r.text
    new_secret = r.json()["secret"]
    assert new_secret != secret
    # The old app works until the new one is confirmed.
    r = a.post("/me/mfa/totp/confirm", token=token, json={"code": fresh_code(new_secret)})
    assert r.status_code == 200, r.text
    assert {"recovery_codes", "token"} <= set(r.json())
    fresh = r.json()["token"]
    error(a.get("/me", token=token), 401)
    error(a.get("/me", token=other), 401)
    assert a.get("/me", token=fresh).status_code == 200
    error(a.login("alice", USER_PASSWORD, totp(secret, offset=1)), 401, "invalid_credentials")
    events = box.audit(user="alice")
    rejected = [e["detail"] for e in events if e["event"] in ("code_rejected", "code_replayed")]
    assert any("replace two-factor sign-in" in d for d in rejected), rejected
    assert any(e["event"] == "code_accepted" and "replace two-factor sign-in" in e["detail"] for e in events)
    # A recovery code of the new set proves a replacement too, once.
    codes = r.json()["recovery_codes"]
    r = a.post("/me/mfa/totp", token=fresh, json={"code": codes[0]})
    assert r.status_code == 200, r.text
    error(a.post("/me/mfa/totp", token=fresh, json={"code": codes[0]}), 400, "invalid_code")


def test_wrong_current_passwords_are_counted_audited_and_lock(box):
    add_user(box)
    a = Api(box.https_port)
    token = a.token_for("alice", USER_PASSWORD)
    for _ in range(5):
        error(a.put("/me/password", token=token,
                    json={"current_password": "guess", "new_password": "saffron-lighthouse-mosaic-77"}), 403)
    r = a.put("/me/password", token=token,
              json={"current_password": USER_PASSWORD, "new_password": "saffron-lighthouse-mosaic-77"})
    error(r, 429, "locked")
    assert int(r.headers["Retry-After"]) > 0
    # The login's lock: this address cannot log in either.
    error(a.login("alice", USER_PASSWORD), 401, "locked")
    events = box.audit(user="alice")
    failed = [e for e in events if e["event"] == "login_failed"]
    assert len(failed) == 5 and all("wrong current password" in e["detail"] for e in failed), failed
    assert all(e["address"] == "127.0.0.1" and e["method"] == "password" for e in failed), failed
    assert any(e["event"] == "account_locked" for e in events)
    assert any(e["event"] == "login_while_locked" for e in events)
    box.cli("unlock", "alice")
    r = a.put("/me/password", token=token,
              json={"current_password": USER_PASSWORD, "new_password": "saffron-lighthouse-mosaic-77"})
    assert r.status_code == 200, r.text


def test_wrong_codes_when_removing_mfa_are_counted_audited_and_lock(box):
    add_user(box)
    secret, recovery = box.enrol("alice")
    a = Api(box.https_port)
    token = a.token_for("alice", USER_PASSWORD, fresh_code(secret))
    for _ in range(5):
        error(a.delete("/me/mfa", token=token, headers={"X-Coffer-OTP": "aaaa-bbbb-cccc-dddd"}), 400, "invalid_code")
    r = a.delete("/me/mfa", token=token, headers={"X-Coffer-OTP": recovery[1]})
    error(r, 429, "locked")
    rejected = [e for e in box.audit(user="alice", event="code_rejected")]
    assert len(rejected) == 5 and all("remove two-factor sign-in" in e["detail"] for e in rejected), rejected
    assert box.audit(user="alice", event="account_locked")
    assert a.get("/me", token=token).json()["mfa"]["enrolled"] is True


# --- administration --------------------------------------------------------

ADMIN_ROUTES = [
    ("GET", "/users", None), ("POST", "/users", {"username": "mallory"}),
    ("GET", "/users/owner", None), ("PATCH", "/users/owner", {"disabled": True}),
    ("DELETE", "/users/owner", None), ("DELETE", "/users/owner/mfa", None),
    ("POST", "/users/owner/unlock", None), ("GET", "/users/owner/tokens", None),
    ("POST", "/users/owner/tokens", {"label": "x"}), ("DELETE", "/users/owner/tokens/abc", None),
    ("GET", "/groups", None), ("POST", "/groups", {"name": "g"}), ("GET", "/groups/g", None),
    ("PATCH", "/groups/g", {"enabled": False}), ("DELETE", "/groups/g", None),
    ("GET", "/policy", None), ("PUT", "/policy", {}), ("GET", "/audit", None), ("GET", "/system", None),
    ("PUT", "/system/certificate", {"certificate": "x", "private_key": "y"}),
]


def test_a_user_is_refused_every_administrator_route(box):
    add_user(box)
    box.cli("group", "add", "g")
    a = Api(box.https_port)
    a.token = a.token_for("alice", USER_PASSWORD)
    for method, path, body in ADMIN_ROUTES:
        r = a.call(method, path, json=body)
        error(r, 403)
    # Their own account and tokens are theirs to see.
    assert a.get("/users/alice").json()["username"] == "alice"
    assert a.get("/users/alice/tokens").status_code == 200
    # An admin (not the owner) may not reach the owner's settings.
    add_user(box, "adam", "admin")
    adam = Api(box.https_port, Api(box.https_port).token_for("adam", USER_PASSWORD))
    error(adam.get("/system"), 403)
    error(adam.put("/policy", json=adam.get("/policy").json()), 403)
    error(adam.post("/users", json={"username": "root2", "role": "system_admin", "password": USER_PASSWORD}), 403)
    assert adam.get("/users").status_code == 200


def test_users_can_be_created_listed_changed_and_removed(api, box):
    r = api.post("/users", json={"username": "alice", "password": USER_PASSWORD, "role": "user",
                                 "public_keys": [ED25519]})
    assert r.status_code == 201, r.text
    alice = r.json()
    assert alice["username"] == "alice" and alice["role"] == "user" and alice["group"] is None
    assert alice["disabled"] is False and alice["public_keys"] == [ED25519]
    assert alice["mfa"]["enrolled"] is False and alice["mfa"]["exempt"] is False
    assert "name" not in alice
    error(api.post("/users", json={"username": "alice", "password": USER_PASSWORD}), 409, "exists")
    error(api.post("/users", json={"username": "bob", "password": "password"}), 400, "password_refused")
    error(api.post("/users", json={"username": "bob", "role": "king"}), 400)
    error(api.post("/users", json={"username": "bob", "nickname": "b"}), 400)
    error(api.post("/users", json={"username": "bad name"}), 400)
    error(api.post("/users", json={"username": "bob", "public_keys": ["ssh-ed25519 garbage"]}), 400)
    error(api.post("/users", json={"username": "bob", "group": "nogroup"}), 404)
    assert api.get("/users/bob").status_code == 404
    listed = api.get("/users").json()
    assert isinstance(listed, list) and {u["username"] for u in listed} == {OWNER, "alice"}
    assert api.get("/users/alice").json() == listed[[u["username"] for u in listed].index("alice")]
    # PATCH takes any subset.
    r = api.patch("/users/alice", json={"disabled": True, "mfa": {"exempt": True}})
    assert r.status_code == 200, r.text
    assert r.json()["disabled"] is True and r.json()["mfa"]["exempt"] is True
    error(Api(box.https_port).login("alice", USER_PASSWORD), 401)
    r = api.patch("/users/alice", json={"disabled": False, "public_keys": [], "ip_allow": ["127.0.0.0/8"]})
    assert r.json()["public_keys"] == [] and r.json()["ip_allow"] == ["127.0.0.0/8"]
    for bad in ({}, {"disabled": None}, {"disabled": "yes"}, {"ip_allow": ["not-a-net"]},
                {"username": ".alicia"}, {"mfa": [True]}, {"role": "king"}, [None, None]):
        error(api.patch("/users/alice", json=bad), 400)
    assert api.get("/users/alice").json()["disabled"] is False
    error(api.patch("/users/nobody", json={"disabled": True}), 404)
    error(api.patch(f"/users/{OWNER}", json={"disabled": True}), 403)
    # MFA reset by an administrator.
    box.enrol("alice")
    assert api.get("/users/alice").json()["mfa"]["enrolled"] is True
    assert api.delete("/users/alice/mfa").status_code == 204
    assert api.get("/users/alice").json()["mfa"]["enrolled"] is False
    error(api.delete("/users/alice/mfa"), 400)
    error(api.delete(f"/users/{OWNER}/mfa"), 400)
    assert api.delete("/users/alice").status_code == 204
    error(api.get("/users/alice"), 404)
    error(api.delete("/users/alice"), 404)
    error(api.delete(f"/users/{OWNER}"), 403)
    error(api.get("/users/%FF"), 400)
    events = {e["event"] for e in box.audit()}
    assert {"account_created", "account_disabled", "mfa_reset", "account_removed"} <= events


def test_groups_can_be_created_listed_changed_and_removed(api, box):
    r = api.post("/groups", json={"name": "staff", "home_template": "staff/${USER}", "read_only": True})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "staff" and r.json()["read_only"] is True and r.json()["enabled"] is True
    error(api.post("/groups", json={"name": "staff"}), 409)
    error(api.post("/groups", json={"name": "x", "home_template": "/abs"}), 400)
    error(api.post("/groups", json={"name": "x", "no_delete": None}), 400)
    error(api.post("/groups", json={"name": "x", "color": "red"}), 400)
    assert [g["name"] for g in api.get("/groups").json()] == ["staff"]
    r = api.patch("/groups/staff", json={"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False and r.json()["read_only"] is True
    error(api.patch("/groups/staff", json={}), 400)
    error(api.patch("/groups/none", json={"enabled": True}), 404)
    api.post("/users", json={"username": "alice", "password": USER_PASSWORD, "group": "staff"})
    assert api.get("/users/alice").json()["home_folder"] == "staff/alice"
    error(api.delete("/groups/staff"), 403)
    api.patch("/users/alice", json={"group": None})
    assert api.delete("/groups/staff").status_code == 204
    error(api.get("/groups/staff"), 404)
    # The administrator's own session survived every group change.
    assert api.get("/me").status_code == 200


def test_policy_is_read_and_replaced_all_or_nothing(api):
    policy = api.get("/policy").json()
    assert policy["lockout"]["max_failures"] == 5
    changed = json.loads(json.dumps(policy))
    changed["lockout"]["max_failures"] = 7
    changed["mfa"]["required_for"] = ["admin"]
    r = api.put("/policy", json=changed)
    assert r.status_code == 200, r.text
    assert r.json()["lockout"]["max_failures"] == 7 and r.json()["mfa"]["required_for"] == ["admin"]
    for mutate in (
        lambda p: p["password"].update(min_length=3),
        lambda p: p["lockout"].update(max_failures=7, window=1),
        lambda p: p["totp"][0].update(digits=8),
        lambda p: p["totp"][0].update(issuer="a,algorithm=sha512"),
        lambda p: p.update(totp=[]),
        lambda p: p.update(extra=1),
        lambda p: p.update(mfa=[True, [], [], True]),
        lambda p: p["lockout"].update(max_failures=2**70),
        lambda p: p.update(audit_retain="many"),
    ):
        bad = json.loads(json.dumps(changed))
        bad["lockout"]["max_failures"] = 9
        mutate(bad)
        error(api.put("/policy", json=bad), 400)
    assert api.get("/policy").json() == r.json()


def test_audit_and_system(api, box):
    api.login(OWNER, "wrong")
    events = api.get("/audit?limit=5").json()
    assert 1 <= len(events) <= 5
    assert {"seq", "at", "id", "event", "account", "address", "protocol", "method", "detail"} <= set(events[0])
    failed = api.get("/audit", params={"event": "login_failed"}).json()
    assert failed and all(e["event"] == "login_failed" and e["id"] == 1001 for e in failed)
    assert all(e["account"] == OWNER for e in api.get("/audit", params={"account": OWNER}).json())
    for q in ("event=bogus", "limit=0", "limit=abc", "limit=99999999999999999999999", "since=-1", "colour=red"):
        error(api.get("/audit?" + q), 400)
    system = api.get("/system").json()
    assert system["version"] and system["claimed"] is True and system["tpm"] is False
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", system["certificate"]["fingerprint"])
    error(api.put("/system/certificate", json={"certificate": "nope", "private_key": "nope"}), 400)
    health = api.get("/health", token="").json()
    assert health == {"status": "ok", "claimed": True, "version": system["version"]}
    doc = api.get("/openapi.json", token="").json()
    assert doc["openapi"] == "3.1.0" and "/auth/login" in doc["paths"]


# --- bad input never fails the server --------------------------------------

def test_malformed_bodies_and_requests_answer_json_errors_never_500(api):
    raw = [
        (b"{", "application/json", 400), (b"", "application/json", 400), (b"[]", "application/json", 400),
        (b"null", "application/json", 400), (b'"text"', "application/json", 400),
        (b'{"username": 1, "password": true}', "application/json", 400),
        (b'{"username": "a", "password": "b", "extra": 1}', "application/json", 400),
        (b'{"username": "\xff\xfe", "password": "b"}', "application/json", 400),
        (b'{"username": "a", "password": "b"}', "text/plain", 415),
        (b'{"username": "a", "password": "b"}', None, 415),
        (b'{"username": "a", "password": "' + b"x" * (100 * 1024) + b'"}', "application/json", 413),
        (b'{"a":' * 10000, "application/json", 400),
    ]
    for body, ctype, status in raw:
        headers = {"Content-Type": ctype} if ctype else {}
        for path in ("/auth/login", "/users", "/me/tokens", "/groups", "/files/mkdir", "/files/rename"):
            r = api.post(path, data=body, headers=headers)
            error(r, status)
    for method, path in (("PATCH", "/users/owner"), ("PUT", "/policy"), ("PUT", "/me/password"),
                         ("POST", "/me/mfa/totp/confirm"), ("PUT", "/system/certificate")):
        error(api.call(method, path, data=b"{not json", headers={"Content-Type": "application/json"}), 400)
        error(api.call(method, path, json={"unknown_field": 1}), 400)
    # Routes and methods that do not exist.
    r = api.patch("/me")
    error(r, 405, "method_not_allowed")
    assert "GET" in r.headers["Allow"]
    error(api.get("/no/such/route"), 404, "not_found")
    error(api.get("/files?path=%FF"), 404)
    error(api.get("/files?recursive=maybe"), 400)
    error(api.get("/files?path=/&path=/x"), 400)
    # Huge and odd headers are refused without a server error.
    r = api.get("/me", headers={"X-Filler": "a" * 70000})
    assert r.status_code < 500 or r.status_code == 431
    assert api.get("/me").status_code == 200


# --- files -----------------------------------------------------------------

def test_a_multi_mib_upload_and_download_round_trip(api, box):
    blob = os.urandom(5 * 1024 * 1024 + 123)
    r = api.put("/files/content", params={"path": "/big.bin"}, data=blob,
                headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    assert r.json() == {"path": "/big.bin", "size": len(blob)}
    r = api.get("/files/content", params={"path": "big.bin"})
    assert r.status_code == 200 and r.content == blob
    assert r.headers["Content-Length"] == str(len(blob))
    assert 'filename="big.bin"' in r.headers["Content-Disposition"]
    error(api.put("/files/content", params={"path": "/big.bin"}, data=b"x"), 409, "exists")
    assert api.put("/files/content", params={"path": "/big.bin", "overwrite": "true"}, data=b"x").status_code == 201
    assert api.get("/files/content", params={"path": "/big.bin"}).content == b"x"
    assert api.post("/files/mkdir", json={"path": "/docs/2026"}).status_code in (201, 404)
    assert api.post("/files/mkdir", json={"path": "/docs"}).status_code == 201
    error(api.post("/files/mkdir", json={"path": "/docs"}), 409)
    r = api.post("/files/rename", json={"from": "/big.bin", "to": "/docs/small.bin"})
    assert r.status_code == 200 and r.json() == {"path": "/docs/small.bin"}
    listing = api.get("/files", params={"path": "/docs"}).json()
    assert [(e["name"], e["type"], e["size"]) for e in listing["entries"]] == [("small.bin", "file", 1)]
    assert (box.data / "files" / OWNER / "docs" / "small.bin").read_bytes() == b"x"
    error(api.get("/files/content", params={"path": "/missing"}), 404)
    error(api.get("/files/content"), 400)
    error(api.get("/files/content", params={"path": "/"}), 400)
    error(api.delete("/files", params={"path": "/docs"}), 409)
    assert api.delete("/files", params={"path": "/docs", "recursive": "true"}).status_code == 204
    assert api.get("/files").json()["entries"] == []
    error(api.delete("/files", params={"path": "/"}), 403)


def test_paths_stay_inside_the_home(api, box, tmp_path):
    home = box.data / "files" / OWNER
    api.get("/files")  # creates the home
    assert home.is_dir()
    (home / "to-etc").symlink_to("/etc")
    (home / "passwd").symlink_to("/etc/passwd")
    (home / "up").symlink_to("../../..")
    for path in ("../../etc/passwd", "/../../../../etc/passwd", "/etc/passwd", "/passwd", "/to-etc/passwd",
                 "/up/pw", "..%2F..%2Fetc%2Fpasswd"):
        r = api.get("/files/content", params={"path": path})
        assert r.status_code in (400, 403, 404), (path, r.status_code)
        assert b"root:" not in r.content
    error(api.get("/files", params={"path": "/to-etc"}), 403)
    for path in ("../../escape.txt", "/to-etc/escape.txt", "/up/escape.txt"):
        r = api.put("/files/content", params={"path": path}, data=b"escape")
        assert r.status_code in (201, 403, 404), (path, r.status_code, r.text)
    assert not (tmp_path / "escape.txt").exists() and not (box.data / "escape.txt").exists()
    assert not pathlib.Path("/etc/escape.txt").exists()
    assert (home / "escape.txt").read_bytes() == b"escape"  # '..' stops at the home
    r = api.post("/files/rename", json={"from": "/escape.txt", "to": "/up/escaped.txt"})
    assert r.status_code in (403, 404), r.text
    assert not (box.data / "escaped.txt").exists()


def test_an_interrupted_upload_leaves_no_file_under_the_real_name(api, box):
    home = box.data / "files" / OWNER
    api.get("/files")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", box.https_port)) as raw:
        with ctx.wrap_socket(raw) as tls:
            tls.sendall((
                "PUT /api/v1/files/content?path=/partial.bin HTTP/1.1\r\n"
                "Host: 127.0.0.1\r\n"
                f"Authorization: Bearer {api.token}\r\n"
                "Content-Type: application/octet-stream\r\n"
                f"Content-Length: {8 * 1024 * 1024}\r\n\r\n").encode())
            tls.sendall(os.urandom(1024 * 1024))
            time.sleep(0.5)
    deadline = time.time() + 10
    while time.time() < deadline and any(home.iterdir()):
        time.sleep(0.2)
    assert not (home / "partial.bin").exists()
    assert list(home.iterdir()) == [], "the temporary file was not removed"
    assert "partial.bin" not in [e["name"] for e in api.get("/files").json()["entries"]]


# --- the claim ---------------------------------------------------------------

def test_the_claim_refuses_a_wrong_code_and_dies_after_the_claim(tmp_path):
    config = tmp_path / "coffer.toml"
    config.write_text("version = 1\n" + service_section())
    log = open(tmp_path / "serve.log", "wb")
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [COFFER, "--data-dir", str(data), "--seal", "keyfile", "serve", "--config", str(config),
         "--sftp-listen", "127.0.0.1:0", "--https-listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=log)
    try:
        line = proc.stdout.readline().decode()
        assert line.startswith("ready: "), line
        port = int(line.split()[4].rsplit(":", 1)[1])
        text = (tmp_path / "serve.log").read_text(errors="replace")
        code = re.search(r"claim code ([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})", text).group(1)
        a = Api(port)
        assert a.get("/health").json()["claimed"] is False
        body = {"claim_code": "AAAA-BBBB-CCCC", "username": "owner", "password": PASSWORD}
        error(a.post("/claim", json=body), 403, "forbidden")
        error(a.post("/claim", json={**body, "claim_code": code, "password": "weak"}), 400, "password_refused")
        error(a.post("/claim", json={"claim_code": code}), 400)
        r = a.post("/claim", json={**body, "claim_code": code.lower()})
        assert r.status_code == 201 and r.json() == {"username": "owner", "role": "system_admin"}, r.text
        error(a.post("/claim", json={**body, "claim_code": code}), 409, "already_claimed")
        assert a.get("/health").json()["claimed"] is True
        assert a.login("owner", PASSWORD).status_code == 200
        refused = a.get("/audit", token=a.token_for("owner", PASSWORD), params={"event": "claim_refused"}).json()
        assert len(refused) == 1 and refused[0]["address"] == "127.0.0.1"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
