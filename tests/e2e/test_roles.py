"""Who may do what: every REST operation and every page form, called as
every kind of caller, against the table in docs/roles.md.

The table is the contract; this test reads it. It also fails when the
OpenAPI document or the page router gains a route that the table does not
list, so a new route cannot arrive without a decision about who may use it.
"""

import itertools
import json
import re
import socket
import subprocess
import warnings

import pytest
import requests

from conftest import COFFER, OWNER, PASSWORD, ROOT

TABLE = ROOT / "docs" / "roles.md"
OPENAPI = ROOT / "src" / "web" / "openapi.json"
UI_ROUTER = ROOT / "src" / "web" / "ui" / "mod.rs"
CALLERS = ("anonymous", "user", "admin", "system_admin",
           "user_token", "admin_token", "system_admin_token")
OUTCOMES = {"ok", "401", "403", "403-token", "login"}
COOKIE = "__Host-coffer"
TOKEN_REFUSAL = re.compile(r"access token cannot manage credentials", re.I)
NOT_ALLOWED = re.compile(r"not allowed:|you do not have access to this page", re.I)

# Rows whose expected answer is the intended rule, not yet what the server
# does: when only these differ, the test is an expected failure with the
# reason; once the rule is in place it passes (and the row can leave the set).
KNOWN_OPEN = {}


@pytest.fixture(autouse=True)
def quiet_tls():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ---------------------------------------------------------------------------
# The table and the routes.

def read_table():
    """{(method, path, case): {caller: outcome}} from docs/roles.md."""
    rows = {}
    header = None
    for line in TABLE.read_text().splitlines():
        if not line.startswith("|"):
            header = None if not line.strip() else header
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "Route":
            assert tuple(cells[1:]) == CALLERS, f"columns of {TABLE}: {cells}"
            header = cells
            continue
        if header is None:
            # The command line, console and SSH tables (read_rows below).
            header = "other"
        if header == "other":
            continue
        if set(cells[0]) <= set("-: "):
            continue
        assert header, f"a table row without the header: {line}"
        m = re.fullmatch(r"`(GET|POST|PUT|PATCH|DELETE) (/\S*)`(?: \[([^\]]+)\])?", cells[0])
        assert m, f"route cell not understood: {cells[0]!r}"
        key = (m.group(1), m.group(2), m.group(3))
        assert key not in rows, f"row twice: {key}"
        outcomes = dict(zip(CALLERS, cells[1:]))
        assert len(cells) == len(CALLERS) + 1 and set(outcomes.values()) <= OUTCOMES, line
        rows[key] = outcomes
    return rows


def documented_operations():
    doc = json.loads(OPENAPI.read_text())
    return {(m.upper(), "/api/v1" + p) for p, item in doc["paths"].items()
            for m in item if m in ("get", "put", "post", "patch", "delete")}


def page_routes():
    """(method, path) of the page router: every POST and every admin page."""
    source = UI_ROUTER.read_text()
    body = source[source.index("pub fn routes()"):]
    body = body[:body.index("\n}\n")]
    out = set()
    for path, handler in re.findall(r'\.route\(\s*"([^"]+)",(.*?)\)\s*(?=\.route\(|$)', body, re.S):
        for method in re.findall(r"\b(get|post)\(", handler):
            if method == "post" or path.startswith("/admin"):
                out.add((method.upper(), path))
    return out


def test_every_route_has_a_row():
    rows = {(m, p) for m, p, _ in read_table()}
    api = documented_operations()
    pages = page_routes()
    assert len(api) > 40 and len(pages) > 25, "the route lists look wrong"
    missing = sorted((api | pages) - rows)
    assert not missing, f"routes without a row in {TABLE.name}: {missing}"
    stale = sorted(r for r in rows - api - pages if not r[1].startswith("/api/") and r[0] == "POST"
                   or r[1].startswith("/api/") and r not in api)
    assert not stale, f"rows of {TABLE.name} for routes that do not exist: {stale}"


