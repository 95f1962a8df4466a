"""Web security of the browser pages, over TLS without a browser: cookie
flags, CSRF, session fixation, security headers, logout, and a password
change ending the other sessions."""

import re
import warnings

import pytest
import requests

from conftest import OWNER, PASSWORD, fresh_code

NEW_PASSWORD = "another-long-passphrase-for-tests-42"
COOKIE = "__Host-coffer"


@pytest.fixture(autouse=True)
def quiet_tls():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


class Browser:
    """A cookie jar of one: the session cookie, sent by hand."""

    def __init__(self, box):
        self.base = box.url
        self.cookie = None
        self.http = requests.Session()
        self.http.verify = False
        self.http.trust_env = False  # no CA bundle or proxy from the environment

    def request(self, method, path, data=None, cookie=None):
        headers = {}
        value = cookie if cookie is not None else self.cookie
        if value:
            headers["Cookie"] = f"{COOKIE}={value}"
        r = self.http.request(method, self.base + path, data=data, headers=headers,
                              allow_redirects=False, timeout=30)
        self.http.cookies.clear()
        set_cookie = r.headers.get("Set-Cookie")
        if set_cookie and cookie is None:
            m = re.match(rf"{COOKIE}=([^;]*)", set_cookie)
            if m:
                self.cookie = m.group(1) or None
        return r

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, data, **kw):
        return self.request("POST", path, data=data, **kw)

    def csrf(self, path):
        page = self.get(path).text
        m = re.search(r'name="csrf" value="([^"]+)"', page)
        assert m, f"no CSRF field on {path}"
        return m.group(1)

    def login(self, user=OWNER, password=PASSWORD):
        token = self.csrf("/login")
        r = self.post("/login", {"csrf": token, "username": user, "password": password})
        assert r.status_code == 303, r.text
        return r


def test_cookie_flags(box):
    b = Browser(box)
    r = b.get("/login")
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    parts = [p.strip().lower() for p in cookie.split(";")]
    assert "secure" in parts and "httponly" in parts and "samesite=strict" in parts and "path=/" in parts
    assert not any(p.startswith("domain") for p in parts)
    r = b.login()
    parts = [p.strip().lower() for p in r.headers["Set-Cookie"].split(";")]
    assert {"secure", "httponly", "samesite=strict", "path=/"} <= set(parts)


