"""The technician console (`coffer console`) driven through a real
pseudo-terminal, with the server running (operations over the control
socket) and without it (the store opened directly): every menu path, every
bad-input path, the owner reset with the on-screen code, the technician PIN,
networkd files for DHCP and static addresses, reboot through a harmless
command, and factory reset back to a claimable box."""

import json
import os
import pathlib
import re
import signal
import subprocess

import pexpect
import pytest

from conftest import COFFER, OWNER, PASSWORD, Box, fresh_code, ssh_password_login

NEW_PASSWORD = "a-brand-new-owner-passphrase-42"
MENU = "Choice: "
IFACE = r"Interface \(Enter: back\): "
ADDRESS = r"Address with prefix, e\.g\. 192\.168\.1\.20/24 \(Enter: back\): "
GATEWAY = r"Gateway \(Enter: none\): "
DNS = r"DNS servers, separated by spaces \(Enter: none\): "
RESET_PROMPT = r"Type RESET to go on \(Enter: cancel\): "
FILES_PROMPT = r"Type DELETE FILES to confirm \(Enter: keep them\): "


def console_section(tmp, reboot=None, log=None):
    tmp.mkdir(parents=True, exist_ok=True)
    reboot = reboot or f'["sh", "-c", "echo rebooted >> {tmp / "reboots"}"]'
    log = log or '["sh", "-c", "printf \'first log line\\\\nsecond log line\\\\n\'"]'
    return (
        "\n[console]\n"
        f'network_dir = "{tmp / "network"}"\n'
        f'network_reload_command = ["sh", "-c", "echo reloaded >> {tmp / "reloads"}"]\n'
        f"reboot_command = {reboot}\n"
        f"log_command = {log}\n"
    )


@pytest.fixture
def cbox(tmp_path):
    """A box whose console writes networkd files and reboots into tmp_path."""
    b = Box(tmp_path, console_section(tmp_path / "console"))
    b.console_dir = tmp_path / "console"
    yield b
    b.stop()


class Console:
    def __init__(self, box):
        self.box = box
        self.child = pexpect.spawn(
            COFFER,
            ["--data-dir", str(box.data), "--seal", "keyfile", "console", "--config", str(box.config)],
            encoding="utf-8", timeout=20, dimensions=(24, 80),
            env={k: v for k, v in os.environ.items() if k not in ("RUST_LOG", "COFFER_DATA_DIR")},
        )
        self.transcript = []
        self.child.logfile_read = self
        self.expect(MENU)

    # pexpect's logfile protocol: keep everything the console printed.
    def write(self, text):
        self.transcript.append(text)

    def flush(self):
        pass

    def text(self):
        return "".join(self.transcript)

    def expect(self, pattern):
        self.child.expect(pattern)
        return self.child.match

    def send(self, line, then=MENU):
        self.child.sendline(line)
        if then is not None:
            self.expect(then)
        return self.child.before

    def menu(self, *keys):
        for k in keys:
            self.send(k)

    def leave(self):
        self.child.sendline("q")
        self.expect("Goodbye.")
        self.child.expect(pexpect.EOF)
        self.child.close()
        assert self.child.exitstatus == 0
        self.check_width()

    def check_width(self):
        for line in self.text().replace("\r", "").split("\n"):
            assert len(line) <= 80, f"line wider than 80 columns: {line!r}"
        assert "\x1b[" not in self.text(), "no colour or cursor control"


def audit_events(box):
    return [e["event"] for e in box.audit()]


def test_main_menu_every_entry_back_and_bad_input(cbox):
    c = Console(cbox)
    assert "The server is running" in c.text()
    out = c.send("9")
    assert '"9" is not on this menu: type one of 1, 2, 3, 4, 5, 6, q.' in out
    out = c.send("")
    assert "Type one of 1, 2, 3, 4, 5, 6, q and Enter." in out
    out = c.send("\x1b[A")  # an arrow key is not a choice either
    assert "Type one of" in out
    for key, title in [("2", "Network"), ("3", "Accounts"), ("4", "Logs"), ("5", "Power"),
                       ("6", "Connect")]:
        out = c.send(key)
        assert title in out
        out = c.send("x")
        assert "is not on this menu" in out
        out = c.send("b")
        assert "Main menu" in out
    c.leave()