def read_rows(first):
    """The first cells of the table whose header starts with `first`, without
    their backquotes."""
    out, inside = [], False
    for line in TABLE.read_text().splitlines():
        if not line.startswith("|"):
            inside = inside and bool(line.strip())
            continue
        cell = line.strip().strip("|").split("|")[0].strip()
        if cell == first:
            inside = True
        elif inside and not set(cell) <= set("-: "):
            out.append(cell.strip("`"))
    assert out, f"no table headed {first!r} in {TABLE.name}"
    return out


def cli_commands(*words):
    """Every command `coffer --help` lists, with those of each command group
    (`coffer user key add`), as the binary prints them."""
    help_text = subprocess.run([COFFER, *words, "--help"], capture_output=True, text=True,
                               timeout=60, check=True).stdout
    listed = re.search(r"^Commands:\n((?:  .*\n)+)", help_text, re.M)
    if not listed:
        return [" ".join(("coffer",) + words)]
    out = []
    for line in listed.group(1).splitlines():
        name = line.split()[0]
        if name != "help":
            out += cli_commands(*words, name)
    return out


def test_every_cli_command_has_a_row():
    rows = read_rows("Command")
    assert len(rows) == len(set(rows)), f"a command twice in {TABLE.name}"
    commands = cli_commands()
    assert len(commands) > 25 and "coffer user rename" in commands, commands
    missing = sorted(set(commands) - set(rows))
    assert not missing, f"commands without a row in {TABLE.name}: {missing}"
    stale = sorted(set(rows) - set(commands))
    assert not stale, f"rows of {TABLE.name} for commands that do not exist: {stale}"


def test_every_console_menu_entry_has_a_row():
    source = "".join(p.read_text() for p in sorted((ROOT / "src" / "console").glob("*.rs")))
    entries = {label for key, label in re.findall(r'\("([0-9a-z])", "([^"]+)", "[^"]*"\)', source)
               if label not in ("Back", "Quit")}
    assert len(entries) > 12, entries
    rows = set(read_rows("Menu entry"))
    assert entries == rows, f"menu entries without a row: {sorted(entries - rows)}; " \
                            f"rows without an entry: {sorted(rows - entries)}"


def test_ssh_gives_every_role_files_only(box):
    """The SSH table: every role, and a token, gets SFTP in its home and
    nothing else (no command, no forwarding)."""
    import paramiko
    box.add_user("alice", "user")
    box.add_user("adam", "admin")
    logins = [("alice", PASSWORD), ("adam", PASSWORD), (OWNER, PASSWORD),
              ("adam", box.token("adam"))]
    for name, secret in logins:
        t = paramiko.Transport(socket.create_connection(("127.0.0.1", box.port), timeout=10))
        t.start_client(timeout=10)
        try:
            t.auth_password(name, secret)
            sftp = paramiko.SFTPClient.from_transport(t)
            sftp.listdir(".")
            chan = t.open_session()
            chan.exec_command("coffer user list")
            assert chan.recv_exit_status() != 0, name
            with pytest.raises(paramiko.ChannelException):
                t.open_channel("direct-tcpip", ("127.0.0.1", box.https_port), ("127.0.0.1", 1))
            with pytest.raises(paramiko.SSHException):
                t.request_port_forward("127.0.0.1", 0)
            assert t.is_active(), name
        finally:
            t.close()


def test_every_row_has_a_probe():
    missing = sorted(set(read_table()) - set(PROBES))
    assert not missing, f"rows without a probe in {__name__}: {missing}"


# ---------------------------------------------------------------------------
# Callers.

# One connection pool for every caller: the server caps connections per
# address, and each caller is only a header.
HTTP = requests.Session()
HTTP.verify = False
HTTP.trust_env = False


class Api:
    def __init__(self, box, bearer=None):
        self.base = box.url + "/api/v1"
        self.bearer = bearer
        self.http = HTTP

    def call(self, method, path, **kw):
        headers = kw.pop("headers", {})
        if self.bearer:
            headers["Authorization"] = f"Bearer {self.bearer}"
        return self.http.request(method, self.base + path, headers=headers, timeout=60,
                                 allow_redirects=False, **kw)


