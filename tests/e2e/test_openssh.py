"""OpenSSH's own sftp and scp clients, driven through a pseudo-terminal
(pexpect) exactly as a person types: password, then authentication code."""

import hashlib
import os
import subprocess

import pexpect

from conftest import PASSWORD, fresh_code

SSH_OPTIONS = [
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
    "-o", "BatchMode=no",
    "-o", "NumberOfPasswordPrompts=1",
]


def clean_env():
    env = dict(os.environ)
    env.pop("SSH_AUTH_SOCK", None)
    env.pop("SSH_ASKPASS", None)
    return env


def drive(command, args, password=PASSWORD, code=None, timeout=60):
    """Runs an OpenSSH client on a pty, answering its prompts."""
    child = pexpect.spawn(command, args, timeout=timeout, encoding="utf-8", env=clean_env())
    asked = []
    while True:
        i = child.expect(["Password:", "Authentication code:", pexpect.EOF])
        if i == 0:
            asked.append("password")
            child.sendline(password)
        elif i == 1:
            asked.append("code")
            assert code is not None, "a code was asked for unexpectedly"
            child.sendline(code)
        else:
            break
    child.close()
    return child.exitstatus, asked, child.before


def sftp(box, user, batch, tmp_path, auth="keyboard-interactive", key=None, **kw):
    batch_file = tmp_path / "batch"
    batch_file.write_text(batch)
    args = ["-P", str(box.port), *SSH_OPTIONS, "-o", f"PreferredAuthentications={auth}"]
    if key:
        args += ["-i", str(key), "-o", "IdentitiesOnly=yes"]
    args += ["-b", str(batch_file), f"{user}@127.0.0.1"]
    return drive("sftp", args, **kw)


def scp(box, src, dst, legacy=False, auth="keyboard-interactive", **kw):
    args = ["-P", str(box.port), *SSH_OPTIONS, "-o", f"PreferredAuthentications={auth}"]
    if legacy:
        args.insert(0, "-O")
    return drive("scp", [*args, src, dst], **kw)


def payload(tmp_path, name="payload.bin", size=5 * 1024 * 1024 + 123):
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def keypair(tmp_path):
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key, (tmp_path / "id_ed25519.pub").read_text().strip()


def test_sftp_password_and_code_moves_a_file_both_ways(box, tmp_path):
    box.add_user("bob")
    secret, _ = box.enrol("bob")
    src = payload(tmp_path)
    back = tmp_path / "back.bin"
    status, asked, out = sftp(
        box, "bob", f"put {src} up.bin\nget up.bin {back}\nls -l\n", tmp_path, code=fresh_code(secret)
    )
    assert status == 0, out
    assert asked == ["password", "code"]
    assert sha256(src) == sha256(back)
    home = box.data / "files" / "bob"
    assert sha256(home / "up.bin") == sha256(src)


def test_sftp_public_key(box, tmp_path):
    box.add_user("bob", "user", None)
    key, line = keypair(tmp_path)
    box.cli("user", "key", "add", "bob", line)
    src = payload(tmp_path, size=2 * 1024 * 1024)
    status, asked, out = sftp(box, "bob", f"put {src} k.bin\n", tmp_path, auth="publickey", key=key)
    assert status == 0, out
    assert asked == []
    assert sha256(box.data / "files" / "bob" / "k.bin") == sha256(src)


def test_sftp_key_plus_code(box, tmp_path):
    box.add_user("bob")
    secret, _ = box.enrol("bob")
    key, line = keypair(tmp_path)
    box.cli("user", "key", "add", "bob", line)
    box.cli("policy", "set", "mfa.ssh_key_is_enough=false")
    status, asked, out = sftp(
        box, "bob", "pwd\n", tmp_path, auth="publickey,keyboard-interactive", key=key, code=fresh_code(secret)
    )
    assert status == 0, out
    assert asked == ["code"], "after the key, only the code is asked"


def test_sftp_access_token_typed_as_the_password(box, tmp_path):
    box.add_user("bob")
    box.enrol("bob")
    token = box.token("bob")
    src = payload(tmp_path, size=1024 * 1024)
    status, asked, out = sftp(box, "bob", f"put {src} t.bin\n", tmp_path, password=token)
    assert status == 0, out
    assert asked == ["password"], "a token skips the code"


def test_scp_both_protocols_with_password_and_code(box, tmp_path):
    box.add_user("bob")
    secret, recovery = box.enrol("bob")
    # A TOTP code works once per 30 s step: the later logins use recovery codes,
    # which the code prompt accepts too.
    codes = iter([fresh_code(secret), *recovery])
    src = payload(tmp_path, size=3 * 1024 * 1024 + 7)
    for legacy in (False, True):
        name = "legacy.bin" if legacy else "sftp.bin"
        status, asked, out = scp(box, str(src), f"bob@127.0.0.1:{name}", legacy=legacy, code=next(codes))
        assert status == 0, out
        assert asked == ["password", "code"]
        back = tmp_path / ("back-" + name)
        status, _, out = scp(box, f"bob@127.0.0.1:{name}", str(back), legacy=legacy, code=next(codes))
        assert status == 0, out
        assert sha256(back) == sha256(src)


def test_wrong_code_is_refused(box, tmp_path):
    box.add_user("bob")
    secret, _ = box.enrol("bob")
    wrong = "%06d" % ((int(fresh_code(secret)) + 1) % 1000000)
    status, asked, out = sftp(box, "bob", "pwd\n", tmp_path, code=wrong)
    assert status != 0
    assert "code_rejected" in [e["event"] for e in box.audit(user="bob")]
