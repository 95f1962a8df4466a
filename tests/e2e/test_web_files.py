"""Resumable chunked uploads and folder creation through the REST API:
wrong offsets, limits, confinement, other accounts, permissions and a
connection that breaks mid-chunk."""

import os
import socket
import ssl
import time

import pytest

from conftest import Box
from test_rest import Api, error
USER_PW = "violet-harbour-lantern-73"
CHUNK = 256 * 1024
CONFIG = f"[https]\nmax_upload = {64 * 1024 * 1024}\n"


@pytest.fixture
def fbox(tmp_path):
    b = Box(tmp_path, CONFIG)
    yield b
    b.stop()


def home(box, user):
    return box.data / "files" / user


def hidden_partials(folder):
    return [p.name for p in folder.rglob(".*.upload-*")]


def user_api(box, name, *flags):
    box.add_user(name, "user", USER_PW)
    if flags:
        box.cli("user", "set", name, *flags)
    a = Api(box.https_port)
    a.token = a.token_for(name, USER_PW)
    return a


# --- resumable uploads through the API -------------------------------------

def test_a_resumable_upload_checks_offsets_limits_names_and_owners(fbox):
    ann = user_api(fbox, "ann")
    data = os.urandom(3 * CHUNK + 1000)
    r = ann.post("/files/uploads", json={"path": "/in/deep/big.bin", "size": len(data), "parents": True})
    assert r.status_code == 201, r.text
    up = r.json()
    assert up["offset"] == 0 and up["size"] == len(data) and up["path"] == "/in/deep/big.bin"
    assert up["expires_at"] > time.time()
    uid = up["id"]
    assert hidden_partials(home(fbox, "ann")), "a hidden partial file while it runs"

    r = ann.patch(f"/files/uploads/{uid}?offset=0", data=data[:CHUNK])
    assert r.status_code == 200 and r.json()["offset"] == CHUNK, r.text
    # A chunk at the wrong offset: refused with what the server holds.
    r = ann.patch(f"/files/uploads/{uid}?offset=0", data=data[:CHUNK])
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "wrong_offset" and r.json()["offset"] == CHUNK
    assert r.headers["Upload-Offset"] == str(CHUNK)
    r = ann.patch(f"/files/uploads/{uid}?offset={2 * CHUNK}", data=data[:10])
    assert r.status_code == 409 and r.json()["offset"] == CHUNK
    # No offset, a bad one: 400.
    error(ann.patch(f"/files/uploads/{uid}", data=b"x"), 400)
    error(ann.patch(f"/files/uploads/{uid}?offset=-1", data=b"x"), 400)
    # Nothing under the final name yet.
    assert not (home(fbox, "ann") / "in" / "deep" / "big.bin").exists()

    # Another account sees no such upload, and cannot write to it or end it.
    bob = user_api(fbox, "bob")
    error(bob.get(f"/files/uploads/{uid}"), 404, "not_found")
    error(bob.patch(f"/files/uploads/{uid}?offset={CHUNK}", data=data[CHUNK:CHUNK + 10]), 404)
    error(bob.delete(f"/files/uploads/{uid}"), 404)
    assert ann.get(f"/files/uploads/{uid}").json()["offset"] == CHUNK

    # A chunk past the announced size: 413, and the bytes within it kept.
    r = ann.patch(f"/files/uploads/{uid}?offset={CHUNK}", data=data[CHUNK:] + b"extra")
    error(r, 413, "too_large")
    held = ann.get(f"/files/uploads/{uid}").json()["offset"]
    assert CHUNK <= held <= len(data)
    # The rest from where the server is; the last chunk puts it in place.
    r = ann.patch(f"/files/uploads/{uid}?offset={held}", data=data[held:])
    assert r.status_code == 201, r.text
    assert r.json() == {"path": "/in/deep/big.bin", "size": len(data)}
    assert (home(fbox, "ann") / "in" / "deep" / "big.bin").read_bytes() == data
    assert hidden_partials(home(fbox, "ann")) == []
    error(ann.get(f"/files/uploads/{uid}"), 404)

    # Larger than https.max_upload, a folder, the home, an existing file.
    error(ann.post("/files/uploads", json={"path": "/huge", "size": 64 * 1024 * 1024 + 1}), 413, "too_large")
    error(ann.post("/files/uploads", json={"path": "/in", "size": 1}), 409, "is_a_folder")
    error(ann.post("/files/uploads", json={"path": "/", "size": 1}), 400)
    error(ann.post("/files/uploads", json={"path": "/in/deep/big.bin", "size": 1}), 409, "exists")
    error(ann.post("/files/uploads", json={"path": "/x", "size": -1}), 400)
    error(ann.post("/files/uploads", json={"path": "/x", "size": 1, "bogus": 1}), 400)
    # Traversal stays inside the home: `..` stops at the home folder.
    r = ann.post("/files/uploads", json={"path": "../../../escape.bin", "size": 3})
    assert r.status_code == 201, r.text
    assert r.json()["path"] == "/escape.bin"
    assert ann.patch(f"/files/uploads/{r.json()['id']}?offset=0", data=b"abc").status_code == 201
    assert (home(fbox, "ann") / "escape.bin").read_bytes() == b"abc"
    assert not (fbox.data / "escape.bin").exists() and not (fbox.data / "files" / "escape.bin").exists()
    # A name through a symbolic link that leads out is refused.
    os.symlink("/tmp", home(fbox, "ann") / "out")
    r = ann.post("/files/uploads", json={"path": "/out/x.bin", "size": 1})
    assert r.status_code in (403, 404), r.text

    # Cancel: the hidden file goes.
    r = ann.post("/files/uploads", json={"path": "/gone.bin", "size": 100})
    gid = r.json()["id"]
    assert ann.patch(f"/files/uploads/{gid}?offset=0", data=b"a" * 50).json()["offset"] == 50
    assert ann.delete(f"/files/uploads/{gid}").status_code == 204
    assert hidden_partials(home(fbox, "ann")) == []
    assert not (home(fbox, "ann") / "gone.bin").exists()
    error(ann.delete(f"/files/uploads/{gid}"), 404)

    # Bounded: eight open uploads per account.
    ids = [ann.post("/files/uploads", json={"path": f"/n{i}", "size": 1}).json()["id"] for i in range(8)]
    error(ann.post("/files/uploads", json={"path": "/n9", "size": 1}), 429, "too_many_uploads")
    for i in ids:
        ann.delete(f"/files/uploads/{i}")