class Browser:
    """A cookie of one, sent by hand (the cookie is `__Host-` and `Secure`)."""

    def __init__(self, box):
        self.base = box.url
        self.cookie = None
        self.http = HTTP

    def request(self, method, path, data=None):
        headers = {"Cookie": f"{COOKIE}={self.cookie}"} if self.cookie else {}
        r = self.http.request(method, self.base + path, data=data, headers=headers,
                              allow_redirects=False, timeout=60)
        self.http.cookies.clear()
        m = re.match(rf"{COOKIE}=([^;]*)", r.headers.get("Set-Cookie", ""))
        if m:
            self.cookie = m.group(1) or None
        return r

    def csrf(self, path="/login"):
        page = self.request("GET", path)
        if page.is_redirect:
            page = self.request("GET", page.headers["Location"])
        m = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert m, f"no form token on {path}: {page.status_code}"
        return m.group(1)

    def sign_in(self, user, password):
        token = self.csrf("/login")
        r = self.request("POST", "/login", {"csrf": token, "username": user, "password": password})
        assert r.status_code == 303 and not r.headers["Location"].startswith("/login?"), r.text
        return self


ACCOUNTS = {"user": "alice", "admin": "adam", "system_admin": OWNER}


class World:
    """A box with an account of each role, their sessions and tokens, and
    the targets the probes aim at."""

    def __init__(self, box):
        self.box = box
        self.counter = itertools.count()
        box.add_user("alice", "user")
        box.add_user("adam", "admin")
        box.add_user("victim", "user")
        box.add_user("loginprobe", "user")
        self.tokens = {role: box.token(name) for role, name in ACCOUNTS.items()}
        self.owner = self.session_api("system_admin")
        self.must(self.owner.call("POST", "/groups", json={"name": "plain"}), 201)
        self.must(self.owner.call("POST", "/groups", json={"name": "ownergroup"}), 201)
        self.must(self.owner.call("POST", "/users", json={
            "username": "owner2", "password": PASSWORD, "role": "system_admin", "group": "ownergroup"}), 201)

    @staticmethod
    def must(r, status):
        assert r.status_code == status, f"setup: {r.request.method} {r.url}: {r.status_code} {r.text}"
        return r

    def unique(self, prefix):
        return f"{prefix}{next(self.counter)}"

    def session_api(self, role):
        r = Api(self.box).call("POST", "/auth/login",
                               json={"username": ACCOUNTS[role], "password": PASSWORD})
        assert r.status_code == 200, r.text
        return Api(self.box, r.json()["token"])

    def api(self, caller):
        if caller == "anonymous":
            return Api(self.box)
        if caller.endswith("_token"):
            return Api(self.box, self.tokens[caller[:-len("_token")]])
        return self.session_api(caller)

    def browser(self, caller):
        b = Browser(self.box)
        if caller == "anonymous":
            b.csrf("/login")
            return b
        if caller.endswith("_token"):
            role = caller[:-len("_token")]
            return b.sign_in(ACCOUNTS[role], self.tokens[role])
        return b.sign_in(ACCOUNTS[caller], PASSWORD)

    def user(self, role="user"):
        """A throwaway account."""
        name = self.unique("tmp")
        self.must(self.owner.call("POST", "/users", json={"username": name, "password": PASSWORD,
                                                          "role": role}), 201)
        return name

    def group(self):
        name = self.unique("tg")
        self.must(self.owner.call("POST", "/groups", json={"name": name}), 201)
        return name

    def token_id(self, account):
        r = self.must(self.owner.call("POST", f"/users/{account}/tokens", json={"label": "probe"}), 201)
        return r.json()["id"]


# ---------------------------------------------------------------------------
# Probes: for each row, how to call it as `caller`.
#
# A REST probe answers (method, path, requests keyword arguments); a page
# probe answers (method, path, form fields without the token). Both get the
# world and the caller's account name ("" for anonymous).