def test_status_with_and_without_the_server(cbox):
    c = Console(cbox)
    out = c.send("1")
    assert re.search(r"server +running, pid \d+", out), out
    assert re.search(r"listening +sftp 127\.0\.0\.1:\d+", out), out
    assert re.search(r"claim +claimed by owner\r?\n", out), out
    assert re.search(r"host key +ssh-ed25519 SHA256:", out), out
    assert re.search(r"sealing +key file, NO TPM", out), out
    assert re.search(r"address +lo 127\.0\.0\.1/8", out), out
    assert re.search(r"free space +[\d.]+ [GM]iB of", out), out
    c.leave()
    cbox.stop()
    c = Console(cbox)
    assert "The server is not running" in c.text()
    out = c.send("1")
    assert re.search(r"server +not running", out), out
    assert re.search(r"host key +ssh-ed25519 SHA256:", out), out
    c.leave()


def test_an_unclaimed_box_shows_its_whole_claim_code(tmp_path):
    # The claim line is longer than 80 columns: it wraps, nothing is cut.
    box = Box(tmp_path, console_section(tmp_path / "console"), claimed=False)
    try:
        code = box.claim_code()
        c = Console(box)
        out = c.send("1").replace("\r", "")
        assert code in out, out
        assert re.search(r"claim +UNCLAIMED: open https://", out), out
        assert "~" not in out, out
        c.leave()
    finally:
        box.stop()


def test_connect_shows_the_url_the_claim_code_and_the_fingerprints(tmp_path):
    box = Box(tmp_path, console_section(tmp_path / "console"), claimed=False)
    try:
        code = box.claim_code()
        c = Console(box)
        c.send("6")
        out = c.send("2").replace("\r", "")
        assert f"Claim code: {code}" in out, out
        out = c.send("1").replace("\r", "")
        assert "Open the setup page" in out, out
        assert re.search(rf"https://\S+:{box.https_port}/setup", out) or "no network address yet" in out, out
        out = c.send("3").replace("\r", "")
        fingerprint = json.loads(box.cli("status", "--json").stdout)["certificate"]["fingerprint"]
        assert fingerprint in re.sub(r"\s", "", out), out
        out = c.send("4")
        assert re.search(r"ssh-ed25519 SHA256:\S+", out), out
        c.send("b")
        c.leave()
        box.cli("setup", "--admin", OWNER, "--password-file", str(box.pw), "--hash-cost", "m=64,t=1,p=1")
        c = Console(box)
        c.send("6")
        out = c.send("2")
        assert "claimed by owner: there is no claim code" in out, out
        out = c.send("1")
        assert "This box is claimed" in out and "/setup" not in out, out
        c.send("b")
        c.leave()
    finally:
        box.stop()


