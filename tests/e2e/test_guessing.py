"""Guessing through the front doors: a second factor guessed from many
addresses, account names probed through the lockout and the user routes,
and address-wide locks that an administrator must be able to clear.

Attackers and the owner come from distinct loopback addresses (127.0.0.2,
127.0.0.3, ... are other hosts); the server listens on 127.0.0.1."""

import statistics
import time

import paramiko
import pytest
import requests
import urllib3
from requests.adapters import HTTPAdapter

from conftest import OWNER, PASSWORD, fresh_code, skip_second_service_request, totp

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


class SourceAdapter(HTTPAdapter):
    """Connections that leave from one local address."""

    def __init__(self, source):
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args, **kw):
        kw["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kw)


def client(box, source):
    s = requests.Session()
    s.verify = False
    s.trust_env = False  # no CA bundle or proxy from the environment
    s.mount("https://", SourceAdapter(source))
    s.base = f"https://127.0.0.1:{box.https_port}/api/v1"
    return s


def login(box, source, username, password, code=None):
    body = {"username": username, "password": password}
    if code is not None:
        body["code"] = code
    c = client(box, source)
    r = c.post(c.base + "/auth/login", json=body, timeout=60)
    c.close()
    return r


def answer(r):
    """What a prober sees: the status and the error code."""
    return r.status_code, r.json().get("error")


def token(box, source, username=OWNER, password=PASSWORD, code=None):
    r = login(box, source, username, password, code)
    assert r.status_code == 200, r.text
    return r.json()["token"]


def ssh_code_login(box, source, username, password, code):
    """Keyboard-interactive over SSH from `source`: True when granted."""
    import socket
    sock = socket.create_connection(("127.0.0.1", box.port), timeout=30, source_address=(source, 0))
    t = paramiko.Transport(sock)
    try:
        t.start_client(timeout=30)

        def handler(title, instructions, prompts):
            return [password if "Password" in p else code for p, _ in prompts]

        try:
            t.auth_interactive(username, handler)
        except paramiko.AuthenticationException:
            return False
        return t.is_authenticated()
    finally:
        t.close()


def test_wrong_codes_spread_over_many_addresses_lock_code_entry_of_the_account(box):
    box.add_user("bob")
    secret, recovery = box.enrol("bob")
    # Ten wrong codes, each from its own address (no address comes near its
    # own limit), over REST and SSH alike.
    for i in range(10):
        source = f"127.0.7.{i + 2}"
        if i % 2:
            assert not ssh_code_login(box, source, "bob", PASSWORD, "000000")
        else:
            r = login(box, source, "bob", PASSWORD, "000000")
            assert answer(r) == (401, "invalid_credentials"), r.text
    events = [e["event"] for e in box.audit(user="bob")]
    assert "code_entry_locked" in events, events
    # Now the right code is not even looked at, from a fresh address, and
    # neither is a recovery code; the answer says locked.
    r = login(box, "127.0.7.100", "bob", PASSWORD, fresh_code(secret))
    assert answer(r) == (401, "locked"), r.text
    assert int(r.headers["Retry-After"]) > 800
    assert answer(login(box, "127.0.7.101", "bob", PASSWORD, recovery[0])) == (401, "locked")
    assert not ssh_code_login(box, "127.0.7.102", "bob", PASSWORD, totp(secret))
    # Without the password the lock is never reached: a wrong password is
    # answered as before.
    assert answer(login(box, "127.0.7.103", "bob", "wrong password")) == (401, "invalid_credentials")
    # The owner sees it: the command line, REST and the dashboard.
    shown = box.cli("user", "show", "bob").stdout
    assert "locked:      code entry from every address" in shown, shown
    assert "code entry of bob" in box.cli("status").stdout
    owner = client(box, "127.0.0.1")
    h = {"Authorization": "Bearer " + token(box, "127.0.0.1")}
    locks = owner.get(owner.base + "/locks", headers=h, timeout=60).json()
    assert [l["username"] for l in locks["code_entry"]] == ["bob"], locks
    assert owner.get(owner.base + "/users/bob", headers=h, timeout=60).json()["code_entry_locked_until"] > time.time()
    # `coffer unlock NAME` clears it.
    box.cli("unlock", "bob")
    r = login(box, "127.0.7.104", "bob", PASSWORD, recovery[1])
    assert r.status_code == 200, r.text


def test_the_dashboard_shows_locks_and_unlocks_them(box):
    from test_web_security import Browser
    box.add_user("bob")
    box.enrol("bob")
    for i in range(10):
        login(box, f"127.0.8.{i + 2}", "bob", PASSWORD, "000000")
    for i in range(20):
        login(box, "127.0.8.50", f"guess{i}", "123456")
    b = Browser(box)
    b.login()
    page = b.get("/admin/users").text
    assert 'id="locks"' in page, page
    assert "Code entry for <strong>bob</strong> is locked" in page, page
    assert "The address <code>127.0.8.50</code> is locked for every account" in page, page
    r = b.post("/admin/locks", {"csrf": b.csrf("/admin/users"), "address": "127.0.8.50"})
    assert r.status_code == 303, r.text
    r = b.post("/admin/users/bob", {"csrf": b.csrf("/admin/users"), "action": "unlock"})
    assert r.status_code == 303, r.text
    assert 'id="locks"' not in b.get("/admin/users").text
    assert login(box, "127.0.8.50", OWNER, PASSWORD).status_code == 200


def test_an_unknown_name_is_answered_like_a_real_one_through_the_lockout(box):
    real = [answer(login(box, "127.0.9.2", OWNER, "wrong password")) for _ in range(7)]
    ghost = [answer(login(box, "127.0.9.3", "no-such-user", "wrong password")) for _ in range(7)]
    assert real == ghost, (real, ghost)
    assert real[4] == (401, "invalid_credentials") and real[5] == (401, "locked"), real


def test_users_are_refused_alike_for_any_other_name(box):
    box.add_user("bob")
    c = client(box, "127.0.0.1")
    h = {"Authorization": "Bearer " + token(box, "127.0.0.1", "bob")}
    existing = c.get(c.base + "/users/" + OWNER, headers=h, timeout=60)
    unknown = c.get(c.base + "/users/no-such-user", headers=h, timeout=60)
    assert existing.status_code == unknown.status_code == 403, (existing.text, unknown.text)
    assert existing.json() == unknown.json()
    for path in ["/users/%s/unlock", "/users/%s/tokens"]:
        a = c.post(c.base + path % OWNER, headers=h, timeout=60) if "unlock" in path else c.get(c.base + path % OWNER, headers=h, timeout=60)
        b = c.post(c.base + path % "no-such-user", headers=h, timeout=60) if "unlock" in path else c.get(c.base + path % "no-such-user", headers=h, timeout=60)
        assert (a.status_code, a.json()) == (b.status_code, b.json()), (path, a.text, b.text)
    # Themselves they still see.
    assert c.get(c.base + "/users/bob", headers=h, timeout=60).status_code == 200


def test_unknown_names_and_wrong_passwords_take_the_same_time(box):
    box.add_user("bob")
    samples = {"real": [], "unknown": []}
    # One attempt per address, alternating, so no lock and no rate limit
    # gets in the way, and a load spike hits both sides alike.
    for i in range(30):
        for kind, name in (("real", "bob"), ("unknown", f"ghost{i}")):
            source = f"127.0.{11 if kind == 'unknown' else 10}.{i + 2}"
            t = time.perf_counter()
            r = login(box, source, name, "wrong password")
            samples[kind].append(time.perf_counter() - t)
            assert answer(r) == (401, "invalid_credentials"), r.text
    real = statistics.median(samples["real"])
    unknown = statistics.median(samples["unknown"])
    diff = abs(real - unknown)
    print(f"\nmedian wrong password {real * 1000:.1f} ms, unknown name {unknown * 1000:.1f} ms")
    assert diff < 0.015 or diff < 0.3 * max(real, unknown), (real, unknown)


def test_an_address_lock_is_shown_and_cleared_by_unlock_address(box):
    sprayer = "127.0.20.2"
    for i in range(20):
        login(box, sprayer, f"guess{i}", "123456")
    assert answer(login(box, sprayer, OWNER, PASSWORD)) == (401, "locked")
    assert "locked:    address 127.0.20.2 for all accounts" in box.cli("status").stdout
    assert "address 127.0.20.2 (all accounts)" in box.cli("user", "show", OWNER).stdout
    # Unlocking the account does not lift the address's lock.
    box.cli("unlock", OWNER)
    assert answer(login(box, sprayer, OWNER, PASSWORD)) == (401, "locked")
    out = box.cli("unlock", "--address", sprayer).stdout
    assert out.startswith("unlocked address 127.0.20.2 ("), out
    assert login(box, sprayer, OWNER, PASSWORD).status_code == 200
    events = [e["event"] for e in box.audit(event="address_unlocked")]
    assert events == ["address_unlocked"], events


def test_an_administrator_clears_an_address_lock_over_rest(box):
    sprayer = "127.0.21.2"
    for i in range(20):
        login(box, sprayer, f"guess{i}", "123456")
    c = client(box, "127.0.0.1")
    h = {"Authorization": "Bearer " + token(box, "127.0.0.1")}
    locks = c.get(c.base + "/locks", headers=h, timeout=60).json()
    assert [l["address"] for l in locks["addresses"]] == [sprayer], locks
    r = c.post(c.base + "/unlock", json={"address": "not an address"}, headers=h, timeout=60)
    assert r.status_code == 400, r.text
    r = c.post(c.base + "/unlock", json={"address": sprayer}, headers=h, timeout=60)
    assert r.status_code == 200 and r.json()["cleared"] >= 1, r.text
    assert c.get(c.base + "/locks", headers=h, timeout=60).json()["addresses"] == []
    assert login(box, sprayer, OWNER, PASSWORD).status_code == 200
    # A user may not.
    box.add_user("bob")
    hb = {"Authorization": "Bearer " + token(box, "127.0.0.1", "bob")}
    assert c.post(c.base + "/unlock", json={"address": sprayer}, headers=hb, timeout=60).status_code == 403
    assert c.get(c.base + "/locks", headers=hb, timeout=60).status_code == 403


def test_the_console_lists_an_address_lock_and_unlocks_it(tmp_path):
    import re
    from test_console import Box as _Box, Console, console_section
    cbox = _Box(tmp_path, console_section(tmp_path / "console"))
    try:
        for i in range(20):
            login(cbox, "127.0.22.2", f"guess{i}", "123456")
        c = Console(cbox)
        c.send("3")
        out = c.send("1")
        assert re.search(r"\(all accounts\) +127\.0\.22\.2 +\d{4}-", out), out
        c.send("4", then="Address to unlock")
        c.send("not-an-address", then="Address to unlock")
        assert "is not an IP address" in c.child.before
        out = c.send("127.0.22.2")
        assert "Unlocked 127.0.22.2 (" in out, out
        out = c.send("1")
        assert "No account is locked." in out, out
        c.send("b")
        c.leave()
        assert login(cbox, "127.0.22.2", OWNER, PASSWORD).status_code == 200
        events = [e for e in cbox.audit(event="address_unlocked")]
        assert events and events[0]["protocol"] == "console", events
    finally:
        cbox.stop()