def api_probe(method, path, **kw):
    return lambda w, me: (method, path, kw)


PROBES = {
    ("GET", "/api/v1/openapi.json", None): api_probe("GET", "/openapi.json"),
    ("GET", "/api/v1/health", None): api_probe("GET", "/health"),
    ("POST", "/api/v1/claim", None): api_probe(
        "POST", "/claim", json={"code": "AAAA-AAAA-AAAA", "username": "x", "password": PASSWORD}),
    ("POST", "/api/v1/auth/login", None): api_probe(
        "POST", "/auth/login", json={"username": "loginprobe", "password": PASSWORD}),
    ("POST", "/api/v1/auth/logout", None): api_probe("POST", "/auth/logout"),
    ("GET", "/api/v1/me", None): api_probe("GET", "/me"),
    ("PUT", "/api/v1/me/password", None): api_probe(
        "PUT", "/me/password", json={"current_password": PASSWORD, "new_password": "short"}),
    ("DELETE", "/api/v1/me/mfa", None): api_probe(
        "DELETE", "/me/mfa", headers={"X-Coffer-OTP": "000000"}),
    ("POST", "/api/v1/me/mfa/totp", None): api_probe("POST", "/me/mfa/totp"),
    ("POST", "/api/v1/me/mfa/totp/confirm", None): api_probe(
        "POST", "/me/mfa/totp/confirm", json={"code": "000000"}),
    ("POST", "/api/v1/me/mfa/recovery-codes", None): api_probe(
        "POST", "/me/mfa/recovery-codes", json={"code": "000000"}),
    ("POST", "/api/v1/me/mfa/skip", None): api_probe("POST", "/me/mfa/skip"),
    ("GET", "/api/v1/me/tokens", None): api_probe("GET", "/me/tokens"),
    ("POST", "/api/v1/me/tokens", None): api_probe("POST", "/me/tokens", json={"label": "probe"}),
    ("DELETE", "/api/v1/me/tokens/{id}", None): api_probe("DELETE", "/me/tokens/nonexistent"),
    ("GET", "/api/v1/me/sessions", None): api_probe("GET", "/me/sessions"),
    ("DELETE", "/api/v1/me/sessions/{id}", None): api_probe("DELETE", "/me/sessions/nonexistent"),
    ("GET", "/api/v1/users", None): api_probe("GET", "/users"),
    ("POST", "/api/v1/users", None): lambda w, me: (
        "POST", "/users", {"json": {"username": w.unique("new"), "password": PASSWORD, "role": "user"}}),
    ("POST", "/api/v1/users", "role system_admin"): lambda w, me: (
        "POST", "/users", {"json": {"username": w.unique("newsa"), "password": PASSWORD,
                                    "role": "system_admin"}}),
    ("GET", "/api/v1/users/{name}", None): api_probe("GET", "/users/victim"),
    ("GET", "/api/v1/users/{name}", "oneself"): lambda w, me: ("GET", f"/users/{me or 'alice'}", {}),
    ("GET", "/api/v1/users/{name}", "a system_admin"): api_probe("GET", "/users/owner2"),
    ("PATCH", "/api/v1/users/{name}", None): api_probe(
        "PATCH", "/users/victim", json={"read_only": False}),
    ("PATCH", "/api/v1/users/{name}", "a system_admin's group"): api_probe(
        "PATCH", "/users/owner2", json={"group": "ownergroup"}),
    ("PATCH", "/api/v1/users/{name}", "make admin"): lambda w, me: (
        "PATCH", f"/users/{w.user()}", {"json": {"role": "admin"}}),
    ("PATCH", "/api/v1/users/{name}", "make system_admin"): lambda w, me: (
        "PATCH", f"/users/{w.user()}", {"json": {"role": "system_admin"}}),
    ("PATCH", "/api/v1/users/{name}", "oneself to system_admin"): lambda w, me: (
        "PATCH", f"/users/{me or 'alice'}", {"json": {"role": "system_admin"}}),
    ("PATCH", "/api/v1/users/{name}", "oneself, skip enrolment"): lambda w, me: (
        "PATCH", f"/users/{me or 'alice'}", {"json": {"mfa_skip": True}}),
    ("PATCH", "/api/v1/users/{name}", "set password"): lambda w, me: (
        "PATCH", f"/users/{w.user()}", {"json": {"password": "short"}}),
    ("PATCH", "/api/v1/users/{name}", "rename"): lambda w, me: (
        "PATCH", f"/users/{w.user()}", {"json": {"username": w.unique("rn")}}),
    ("PATCH", "/api/v1/users/{name}", "rename a system_admin"): lambda w, me: (
        "PATCH", f"/users/{w.user('system_admin')}", {"json": {"username": w.unique("rn")}}),
    ("DELETE", "/api/v1/users/{name}/mfa", "a system_admin"): api_probe("DELETE", "/users/owner2/mfa"),
    ("POST", "/api/v1/users/{name}/unlock", "a system_admin"): api_probe("POST", "/users/owner2/unlock"),
    ("GET", "/api/v1/users/{name}/tokens", "a system_admin"): api_probe("GET", "/users/owner2/tokens"),
    ("POST", "/api/v1/users/{name}/tokens", "a system_admin"): api_probe(
        "POST", "/users/owner2/tokens", json={"label": "probe"}),
    ("DELETE", "/api/v1/users/{name}", None): lambda w, me: ("DELETE", f"/users/{w.user()}", {}),
    ("DELETE", "/api/v1/users/{name}", "a system_admin"): lambda w, me: (
        "DELETE", f"/users/{w.user('system_admin')}", {}),
    ("DELETE", "/api/v1/users/{name}/mfa", None): api_probe("DELETE", "/users/victim/mfa"),
    ("POST", "/api/v1/users/{name}/unlock", None): api_probe("POST", "/users/victim/unlock"),
    ("GET", "/api/v1/locks", None): api_probe("GET", "/locks"),
    ("POST", "/api/v1/unlock", None): api_probe("POST", "/unlock", json={"address": "192.0.2.77"}),
    ("GET", "/api/v1/users/{name}/tokens", None): api_probe("GET", "/users/victim/tokens"),
    ("POST", "/api/v1/users/{name}/tokens", None): api_probe(
        "POST", "/users/victim/tokens", json={"label": "probe"}),
    ("DELETE", "/api/v1/users/{name}/tokens/{id}", None): lambda w, me: (
        "DELETE", f"/users/victim/tokens/{w.token_id('victim')}", {}),
    ("GET", "/api/v1/groups", None): api_probe("GET", "/groups"),
    ("POST", "/api/v1/groups", None): lambda w, me: ("POST", "/groups", {"json": {"name": w.unique("ng")}}),
    ("GET", "/api/v1/groups/{name}", None): api_probe("GET", "/groups/plain"),
    ("PATCH", "/api/v1/groups/{name}", None): api_probe(
        "PATCH", "/groups/plain", json={"read_only": False}),
    ("PATCH", "/api/v1/groups/{name}", "a system_admin is a member"): api_probe(
        "PATCH", "/groups/ownergroup", json={"read_only": False}),
    ("DELETE", "/api/v1/groups/{name}", None): lambda w, me: ("DELETE", f"/groups/{w.group()}", {}),
    ("GET", "/api/v1/policy", None): api_probe("GET", "/policy"),
    ("PUT", "/api/v1/policy", None): lambda w, me: (
        "PUT", "/policy", {"json": w.owner.call("GET", "/policy").json()}),
    ("GET", "/api/v1/audit", None): api_probe("GET", "/audit"),
    ("GET", "/api/v1/system", None): api_probe("GET", "/system"),
    ("PUT", "/api/v1/system/certificate", None): api_probe(
        "PUT", "/system/certificate", json={"certificate": "x", "private_key": "y"}),
    ("GET", "/api/v1/files", None): api_probe("GET", "/files", params={"path": "/"}),
    ("DELETE", "/api/v1/files", None): api_probe("DELETE", "/files", params={"path": "/nonexistent"}),
    ("GET", "/api/v1/files/content", None): api_probe(
        "GET", "/files/content", params={"path": "/nonexistent"}),
    ("PUT", "/api/v1/files/content", None): lambda w, me: (
        "PUT", "/files/content", {"params": {"path": f"/{w.unique('probe')}.txt"}, "data": b"x"}),
    ("POST", "/api/v1/files/mkdir", None): lambda w, me: (
        "POST", "/files/mkdir", {"json": {"path": f"/{w.unique('dir')}"}}),
    ("POST", "/api/v1/files/rename", None): api_probe(
        "POST", "/files/rename", json={"from": "/nonexistent", "to": "/elsewhere"}),
    # A one-byte upload that is never sent: an allowed caller gets 201.
    ("POST", "/api/v1/files/uploads", None): lambda w, me: (
        "POST", "/files/uploads", {"json": {"path": f"/{w.unique('up')}.bin", "size": 1}}),
    # No such upload: an allowed caller gets 404.
    ("GET", "/api/v1/files/uploads/{id}", None): api_probe("GET", "/files/uploads/" + "0" * 32),
    ("PATCH", "/api/v1/files/uploads/{id}", None): api_probe(
        "PATCH", "/files/uploads/" + "0" * 32, params={"offset": "0"}, data=b"x"),
    ("DELETE", "/api/v1/files/uploads/{id}", None): api_probe("DELETE", "/files/uploads/" + "0" * 32),
}