def test_network_dhcp_and_static_files(cbox):
    net = cbox.console_dir / "network"
    c = Console(cbox)
    c.send("2")
    out = c.send("1")
    assert re.search(r"lo +up +127\.0\.0\.1/8", out), out
    # The console wraps long lines: a long path may start a line of its own.
    assert "settings in /" in " ".join(out.split()), out
    # DHCP, with every bad interface name first.
    c.send("2", then=IFACE)
    c.send("bad/name", then=IFACE)
    assert "letters, digits" in c.child.before
    c.send("lo", then=IFACE)
    assert "loopback" in c.child.before
    c.send("a-very-long-interface", then=IFACE)
    assert "1 to 15 characters" in c.child.before
    c.send("eth7", then=r"\[y/n\]: ")
    assert "eth7 is not present now" in c.child.before
    assert "DHCP=yes" in c.child.before
    c.send("maybe", then=r"\[y/n\]: ")
    assert "type y for yes or n for no" in c.child.before
    out = c.send("y")
    assert "Wrote /" in out
    assert "Done: sh -c" in out
    assert (net / "50-coffer-eth7.network").read_text() == (
        "# Written by the Coffer technician console. The console replaces this\n"
        "# file when the interface is set again.\n"
        "[Match]\nName=eth7\n\n[Network]\nDHCP=yes\n"
    )
    # Static, with bad addresses, gateways and DNS servers first.
    c.send("3", then=IFACE)
    c.send("eth7", then=ADDRESS)
    c.send("192.168.1.20", then=ADDRESS)
    assert "prefix length" in c.child.before
    c.send("127.0.0.1/8", then=ADDRESS)
    assert "cannot be an interface's address" in c.child.before
    c.send("192.168.1.20/24", then=GATEWAY)
    c.send("10.0.0.1", then=GATEWAY)
    assert "not in the network 192.168.1.0/24" in c.child.before
    c.send("nonsense", then=GATEWAY)
    assert "type an IP address" in c.child.before
    c.send("192.168.1.1", then=DNS)
    c.send("1.1.1.1 x", then=DNS)
    assert '"x" is not an IP address' in c.child.before
    c.send("192.168.1.1, 9.9.9.9", then=r"\[y/n\]: ")
    assert "Address=192.168.1.20/24" in c.child.before
    out = c.send("n")
    assert "Nothing was changed." in out
    assert "DHCP=yes" in (net / "50-coffer-eth7.network").read_text()
    c.send("3", then=IFACE)
    c.send("eth7", then=ADDRESS)
    c.send("192.168.1.20/24", then=GATEWAY)
    c.send("192.168.1.1", then=DNS)
    c.send("192.168.1.1 9.9.9.9", then=r"\[y/n\]: ")
    c.send("y")
    assert (net / "50-coffer-eth7.network").read_text().endswith(
        "[Match]\nName=eth7\n\n[Network]\n"
        "Address=192.168.1.20/24\nGateway=192.168.1.1\nDNS=192.168.1.1\nDNS=9.9.9.9\n"
    )
    # Static without gateway or DNS; Enter at the interface prompt goes back.
    c.send("3", then=IFACE)
    c.send("eth8", then=ADDRESS)
    c.send("10.1.2.3/16", then=GATEWAY)
    c.send("", then=DNS)
    c.send("", then=r"\[y/n\]: ")
    c.send("y")
    assert (net / "50-coffer-eth8.network").read_text().endswith(
        "[Network]\nAddress=10.1.2.3/16\n"
    )
    c.send("2", then=IFACE)
    c.send("")
    c.send("b")
    c.leave()
    assert (cbox.console_dir / "reloads").read_text().count("reloaded") == 3
    changed = [e for e in cbox.audit() if e["event"] == "network_changed"]
    assert [e["detail"] for e in reversed(changed)] == [
        "eth7: DHCP",
        "eth7: static 192.168.1.20/24 gateway 192.168.1.1 dns 192.168.1.1,9.9.9.9",
        "eth8: static 10.1.2.3/16",
    ]
    assert all(e["protocol"] == "console" and e["id"] == 1804 for e in changed)


def test_locked_accounts_are_listed_and_unlocked(cbox):
    cbox.add_user("bob")
    cbox.cli("policy", "set", "lockout.max_failures=2")
    for _ in range(2):
        assert not ssh_password_login(cbox, "bob", "wrong-password-here")
    c = Console(cbox)
    c.send("3")
    out = c.send("1")
    assert re.search(r"bob +127\.0\.0\.1 +\d{4}-", out), out
    c.send("2", then="Account to unlock")
    c.send("nobody-here", then="Account to unlock")
    assert 'there is no account named "nobody-here"; try again' in c.child.before
    out = c.send("bob")
    assert "Unlocked bob (1 lock record(s) cleared)." in out
    out = c.send("1")
    assert "No account is locked." in out
    c.send("2", then="Account to unlock")
    c.send("")
    c.send("b")
    c.leave()
    assert ssh_password_login(cbox, "bob", PASSWORD)
    unlocked = [e for e in cbox.audit(user="bob") if e["event"] == "account_unlocked"]
    assert unlocked and unlocked[0]["protocol"] == "console"


def reset_dialog(c):
    c.send("3")
    c.send("3", then=r"type this code: (\d{4}) (\d{4})")
    code = c.child.match.group(1) + c.child.match.group(2)
    c.expect("Code")
    return code


def test_owner_reset_with_the_code_on_screen(cbox):
    secret, _ = cbox.enrol(OWNER)
    c = Console(cbox)
    code = reset_dialog(c)
    wrong = "00000000" if code != "00000000" else "11111111"
    c.send(wrong, then="Code")
    assert "That is not the code shown on the screen" in c.child.before
    c.send(code[:4] + " " + code[4:], then="New password for owner: ")
    c.send("short", then="Type it again: ")
    c.send("short", then="New password for owner: ")
    assert "password refused" in c.child.before
    c.send(NEW_PASSWORD, then="Type it again: ")
    c.send(NEW_PASSWORD + "x", then="New password for owner: ")
    assert "The two passwords differ" in c.child.before
    c.send(NEW_PASSWORD, then="Type it again: ")
    out = c.send(NEW_PASSWORD)
    assert "Done: owner has a new password and no two-factor enrolment" in out
    c.send("b")
    c.leave()
    assert NEW_PASSWORD not in c.text(), "the password is not echoed"
    resets = [e for e in cbox.audit() if e["event"] == "console_reset"]
    assert len(resets) == 1 and resets[0]["id"] == 1800 and resets[0]["account"] == OWNER
    assert resets[0]["protocol"] == "console"
    assert "TOTP and recovery codes removed" in resets[0]["detail"]
    # The new password alone logs in: the code is gone with the enrolment.
    assert ssh_password_login(cbox, OWNER, NEW_PASSWORD)
    assert not ssh_password_login(cbox, OWNER, PASSWORD)


