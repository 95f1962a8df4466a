"""End-to-end test of the firmware on a real boot: the test image in QEMU
with a software TPM.

The steps run in order on one data disk: first boot unclaimed, the claim,
TOTP enrolment, an SFTP login with password + code and a transfer, the seal
by the TPM, a reboot that keeps everything, then the same disk with a new
TPM, which refuses to unseal and leaves the technician a factory reset at
the serial console. Last, the image build is shown to be reproducible.
"""

import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import time

import paramiko
import pytest

from conftest import (
    CLAIM_CODE,
    ROOT,
    Vm,
    fresh_code,
    https_json,
    image_dir,
    record,
)

OWNER = "owner"
USER = "alice"
PASSWORD = "correct-horse-battery-staple-9"
CONTENT = os.urandom(256 * 1024)
STATE = {}


@pytest.fixture(scope="module")
def disk(vm_dir):
    """The data disk and two swtpm states: the box's own and a stranger's."""
    paths = {
        "data": vm_dir / "data.img",
        "tpm": vm_dir / "tpm-box",
        "other_tpm": vm_dir / "tpm-other",
    }
    for p in paths.values():
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    yield paths
    vm = STATE.get("vm")
    if vm:
        vm.kill()


def boot(vm_dir, disk, tpm, name):
    previous = STATE.pop("vm", None)
    if previous:
        previous.kill()
    vm = Vm(vm_dir, disk["data"], disk[tpm], name)
    STATE["vm"] = vm
    return vm


def claim(vm):
    """Claims the box, enrols the owner's TOTP, adds a user with TOTP.

    Through HTTPS when the server serves it (the claim code from the serial
    console, then the REST API through the forwarded port); otherwise with
    the command line on the guest's test shell (`coffer setup`, `coffer user
    add`, `coffer mfa enroll/confirm`). Returns {account: TOTP secret}.
    """
    secrets = {}
    if vm.https:
        code = vm.serial.wait(CLAIM_CODE.pattern, 30).group(1)
        port = vm.https_port
        status, _ = https_json(port, "POST", "/api/v1/claim",
                               {"claim_code": code, "username": OWNER, "password": PASSWORD})
        assert status == 201
        # The user is added before the owner enrols: a change of the
        # owner's second factor ends the owner's sessions.
        for name in (OWNER, USER):
            status, login = https_json(port, "POST", "/api/v1/auth/login",
                                       {"username": name, "password": PASSWORD})
            assert status == 200, login
            token = login["token"]
            if name == OWNER:
                status, _ = https_json(port, "POST", "/api/v1/users",
                                       {"username": USER, "password": PASSWORD, "role": "user"},
                                       token)
                assert status == 201
            status, start = https_json(port, "POST", "/api/v1/me/mfa/totp", {}, token)
            assert status in (200, 201), start
            secrets[name] = start["secret"]
            status, done = https_json(port, "POST", "/api/v1/me/mfa/totp/confirm",
                                      {"code": fresh_code(start["secret"])}, token)
            assert status in (200, 201) and len(done["recovery_codes"]) >= 8, done
        return secrets
    vm.sh(f"printf '%s\\n' '{PASSWORD}' > /tmp/pw")
    vm.sh(f"coffer setup --admin {OWNER} --password-file /tmp/pw", timeout=120)
    vm.sh(f"coffer user add {USER} --role user --password-file /tmp/pw", timeout=120)
    for name in (OWNER, USER):
        _, out = vm.sh(f"coffer mfa enroll {name}")
        secret = re.search(r"secret: ([A-Z2-7]+)", out).group(1)
        _, out = vm.sh(f"coffer mfa confirm {name} {fresh_code(secret)}")
        assert len(re.findall(r"\b[a-z0-9]{4,}-[a-z0-9]{4,}\b", out)) >= 8, out
        secrets[name] = secret
    return secrets


def sftp_session(vm, name, secret):
    """Logs in over SFTP with keyboard-interactive: password, then code."""
    code = fresh_code(secret)
    prompts = []

    def answer(_title, _instructions, fields):
        out = []
        for text, _echo in fields:
            prompts.append(text)
            out.append(PASSWORD if text.startswith("Password") else code)
        return out

    transport = paramiko.Transport(("127.0.0.1", vm.sftp_port))
    transport.start_client(timeout=60)
    transport.auth_interactive(name, answer)
    assert transport.is_authenticated()
    assert any(p.startswith("Authentication code") for p in prompts), prompts
    return transport, paramiko.SFTPClient.from_transport(transport)


def test_first_boot_is_unclaimed(vm_dir, disk):
    vm = boot(vm_dir, disk, "tpm", "boot1")
    seconds = vm.wait_ready()
    record("first boot to ready, s (new data disk, new TPM)", seconds)
    log = vm.serial.text()
    if vm.https:
        assert CLAIM_CODE.search(log), "no claim code on the serial console"
    else:
        assert "this box is unclaimed" in log
    assert "sealed a new data key with the TPM" in log
    _, status = vm.sh("coffer status")
    assert "claimed:   no" in status
    # The interactive API viewer, installed where the packaged server looks.
    _, listing = vm.sh("ls /usr/share/coffer/apidoc")
    assert "swagger-ui-bundle.js" in listing and "LICENSE" in listing, listing