def page(method, path, **fields):
    return lambda w, me: (method, path, fields)


GROUP_FIELDS = {"home_template": "${USER}", "enabled": "1", "may_change_password": "1"}

PROBES.update({
    ("POST", "/setup", None): page("POST", "/setup", code="AAAA-AAAA-AAAA", username="x",
                                   password=PASSWORD, password2=PASSWORD),
    ("POST", "/login", None): page("POST", "/login", username="loginprobe", password=PASSWORD),
    ("POST", "/login/code", None): page("POST", "/login/code", code="000000"),
    ("POST", "/login/enrol", None): page("POST", "/login/enrol", code="000000"),
    ("POST", "/login/offer", None): page("POST", "/login/offer", choice="later"),
    ("POST", "/logout", None): page("POST", "/logout"),
    ("POST", "/files/mkdir", None): lambda w, me: ("POST", "/files/mkdir",
                                                   {"dir": "/", "name": w.unique("uidir")}),
    ("POST", "/files/rename", None): page("POST", "/files/rename", dir="/", **{"from": "nonexistent"},
                                          to="elsewhere"),
    ("POST", "/files/delete", None): page("POST", "/files/delete", dir="/", name="nonexistent"),
    ("POST", "/files/zip", None): page("POST", "/files/zip", dir="/", name="nonexistent"),
    ("GET", "/security", None): page("GET", "/security"),
    ("POST", "/security/totp", None): page("POST", "/security/totp", code="000000"),
    ("POST", "/security/totp/replace", None): page("POST", "/security/totp/replace", code="000000"),
    ("POST", "/security/totp/remove", None): page("POST", "/security/totp/remove", code="000000"),
    ("POST", "/security/totp/cancel", None): page("POST", "/security/totp/cancel"),
    ("POST", "/security/recovery", None): page("POST", "/security/recovery", code="000000"),
    ("POST", "/security/password", None): page(
        "POST", "/security/password", current_password=PASSWORD, new_password="short",
        new_password2="short"),
    ("POST", "/security/tokens", None): page("POST", "/security/tokens", label="probe"),
    ("POST", "/security/tokens/{id}/revoke", None): page("POST", "/security/tokens/nonexistent/revoke"),
    ("POST", "/security/sessions/{id}/end", None): page("POST", "/security/sessions/nonexistent/end"),
    ("GET", "/admin/users", None): page("GET", "/admin/users"),
    ("POST", "/admin/users", None): lambda w, me: (
        "POST", "/admin/users", {"username": w.unique("ui"), "role": "user", "password": PASSWORD}),
    ("POST", "/admin/users", "role system_admin"): lambda w, me: (
        "POST", "/admin/users", {"username": w.unique("uisa"), "role": "system_admin",
                                 "password": PASSWORD}),
    ("GET", "/admin/users/{name}", None): page("GET", "/admin/users/victim"),
    ("POST", "/admin/locks", None): page("POST", "/admin/locks", address="192.0.2.77"),
    ("GET", "/admin/users/{name}", "a system_admin"): page("GET", "/admin/users/owner2"),
    ("POST", "/admin/users/{name}", None): page("POST", "/admin/users/victim", action="unlock"),
    ("POST", "/admin/users/{name}", "a system_admin"): page("POST", "/admin/users/owner2",
                                                            action="unlock"),
    ("POST", "/admin/users/{name}", "disable a system_admin"): lambda w, me: (
        "POST", f"/admin/users/{w.user('system_admin')}", {"action": "disable"}),
    ("POST", "/admin/users/{name}", "make system_admin"): lambda w, me: (
        "POST", f"/admin/users/{w.user()}", {"action": "update", "role": "system_admin"}),
    ("POST", "/admin/users/{name}", "set password"): lambda w, me: (
        "POST", f"/admin/users/{w.user()}", {"action": "update", "role": "user",
                                             "new_password": "short"}),
    ("POST", "/admin/users/{name}", "new token"): page("POST", "/admin/users/victim",
                                                       action="create_token", label="probe"),
    ("POST", "/admin/users/{name}", "rename"): lambda w, me: (
        "POST", f"/admin/users/{w.user()}", {"action": "rename", "new_name": w.unique("rn")}),
    ("POST", "/admin/users/{name}", "rename a system_admin"): lambda w, me: (
        "POST", f"/admin/users/{w.user('system_admin')}", {"action": "rename",
                                                          "new_name": w.unique("rn")}),
    ("GET", "/admin/groups", None): page("GET", "/admin/groups"),
    ("POST", "/admin/groups", None): lambda w, me: (
        "POST", "/admin/groups", {"action": "create", "name": w.unique("ug"), **GROUP_FIELDS}),
    ("POST", "/admin/groups", "a system_admin is a member"): page(
        "POST", "/admin/groups", action="update", name="ownergroup", **GROUP_FIELDS),
    ("GET", "/admin/policy", None): page("GET", "/admin/policy"),
    ("POST", "/admin/policy", None): lambda w, me: ("POST", "/admin/policy", w.policy_form()),
    ("GET", "/admin/audit", None): page("GET", "/admin/audit"),
    ("GET", "/admin/audit/export", None): page("GET", "/admin/audit/export?format=csv"),
    ("GET", "/admin/system", None): page("GET", "/admin/system"),
    ("POST", "/admin/system/certificate", None): page(
        "POST", "/admin/system/certificate", certificate="x", private_key="y"),
})