def test_owner_reset_cancelled_three_wrong_codes_and_empty_answers(cbox):
    c = Console(cbox)
    code = reset_dialog(c)
    c.send("", then=MENU)
    assert "Cancelled: nothing was changed." in c.child.before
    c.send("3", then=r"type this code: (\d{4}) (\d{4})")
    code = c.child.match.group(1) + c.child.match.group(2)
    wrong = "00000000" if code != "00000000" else "11111111"
    c.expect("Code")
    c.send(wrong, then="Code")
    c.send(wrong, then="Code")
    out = c.send(wrong)
    assert "Three wrong codes: cancelled, nothing was changed." in out
    c.send("3", then=r"type this code: (\d{4}) (\d{4})")
    code = c.child.match.group(1) + c.child.match.group(2)
    c.expect("Code")
    c.send(code, then="New password for owner: ")
    out = c.send("")
    assert "Cancelled: nothing was changed." in out
    c.send("b")
    c.leave()
    assert "console_reset" not in audit_events(cbox)
    assert ssh_password_login(cbox, OWNER, PASSWORD)


def test_a_dropped_line_leaves_no_half_change(cbox):
    c = Console(cbox)
    code = reset_dialog(c)
    c.send(code, then="New password for owner: ")
    c.send(NEW_PASSWORD, then="Type it again: ")
    # The line drops before the last answer: SIGHUP, as a serial hang-up.
    c.child.close(force=True)
    assert "console_reset" not in audit_events(cbox)
    assert ssh_password_login(cbox, OWNER, PASSWORD)


def test_ctrl_d_and_ctrl_c_leave_cleanly(cbox):
    c = Console(cbox)
    c.child.sendcontrol("d")
    c.expect("Leaving the console.")
    c.child.expect(pexpect.EOF)
    c.child.close()
    assert c.child.exitstatus == 0
    c = Console(cbox)
    c.child.sendcontrol("z")  # ignored: nothing could resume a stopped console
    c.send("3")
    c.send("2", then="Account to unlock")
    c.child.sendcontrol("c")
    c.expect("Leaving the console.")
    c.child.expect(pexpect.EOF)
    c.child.close()
    assert c.child.exitstatus == 0 and c.child.signalstatus is None


def test_logs_audit_events_and_log_lines(cbox):
    c = Console(cbox)
    c.send("4")
    c.send("1", then="How many")
    c.send("lots", then="How many")
    assert '"lots": type a number from 1 to 500.' in c.child.before
    c.send("0", then="How many")
    out = c.send("5")
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d 1700 box_claimed owner - cli", out), out
    c.send("1", then="How many")
    out = c.send("")
    assert "1500 account_created owner" in out
    c.send("2", then="How many")
    out = c.send("")
    assert "first log line" in out and "second log line" in out
    c.send("b")
    c.leave()


def test_logs_without_a_journal(tmp_path):
    extra = console_section(tmp_path / "console", log='["no-such-journal-program"]')
    b = Box(tmp_path, extra)
    try:
        c = Console(b)
        c.send("4")
        c.send("2", then="How many")
        out = c.send("3")
        assert "The journal is not available here (no-such-journal-program not found)." in out
        c.send("b")
        c.leave()
    finally:
        b.stop()


def test_reboot_runs_the_configured_command(cbox):
    c = Console(cbox)
    c.send("5")
    c.send("1", then=r"\[y/n\]: ")
    out = c.send("n")
    assert "Not rebooting." in out
    c.send("1", then=r"\[y/n\]: ")
    out = c.send("y")
    assert "Done: sh -c echo rebooted" in out
    c.send("b")
    c.leave()
    assert (cbox.console_dir / "reboots").read_text() == "rebooted\n"
    assert "console_reboot" in audit_events(cbox)


def test_reboot_command_missing_is_said_plainly(tmp_path):
    extra = console_section(tmp_path / "console", reboot='["no-such-reboot-program"]')
    b = Box(tmp_path, extra)
    try:
        c = Console(b)
        c.send("5")
        c.send("1", then=r"\[y/n\]: ")
        out = c.send("y")
        assert "no-such-reboot-program is not available here, so the console cannot reboot." in out
        c.send("b")
        c.leave()
    finally:
        b.stop()


