"""The HTTPS listener as a TLS client sees it: protocol versions and cipher
suites (OpenSSL's s_client), the certificate and its fingerprint in the log
and in `coffer status`, the plain-HTTP redirect port, and the claim code
shown on the box."""

import hashlib
import re
import socket
import ssl
import subprocess

import pytest

from conftest import COFFER


def handshake(port, *args):
    """Runs `openssl s_client` against the box; returns (ok, output)."""
    r = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost", *args],
        input="", capture_output=True, text=True, timeout=30,
    )
    out = r.stdout + r.stderr
    ok = r.returncode == 0 and "Cipher is (NONE)" not in out and "New, (NONE)" not in out
    return ok, out


def leaf_der(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.getpeercert(binary_form=True), tls.version()


def test_tls_13_and_12_with_aead_suites_only(box):
    ok, out = handshake(box.https_port, "-tls1_3")
    assert ok and "TLSv1.3" in out, out
    ok, out = handshake(box.https_port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert ok and "ECDHE-ECDSA-AES128-GCM-SHA256" in out, out
    # CBC suites and static-RSA key exchange are refused.
    for cipher in ["ECDHE-ECDSA-AES128-SHA", "AES128-GCM-SHA256", "AES256-SHA256"]:
        ok, out = handshake(box.https_port, "-tls1_2", "-cipher", cipher)
        assert not ok, f"{cipher} was accepted:\n{out}"
    # TLS 1.1 and older are refused.
    ok, out = handshake(box.https_port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
    assert not ok, out


def test_the_certificate_fingerprint_is_logged_and_shown_by_status(box):
    der, version = leaf_der(box.https_port)
    assert version in ("TLSv1.3", "TLSv1.2")
    digest = hashlib.sha256(der).hexdigest().upper()
    fingerprint = ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))
    assert fingerprint in box.log_text()
    assert f"certificate SHA-256 {fingerprint}" in box.cli("status").stdout
    key = box.data / "tls" / "key.pem"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    # The certificate names loopback and localhost.
    text = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-text"],
                          input=der, capture_output=True, timeout=10).stdout.decode()
    assert "DNS:localhost" in text and "IP Address:127.0.0.1" in text, text
    # A restart serves the same certificate.
    box.stop()
    second = subprocess.run([COFFER, "--data-dir", str(box.data), "status"],
                            capture_output=True, text=True, timeout=30)
    assert f"certificate SHA-256 {fingerprint}" in second.stdout


def test_the_redirect_port_only_redirects(box_factory):
    box = box_factory('\n[https]\nredirect_listen = "127.0.0.1:0"\n')
    status = box.cli("status").stdout
    port = int(re.search(r"http-redirect 127\.0\.0\.1:(\d+)", status).group(1))

    def ask(request):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(request)
            return s.recv(4096).decode(errors="replace")

    answer = ask(b"GET /files?path=%2Fa HTTP/1.1\r\nHost: nas.local:8080\r\n\r\n")
    assert answer.startswith("HTTP/1.1 301"), answer
    assert f"location: https://nas.local:{box.https_port}/files?path=%2Fa\r\n" in answer, answer
    # A crafted Host header cannot steer the redirect elsewhere.
    answer = ask(b"GET / HTTP/1.1\r\nHost: evil.example/x?\r\n\r\n")
    assert f"location: https://localhost:{box.https_port}/" in answer.lower(), answer
    # POSTs are redirected too, never served.
    answer = ask(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: nas\r\nContent-Length: 2\r\n\r\n{}")
    assert answer.startswith("HTTP/1.1 301"), answer


@pytest.fixture
def unclaimed(tmp_path):
    data = tmp_path / "data"
    config = tmp_path / "coffer.toml"
    import conftest
    config.write_text("version = 1\n" + conftest.service_section())
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen(
        [COFFER, "--data-dir", str(data), "--seal", "keyfile", "serve", "--config", str(config),
         "--sftp-listen", "127.0.0.1:0", "--https-listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=log,
    )
    line = proc.stdout.readline().decode()
    assert line.startswith("ready: sftp "), line
    yield data, tmp_path / "serve.log", int(line.split()[4].rsplit(":", 1)[1])
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


def test_an_unclaimed_box_shows_one_claim_code_in_the_log_and_status(unclaimed):
    data, log, port = unclaimed
    logged = re.findall(r"claim code ([A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4})", log.read_text())
    assert len(logged) == 1, log.read_text()
    assert f"https://" in log.read_text() and "/setup" in log.read_text()
    status = subprocess.run([COFFER, "--data-dir", str(data), "status"],
                            capture_output=True, text=True, timeout=30).stdout
    assert f"enter the claim code {logged[0]}" in status
    assert f":{port}/setup" in status