def test_claim_enrol_and_transfer_over_sftp():
    vm = STATE["vm"]
    started = time.time()
    STATE["secrets"] = claim(vm)
    record("claim and two TOTP enrolments, s", time.time() - started)
    started = time.time()
    transport, sftp = sftp_session(vm, USER, STATE["secrets"][USER])
    with sftp.open("report.bin", "wb") as f:
        f.write(CONTENT)
    with sftp.open("report.bin", "rb") as f:
        assert f.read() == CONTENT
    transport.close()
    record("SFTP login (password + code), 256 KiB up and down, s", time.time() - started)
    _, listing = vm.sh(f"ls -l /var/lib/coffer/files/{USER}/")
    assert "report.bin" in listing


def test_seeds_are_sealed_by_the_tpm():
    vm = STATE["vm"]
    _, status = vm.sh("coffer status")
    assert "sealing:   TPM 2.0" in status, status
    assert "claimed:   yes" in status, status
    _, files = vm.sh("ls /var/lib/coffer")
    assert "data-key.tpm" in files.split() and "data-key" not in files.split()


def test_reboot_keeps_everything_and_unseals_again(vm_dir, disk):
    STATE["vm"].power_off()
    vm = boot(vm_dir, disk, "tpm", "boot2")
    seconds = vm.wait_ready()
    record("reboot to ready, s (same disk, same TPM)", seconds)
    log = vm.serial.text()
    assert "data key sealed by the TPM" in log
    assert "sealed a new data key" not in log
    assert "unclaimed" not in log.split("ready:")[0]
    transport, sftp = sftp_session(vm, USER, STATE["secrets"][USER])
    with sftp.open("report.bin", "rb") as f:
        assert f.read() == CONTENT
    transport.close()


def test_another_tpm_refuses_and_the_technician_can_reset(vm_dir, disk):
    STATE["vm"].power_off()
    vm = boot(vm_dir, disk, "other_tpm", "boot3")
    started = vm.started
    vm.serial.wait(r"does not belong to this TPM", 120)
    record("boot with a stranger's TPM to the refusal, s", time.time() - started)
    vm.serial.wait(r"factory-reset the box", 10)
    _, files = vm.sh("ls /var/lib/coffer")
    assert "data-key.tpm" in files.split(), "the sealed key must stay until a technician acts"
    # The status screen says why, then Power, Factory reset, as a technician
    # at the serial line would.
    console = vm.serial
    mark = console.mark()
    console.send("1\r")
    console.wait(r"ERROR: the sealed data key does not belong to this TPM", 60, mark)
    mark = console.mark()
    console.send("5\r")
    console.wait(r"Factory reset", 30, mark)
    console.send("2\r")
    console.wait(r"Type RESET", 30, mark)
    console.send("RESET\r")
    console.wait(r"Delete the users' files too", 30, mark)
    console.send("n\r")
    console.wait(r"Factory reset done", 60, mark)
    # The service starts again on the wiped data dir: a new key sealed by
    # this TPM, unclaimed, and the users' files kept.
    vm.serial.wait(r"sealed a new data key with the TPM", 120, mark)
    vm.serial.wait(r"ready: sftp", 60, mark)
    if vm.https:
        vm.serial.wait(CLAIM_CODE.pattern, 30, mark)
    _, status = vm.sh("coffer status")
    assert "claimed:   no" in status and "TPM 2.0" in status, status
    _, listing = vm.sh(f"ls /var/lib/coffer/files/{USER}/")
    assert "report.bin" in listing
    vm.power_off()
    STATE.pop("vm", None)


def test_image_build_is_reproducible(tmp_path):
    """Two builds of the image from one binary, from two copies of the
    sources in different directories, give the same bytes."""
    binary = os.environ.get("COFFER_IMAGE_BINARY")
    binary = binary and os.path.abspath(binary)
    if not binary:
        pytest.skip("COFFER_IMAGE_BINARY not set (tests/run sets it)")
    epoch = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"],
                           capture_output=True, text=True, check=True).stdout.strip()
    sums = []
    for name in ("first", "second-with-a-longer-path"):
        src = tmp_path / name
        for part in ("image", "systemd", "tools"):
            shutil.copytree(ROOT / part, src / part, symlinks=True)
        out = tmp_path / f"out-{name}"
        subprocess.run(
            [str(src / "image" / "build-test-image"), "--coffer", binary, "--out", str(out),
             "--cache", str(ROOT / "target" / "image-cache")],
            check=True, env={**os.environ, "SOURCE_DATE_EPOCH": epoch},
            stdout=subprocess.DEVNULL,
        )
        sums.append({f: hashlib.sha256((out / f).read_bytes()).hexdigest()
                     for f in ("vmlinuz", "initramfs.cpio.gz")})
    for f, digest in sums[0].items():
        print(f"{f}: {digest} (build 1) {sums[1][f]} (build 2)")
        record(f"sha256 of {f}, both builds", digest)
    assert sums[0] == sums[1]
    size = (tmp_path / "out-first" / "initramfs.cpio.gz").stat().st_size
    record("initramfs size, MiB", size / 1048576)