def test_technician_pin_is_asked_once_before_the_first_change(cbox):
    r = cbox.cli("console-pin", "set", "--pin-file", "-", input="12\n", check=False)
    assert r.returncode == 2 and "4 to 64 characters" in r.stderr
    cbox.cli("console-pin", "set", "--pin-file", "-", input="482913\n")
    assert "console_pin_set" in audit_events(cbox)
    c = Console(cbox)
    # Looking needs no PIN.
    c.send("1")
    c.send("3")
    c.send("1")
    # A change does.
    c.send("2", then="Technician PIN")
    c.send("000000", then="Technician PIN")
    assert "Wrong PIN; 4 more tries before PIN checks pause." in c.child.before
    c.send("", then=MENU)
    c.send("2", then="Technician PIN")
    c.send("482913", then="Account to unlock")
    assert "482913" not in c.text(), "the PIN is not echoed"
    c.send("")
    c.send("b")
    # Asked once per session: the next change goes straight on.
    c.send("5")
    c.send("1", then=r"\[y/n\]: ")
    c.send("n")
    c.send("b")
    c.leave()
    assert "console_pin_failed" in audit_events(cbox)
    cbox.cli("console-pin", "clear")
    r = cbox.cli("console-pin", "clear", check=False)
    assert r.returncode == 2 and "no technician PIN is set" in r.stderr


def test_factory_reset_with_the_server_running_keeps_user_files(cbox):
    cbox.add_user("bob")
    home = cbox.data / "files" / "bob"
    home.mkdir(parents=True)
    (home / "report.txt").write_text("keep me")
    c = Console(cbox)
    c.send("5")
    c.send("2", then=RESET_PROMPT)
    assert "The box is then unclaimed" in c.child.before
    c.send("reset", then=RESET_PROMPT)
    assert "Type RESET in capitals to go on." in c.child.before
    c.send("RESET", then=r"too\? \[y/n\]: ")
    c.send("y", then=FILES_PROMPT)
    c.send("delete files", then=FILES_PROMPT)
    assert "Type DELETE FILES in capitals" in c.child.before
    out = c.send("")
    assert "The users' files are kept." in out
    assert re.search(r"Factory reset done: removed data-key, .*coffer\.redb", out), out
    assert "The server stops now" in out
    c.send("b")
    c.leave()
    cbox.proc.wait(timeout=30)
    left = sorted(p.name for p in cbox.data.iterdir())
    assert left == ["files"], left
    assert (home / "report.txt").read_text() == "keep me"
    # Back to claimable.
    cbox.cli("setup", "--admin", "newowner", "--password-file", str(cbox.pw),
             "--hash-cost", "m=64,t=1,p=1")
    assert "claimed:   yes, by newowner" in cbox.cli("status").stdout


def test_factory_reset_without_the_server_can_delete_user_files(cbox):
    home = cbox.data / "files" / "alice"
    home.mkdir(parents=True)
    (home / "x.bin").write_bytes(b"x")
    cbox.stop()
    c = Console(cbox)
    c.send("5")
    c.send("2", then=RESET_PROMPT)
    c.send("", then=MENU)
    assert "Cancelled: nothing was changed." in c.child.before
    c.send("2", then=RESET_PROMPT)
    c.send("RESET", then=r"too\? \[y/n\]: ")
    c.send("y", then=FILES_PROMPT)
    out = c.send("DELETE FILES")
    assert "The users' files were deleted." in out
    assert "the next server start sets it up anew" in out
    out = c.send("b")
    out = c.send("1")
    assert "UNCLAIMED" in out
    c.leave()
    assert sorted(p.name for p in cbox.data.iterdir()) == ["files"]
    assert list((cbox.data / "files").iterdir()) == []
    cbox.cli("setup", "--admin", OWNER, "--password-file", str(cbox.pw), "--hash-cost", "m=64,t=1,p=1")


def test_the_documented_main_menu_is_the_real_one(cbox):
    doc = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    documented = re.search(r"```\n(Main menu\n.*?)```", doc, re.S).group(1).strip().splitlines()
    c = Console(cbox)
    shown = c.text().replace("\r", "")
    menu = shown[shown.rindex("Main menu"):].splitlines()[:len(documented)]
    assert menu == documented, (menu, documented)
    assert "owner owner" not in c.send("1")
    c.leave()
