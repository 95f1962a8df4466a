"""Slow clients on the HTTPS port. One address holding hundreds of slow
connections (request bodies that never finish, TLS handshakes that never
start) cannot keep the owner out, over HTTPS or SFTP, from another address;
a body that stalls or trickles is cut off with 408, a slow but steady one is
not; idle connections and unfinished handshakes are closed."""

import asyncio
import http.client
import json
import select
import socket
import ssl
import threading
import time

import paramiko

from conftest import OWNER, PASSWORD

FLOODER = "127.0.0.2"
OWNER_ADDRESS = "127.0.0.3"
LOGIN = json.dumps({"username": OWNER, "password": PASSWORD}).encode()


def insecure():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Flood:
    """Connections from one address, opened and held by an event loop on
    a thread of its own until `close`."""

    def __init__(self, box, bodies, handshakes, ssh, source=FLOODER):
        self.box = box
        self.source = source
        self.plan = (bodies, handshakes, ssh)
        self.opened = {"body": 0, "handshake": 0, "ssh": 0}
        self.writers = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._open(), self.loop).result(timeout=120)

    async def _hold(self, kind, port, tls):
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=insecure() if tls else None,
                                        local_addr=(self.source, 0)), 30)
            if kind == "body":
                writer.write(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: box\r\n"
                             b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
                             b"{\"username\": ")
                await writer.drain()
            self.writers.append(writer)
            self.opened[kind] += 1
        except (OSError, asyncio.TimeoutError, ssl.SSLError):
            pass

    async def _open(self):
        bodies, handshakes, ssh = self.plan
        await asyncio.gather(*[self._hold("body", self.box.https_port, True) for _ in range(bodies)])
        await asyncio.gather(
            *[self._hold("handshake", self.box.https_port, False) for _ in range(handshakes)],
            *[self._hold("ssh", self.box.port, False) for _ in range(ssh)],
        )

    def close(self):
        async def shut():
            for w in self.writers:
                w.transport.abort()
        asyncio.run_coroutine_threadsafe(shut(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)


def https_login(box, source=OWNER_ADDRESS):
    """(status, seconds) of a REST login from `source` on a new connection."""
    started = time.monotonic()
    conn = http.client.HTTPSConnection("127.0.0.1", box.https_port, context=insecure(),
                                       timeout=30, source_address=(source, 0))
    try:
        conn.request("POST", "/api/v1/auth/login", body=LOGIN,
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        answer = json.loads(response.read())
        assert response.status == 200 and answer.get("token"), answer
        return response.status, time.monotonic() - started
    finally:
        conn.close()


def sftp_login(box, source=OWNER_ADDRESS):
    """Seconds for a password login over SSH from `source` and one listing."""
    started = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", box.port), timeout=30, source_address=(source, 0))
    t = paramiko.Transport(sock)
    try:
        t.start_client(timeout=30)
        t.auth_password(OWNER, PASSWORD, fallback=False)
        assert t.is_authenticated()
        sftp = paramiko.SFTPClient.from_transport(t)
        sftp.listdir(".")
        sftp.close()
        return time.monotonic() - started
    finally:
        t.close()


def test_the_owner_logs_in_while_one_address_holds_300_slow_connections(box):
    # 250 half-sent login bodies and 50 TCP connections that never start
    # TLS on the HTTPS port, and 300 silent connections on the SSH port.
    flood = Flood(box, bodies=250, handshakes=50, ssh=300)
    try:
        # Only the bodies' count says what the server took: the others are
        # TCP connections, which the kernel completes before the server
        # decides whether to keep them.
        assert 1 <= flood.opened["body"] <= 16, flood.opened
        time.sleep(0.5)
        status, https_took = https_login(box)
        sftp_took = sftp_login(box)
        print(f"\nowner logins with the flood held (opened: {flood.opened}): "
              f"HTTPS {https_took:.3f} s, SFTP {sftp_took:.3f} s")
        # The figure is well under 2 s; the margin is for a loaded machine.
        assert https_took < 5, f"HTTPS login took {https_took:.1f} s"
        assert sftp_took < 5, f"SFTP login took {sftp_took:.1f} s"
        # The flooding address is held to its share; its next connection is
        # closed at once while the owner's address is not.
        try:
            https_login(box, source=FLOODER)
            raise AssertionError("the flooding address got past its share")
        except (OSError, http.client.HTTPException, ssl.SSLError):
            pass
    finally:
        flood.close()



def test_many_addresses_filling_the_port_make_room_for_a_newcomer(box_factory):
    # Four addresses at their share (8 of 32) fill the port with half-sent
    # bodies; the owner, from a fifth, still logs in: the heaviest address
    # gives up its oldest connection.
    box = box_factory('[https]\nmax_connections = 32\nmax_connections_per_address = 8\n')
    floods = [Flood(box, bodies=8, handshakes=0, ssh=0, source=f"127.0.0.{n}") for n in (2, 4, 5, 6)]
    try:
        assert sum(f.opened["body"] for f in floods) == 32, [f.opened for f in floods]
        time.sleep(0.5)
        status, took = https_login(box)
        assert status == 200
        assert took < 5, f"HTTPS login took {took:.1f} s"
    finally:
        for f in floods:
            f.close()


def raw_tls(box, source=OWNER_ADDRESS):
    raw = socket.create_connection(("127.0.0.1", box.https_port), timeout=30, source_address=(source, 0))
    return insecure().wrap_socket(raw)


def read_all(sock):
    """Everything until the server closes, and when that was."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            break
        if not chunk:
            break
        data += chunk
    return data, time.monotonic()


SHORT = '[https]\nbody_timeout = "1s"\nrequest_timeout = "2s"\nhandshake_timeout = "1s"\nmin_body_rate = 200\n'


def test_a_stalled_or_trickling_body_is_cut_off_with_408(box_factory):
    box = box_factory(SHORT)
    head = (b"POST /api/v1/auth/login HTTP/1.1\r\nHost: box\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n")
    # No body at all.
    s = raw_tls(box)
    s.sendall(head % len(LOGIN))
    sent = time.monotonic()
    answer, closed = read_all(s)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"request_timeout" in answer and b"connection: close" in answer.lower()
    assert 0.8 < closed - sent < 5, closed - sent
    s.close()
    # The first byte in time, then nothing.
    s = raw_tls(box)
    s.sendall(head % len(LOGIN) + LOGIN[:5])
    sent = time.monotonic()
    answer, closed = read_all(s)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert 0.8 < closed - sent < 5, closed - sent
    s.close()
    # A trickle below the minimum rate (200 B/s): 10 bytes every 0.2 s.
    padded = LOGIN[:-1] + b" " * 2000 + b"}"
    s = raw_tls(box)
    s.sendall(head % len(padded))
    started = time.monotonic()
    try:
        for i in range(0, len(padded), 10):
            if select.select([s], [], [], 0)[0]:
                break  # the server answered
            s.sendall(padded[i:i + 10])
            time.sleep(0.2)
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
        pass
    answer, _ = read_all(s)
    # The server may reset the connection on bytes it will not read, and
    # the 408 can be lost with the reset; either way it ends early.
    assert answer.startswith(b"HTTP/1.1 408 ") or answer == b"", answer
    assert time.monotonic() - started < 8
    s.close()
    # The owner is not blocked by any of it, and the log says what happened.
    https_login(box)
    assert "request body arrived too slowly" in box.log_text()


def test_a_slow_but_steady_body_is_accepted(box_factory):
    box = box_factory(SHORT)
    # 100 bytes every 0.2 s (500 B/s, over 200 B/s) for about 2.5 s.
    padded = LOGIN[:-1] + b" " * 1200 + b"}"
    s = raw_tls(box)
    s.sendall(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: box\r\nContent-Type: application/json\r\n"
              b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(padded))
    started = time.monotonic()
    for i in range(0, len(padded), 100):
        s.sendall(padded[i:i + 100])
        time.sleep(0.2)
    answer, _ = read_all(s)
    assert time.monotonic() - started > 2
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert b'"token"' in answer
    s.close()


def test_idle_connections_and_unfinished_handshakes_are_closed(box_factory):
    box = box_factory(SHORT)
    # A kept-alive connection that sends nothing more after one answer.
    conn = http.client.HTTPSConnection("127.0.0.1", box.https_port, context=insecure(), timeout=30)
    conn.request("GET", "/api/v1/openapi.json")
    assert conn.getresponse().read()
    idle_since = time.monotonic()
    answer, closed = read_all(conn.sock)
    assert answer == b""
    assert 1.5 < closed - idle_since < 6, closed - idle_since
    conn.close()
    # A TCP connection that never starts TLS.
    raw = socket.create_connection(("127.0.0.1", box.https_port), timeout=30)
    opened = time.monotonic()
    assert raw.recv(1) == b""
    assert 0.8 < time.monotonic() - opened < 5
    raw.close()