def test_resumable_uploads_keep_the_accounts_permissions(fbox):
    ro = user_api(fbox, "reader", "--read-only", "true")
    error(ro.post("/files/uploads", json={"path": "/a.bin", "size": 3}), 403)
    keeper = user_api(fbox, "keeper", "--no-delete", "true")
    r = keeper.post("/files/uploads", json={"path": "/a.bin", "size": 3})
    assert keeper.patch(f"/files/uploads/{r.json()['id']}?offset=0", data=b"one").status_code == 201
    # Replacing needs the right to delete, refused before any byte.
    error(keeper.post("/files/uploads", json={"path": "/a.bin", "size": 3, "overwrite": True}), 403)
    assert (home(fbox, "keeper") / "a.bin").read_bytes() == b"one"


def test_a_chunk_cut_off_mid_way_keeps_what_arrived_and_the_upload_resumes(fbox):
    ann = user_api(fbox, "ann")
    data = os.urandom(2 * 1024 * 1024)
    uid = ann.post("/files/uploads", json={"path": "/wifi.bin", "size": len(data)}).json()["id"]
    # Announce the whole file, send 700 KiB, drop the connection.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", fbox.https_port), timeout=10)
    tls = ctx.wrap_socket(raw, server_hostname="localhost")
    head = (f"PATCH /api/v1/files/uploads/{uid}?offset=0 HTTP/1.1\r\nHost: localhost\r\n"
            f"Authorization: Bearer {ann.token}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode()
    tls.sendall(head + data[:700 * 1024])
    time.sleep(0.5)
    tls.close()
    deadline = time.time() + 10
    held = 0
    while time.time() < deadline:
        r = ann.get(f"/files/uploads/{uid}")
        held = r.json()["offset"]
        if held > 0 and ann.patch(f"/files/uploads/{uid}?offset={held}", data=b"").status_code != 409:
            break
        time.sleep(0.2)
    assert 0 < held <= 700 * 1024, held
    r = ann.patch(f"/files/uploads/{uid}?offset={held}", data=data[held:])
    assert r.status_code == 201, r.text
    assert (home(fbox, "ann") / "wifi.bin").read_bytes() == data


def test_plain_upload_makes_missing_folders_inside_the_home(fbox):
    ann = user_api(fbox, "ann")
    r = ann.put("/files/content", params={"path": "/a/b/c.txt", "parents": "true"}, data=b"deep")
    assert r.status_code == 201, r.text
    assert (home(fbox, "ann") / "a" / "b" / "c.txt").read_bytes() == b"deep"
    # Without parents, a missing folder is an error; a file on the way too.
    error(ann.put("/files/content", params={"path": "/x/y.txt"}, data=b"1"), 404)
    r = ann.put("/files/content", params={"path": "/a/b/c.txt/d.txt", "parents": "true"}, data=b"1")
    assert r.status_code in (400, 404, 409) and "directory" in r.text, r.text
    # mkdir with parents: made on the way, an existing folder accepted.
    assert ann.post("/files/mkdir", json={"path": "/p/q/r", "parents": True}).status_code == 201
    assert ann.post("/files/mkdir", json={"path": "/p/q", "parents": True}).status_code == 201
    error(ann.post("/files/mkdir", json={"path": "/p/q"}), 409, "exists")
    assert (home(fbox, "ann") / "p" / "q" / "r").is_dir()