def policy_form(world):
    """The policy form as the owner's page fills it: saving it changes nothing."""
    b = world.browser("system_admin")
    html = b.request("GET", "/admin/policy").text
    form = re.search(r'<form[^>]*action="/admin/policy".*?</form>', html, re.S).group(0)
    fields = {}
    for tag in re.findall(r"<(?:input|select)\b[^>]*>", form):
        name = re.search(r'name="([^"]+)"', tag)
        if not name or name.group(1) == "csrf":
            continue
        kind = re.search(r'type="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if kind and kind.group(1) in ("checkbox", "radio"):
            if re.search(r"\bchecked\b", tag):
                fields[name.group(1)] = value.group(1) if value else "1"
        elif tag.startswith("<select"):
            select = re.search(rf'<select[^>]*name="{name.group(1)}".*?</select>', form, re.S).group(0)
            chosen = re.search(r'<option[^>]*value="([^"]*)"[^>]*selected', select) or \
                re.search(r'<option[^>]*value="([^"]*)"', select)
            fields[name.group(1)] = chosen.group(1) if chosen else ""
        else:
            fields[name.group(1)] = value.group(1) if value else ""
    return fields


World.policy_form = policy_form

# Rows whose call ends the caller's session or signs in anew: they get a
# fresh caller of their own.
CONSUMING = {("POST", "/api/v1/auth/logout", None), ("POST", "/login", None),
             ("POST", "/logout", None)}

# Rows whose call, when allowed, ends every session of the caller's account
# (a change of its own role): every caller signs in anew afterwards.
RENEWING = {("PATCH", "/api/v1/users/{name}", "oneself to system_admin")}


# ---------------------------------------------------------------------------
# Judging an answer.

def api_outcome(r):
    if r.status_code == 401:
        return "401"
    if r.status_code == 403:
        try:
            error = r.json().get("error")
        except ValueError:
            error = None
        return "403-token" if error == "token_cannot_manage_credentials" else "403"
    return "ok"


def page_outcome(browser, r):
    location = r.headers.get("Location", "")
    if r.is_redirect and re.fullmatch(r"/login(\?.*)?", location):
        return "login"
    text = r.text
    if r.is_redirect and location.startswith("/"):
        # The page the form returns to carries the message (shown once).
        text = browser.request("GET", location).text
    # Only the messages count (a page opened with a token explains that
    # it manages no credentials in its own text, refusal or not).
    alerts = " ".join(re.findall(r'role="alert"[^>]*>(.*?)</div>', text, re.S))
    if TOKEN_REFUSAL.search(alerts):
        return "403-token"
    if r.status_code == 403 or NOT_ALLOWED.search(alerts):
        return "403"
    return "ok"


def call(world, key, caller, callers):
    """The outcome of row `key` called as `caller`, and a line for a report."""
    method, route, _ = key
    me = ACCOUNTS.get(caller.removesuffix("_token"), "")
    fresh = key in CONSUMING
    if route.startswith("/api/"):
        client = world.api(caller) if fresh else callers["api", caller]
        m, path, kw = PROBES[key](world, me)
        r = client.call(m, path, **kw)
        return api_outcome(r), f"{m} /api/v1{path} -> {r.status_code} {r.text[:160]}"
    browser = world.browser(caller) if fresh else callers["page", caller]
    m, path, fields = PROBES[key](world, me)
    if m == "GET":
        r = browser.request("GET", path)
    else:
        token = browser.csrf("/login" if caller == "anonymous" else "/files")
        r = browser.request("POST", path, {"csrf": token, **fields})
    return page_outcome(browser, r), f"{m} {path} -> {r.status_code} {r.headers.get('Location', '')}"


def test_every_caller_gets_what_the_table_says(box_factory):
    # Hundreds of logins from one address: lift the per-address login rate.
    box = box_factory("[https]\nlogin_rate = 10000\n")
    table = read_table()
    world = World(box)
    callers = {}

    def sign_in_all():
        world.owner = world.session_api("system_admin")
        for caller in CALLERS:
            callers["api", caller] = world.api(caller)
            callers["page", caller] = world.browser(caller)

    sign_in_all()
    wrong, open_rows = [], []
    for key, expected in table.items():
        for caller in CALLERS:
            got, detail = call(world, key, caller, callers)
            if got != expected[caller]:
                line = f"{key} as {caller}: table says {expected[caller]}, got {got} ({detail})"
                (open_rows if key in KNOWN_OPEN else wrong).append(line)
            if key in RENEWING:
                sign_in_all()
    assert not wrong, "answers that differ from docs/roles.md:\n" + "\n".join(wrong)
    # A known open row that passes now is fine (the test turns green when
    # the rule lands); it can then leave the set.
    closed = sorted(k for k in KNOWN_OPEN if not any(o.startswith(str(k)) for o in open_rows))
    if closed:
        print(f"rows of KNOWN_OPEN that pass now and can leave the set: {closed}")
    if open_rows:
        pytest.xfail("known open rows: " + "; ".join(
            f"{k}: {KNOWN_OPEN[k]}" for k in KNOWN_OPEN) + "\n" + "\n".join(open_rows))
