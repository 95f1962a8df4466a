"""No secret reaches the log: a whole scenario (setup, enrolment, a token,
SSH logins with a password, a code, a recovery code and the token, wrong
passwords and codes, a technician PIN) runs against a server logging at
trace level (its libraries included), then its whole log is searched for
every secret used."""

import re
import socket

import paramiko

from conftest import OWNER, PASSWORD, Box, fresh_code, ssh_password_login, totp


def connect(box):
    sock = socket.create_connection(("127.0.0.1", box.port), timeout=10)
    t = paramiko.Transport(sock)
    t.start_client(timeout=10)
    return t


def interactive(box, user, password, code=None):
    def handler(title, instructions, prompts):
        return [password if p.startswith("Password") else code for p, _ in prompts]
    t = connect(box)
    try:
        t.auth_interactive(user, handler)
        return t.is_authenticated()
    except paramiko.AuthenticationException:
        return False
    finally:
        t.close()


def forms(secret):
    """The secret as it might be written: as is, lower and upper case, and a
    recovery code without its dashes."""
    out = {secret, secret.lower(), secret.upper()}
    if "-" in secret:
        out.add(secret.replace("-", ""))
    return {s for s in out if len(s) >= 6}


def test_the_log_holds_no_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("RUST_LOG", "trace")
    box = Box(tmp_path)
    try:
        secrets = {PASSWORD}
        user_password = "bobs-own-long-passphrase-77"
        wrong_password = "not-bobs-passphrase-at-all-31"
        box.add_user("bob", "user", user_password)
        secrets |= {user_password, wrong_password}
        # Enrolment: the seed and the code that confirms it.
        out = box.cli("mfa", "enroll", "bob").stdout
        seed = next(l.split()[1] for l in out.splitlines() if l.startswith("secret:"))
        uri = next(l.split()[1] for l in out.splitlines() if l.startswith("uri:"))
        confirm = totp(seed, offset=-1)
        codes = box.cli("mfa", "confirm", "bob", confirm).stdout.splitlines()[1:]
        assert len(codes) == 10
        secrets |= {seed, uri, confirm, *codes}
        # A token.
        token = box.token("bob")
        secrets |= {token, token.rsplit("_", 1)[1]}
        # A technician PIN.
        pin = "93718264"
        box.cli("console-pin", "set", "--pin-file", "-", input=pin + "\n")
        secrets.add(pin)
        # Logins: password + code, a recovery code, the token, failures.
        code = fresh_code(seed)
        secrets.add(code)
        assert interactive(box, "bob", user_password, code)
        assert interactive(box, "bob", user_password, codes[0])
        assert ssh_password_login(box, "bob", token)
        assert not interactive(box, "bob", wrong_password, "000000")
        wrong_code = "%06d" % ((int(totp(seed)) + 500000) % 1000000)
        secrets.add(wrong_code)
        assert not interactive(box, "bob", user_password, wrong_code)
        assert not ssh_password_login(box, "bob", user_password)  # needs a code
        assert not ssh_password_login(box, OWNER, wrong_password)
        assert ssh_password_login(box, OWNER, PASSWORD)
        # The owner enrols too, and a code is replayed.
        owner_seed, owner_codes = box.enrol(OWNER)
        secrets |= {owner_seed, *owner_codes}
        c = fresh_code(owner_seed)
        secrets.add(c)
        assert interactive(box, OWNER, PASSWORD, c)
        assert not interactive(box, OWNER, PASSWORD, c)
    finally:
        box.stop()
    log = box.log_text()
    assert "event_id=1000" in log and "session_id=" in log, "the log has the audit fields"
    assert "TRACE" in log, "the log was captured at trace level"
    # Timestamps carry six-digit fractions; they are not codes.
    text = "\n".join(re.sub(r"^\S+Z ", "", line) for line in log.splitlines())
    found = sorted(f for s in secrets for f in forms(s) if f in text)
    assert not found, f"secrets in the log: {found}"