def test_security_headers_on_pages_and_assets(box):
    b = Browser(box)
    for path in ("/login", "/assets/style.css", "/assets/app.js", "/files", "/api", "/nowhere"):
        h = b.get(path).headers
        csp = h["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert h["X-Frame-Options"] == "DENY"
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["Referrer-Policy"] == "no-referrer"
        assert h["Strict-Transport-Security"].startswith("max-age=")
    # No inline script or style on a page.
    page = b.get("/login").text
    assert "<script>" not in page and "style=" not in page and "<style" not in page


def test_csrf_is_checked_on_every_form(box):
    b = Browser(box)
    token = b.csrf("/login")
    # Without a token, with a wrong one: 403, and no login happens.
    for fields in ({}, {"csrf": "wrong"}, {"csrf": token + "x"}):
        r = b.post("/login", {**fields, "username": OWNER, "password": PASSWORD})
        assert r.status_code == 403 and "security token" in r.text
        assert "Set-Cookie" not in r.headers
    # Without any session at all.
    r = b.post("/login", {"csrf": token, "username": OWNER, "password": PASSWORD}, cookie="")
    assert r.status_code == 403
    b.login()
    page_token = b.csrf("/files")
    for fields in ({}, {"csrf": "wrong"}):
        r = b.post("/files/mkdir", {**fields, "dir": "/", "name": "evil"})
        assert r.status_code == 403
        r = b.post("/logout", fields)
        assert r.status_code == 403
    assert "evil" not in b.get("/files").text
    assert b.get("/files").status_code == 200
    r = b.post("/files/mkdir", {"csrf": page_token, "dir": "/", "name": "fine"})
    assert r.status_code == 303
    assert "fine" in b.get("/files").text
    # The API with the cookie needs the header on changes.
    r = b.http.post(box.url + "/api/v1/files/mkdir", json={"path": "/evil2"},
                    headers={"Cookie": f"{COOKIE}={b.cookie}"})
    assert r.status_code == 403 and r.json()["error"] == "csrf"
    r = b.http.post(box.url + "/api/v1/files/mkdir", json={"path": "/ok2"},
                    headers={"Cookie": f"{COOKIE}={b.cookie}", "X-CSRF-Token": page_token})
    assert r.status_code == 201


def test_no_session_fixation(box):
    b = Browser(box)
    b.get("/login")
    before = b.cookie
    assert before
    b.login()
    after = b.cookie
    assert after and after != before
    # The value from before the login is dead.
    r = b.get("/files", cookie=before)
    assert r.status_code == 303 and r.headers["Location"].startswith("/login")
    assert b.get("/files").status_code == 200


def test_code_step_rotates_too(box):
    secret, _ = box.enrol(OWNER)
    b = Browser(box)
    b.get("/login")
    first = b.cookie
    b.login()
    waiting = b.cookie
    assert waiting != first
    assert b.get("/login/code").status_code == 200
    import time
    from web import next_code
    # `enrol` confirmed with the previous step's code.
    _, code = next_code(secret, int(time.time()) // 30 - 1)
    token = b.csrf("/login/code")
    r = b.post("/login/code", {"csrf": token, "code": code})
    assert r.status_code == 303 and r.headers["Location"] == "/files"
    assert b.cookie not in (first, waiting)
    assert b.get("/files", cookie=waiting).status_code == 303


def test_logout_ends_the_session(box):
    b = Browser(box)
    b.login()
    value = b.cookie
    token = b.csrf("/files")
    r = b.post("/logout", {"csrf": token})
    assert r.status_code == 303 and r.headers["Location"].startswith("/login")
    assert "Max-Age=0" in r.headers["Set-Cookie"]
    r = b.get("/files", cookie=value)
    assert r.status_code == 303 and r.headers["Location"] == "/login"
    r = b.http.get(box.url + "/api/v1/me", headers={"Cookie": f"{COOKIE}={value}"})
    assert r.status_code == 401


def test_password_change_ends_other_sessions(box):
    one, two = Browser(box), Browser(box)
    one.login()
    two.login()
    old_one = one.cookie
    token = one.csrf("/security")
    r = one.post("/security/password", {
        "csrf": token, "current_password": PASSWORD,
        "new_password": NEW_PASSWORD, "new_password2": NEW_PASSWORD,
    })
    assert r.status_code == 303, r.text
    # This browser continues under a new value; the old one and the other
    # session are dead.
    assert one.cookie != old_one
    page = one.get("/security")
    assert page.status_code == 200 and "password was changed" in page.text
    assert one.get("/files", cookie=old_one).status_code == 303
    assert two.get("/files").status_code == 303
    fresh = Browser(box)
    fresh.login(password=NEW_PASSWORD)
    assert fresh.get("/files").status_code == 200


def test_admin_pages_refuse_users_and_the_wizard_is_gone(box):
    box.add_user("erin", "user", "violet-harbour-lantern-73")
    box.cli("policy", "set", "mfa.allowed=false")
    b = Browser(box)
    b.login("erin", "violet-harbour-lantern-73")
    for path in ("/admin/users", "/admin/users/owner", "/admin/groups", "/admin/policy",
                 "/admin/audit", "/admin/system"):
        assert b.get(path).status_code == 403, path
    token = b.csrf("/files")
    r = b.post("/admin/users", {"csrf": token, "username": "mallory", "role": "admin", "password": PASSWORD})
    assert r.status_code == 403
    assert "mallory" not in box.cli("user", "list").stdout
    # A claimed box has no wizard.
    r = Browser(box).get("/setup")
    assert r.status_code == 303 and r.headers["Location"] == "/login"


def test_an_api_enrolment_with_the_cookie_rotates_the_cookie_not_the_body(box):
    """A browser session that confirms TOTP through the API keeps going under
    a new cookie value; the old value ends and no value is in the body."""
    b = Browser(box)
    b.login()
    old = b.cookie
    page_token = b.csrf("/files")
    headers = {"Cookie": f"{COOKIE}={old}", "X-CSRF-Token": page_token}
    r = b.http.post(box.url + "/api/v1/me/mfa/totp", headers=headers)
    assert r.status_code == 200, r.text
    code = fresh_code(r.json()["secret"])
    r = b.http.post(box.url + "/api/v1/me/mfa/totp/confirm", json={"code": code}, headers=headers)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"recovery_codes"}
    new = re.match(rf"{COOKIE}=([^;]+)", r.headers["Set-Cookie"]).group(1)
    assert new != old and "HttpOnly" in r.headers["Set-Cookie"]
    b.http.cookies.clear()
    assert b.http.get(box.url + "/api/v1/me", headers={"Cookie": f"{COOKIE}={new}"}).status_code == 200
    assert b.http.get(box.url + "/api/v1/me", headers={"Cookie": f"{COOKIE}={old}"}).status_code == 401


def test_wrong_current_passwords_on_the_security_page_lock_like_logins(box):
    b = Browser(box)
    b.login()
    token = b.csrf("/security")
    change = {"csrf": token, "new_password": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    for _ in range(5):
        r = b.post("/security/password", {**change, "current_password": "a wrong guess"})
        assert r.status_code == 400 and "current password is not correct" in r.text
    r = b.post("/security/password", {**change, "current_password": PASSWORD})
    assert r.status_code == 400 and "Too many failed attempts" in r.text
    failed = box.audit(user=OWNER, event="login_failed")
    assert len(failed) == 5 and all("wrong current password" in e["detail"] for e in failed), failed
    assert box.audit(user=OWNER, event="account_locked")
    # The password did not change, and this address cannot log in now.
    r = Browser(box)
    t = r.csrf("/login")
    page = r.post("/login", {"csrf": t, "username": OWNER, "password": PASSWORD})
    assert "Too many failed attempts" in page.text
