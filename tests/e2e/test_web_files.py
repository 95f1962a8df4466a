"""The file page's transfers and file handling, through the REST API and
Debian's Chromium: resumable chunked uploads (wrong offsets, limits,
confinement, other accounts, a connection that breaks mid-chunk), drag and
drop built in the page, a folder upload, a cancelled and a resumed large
upload, download as zip (unzipped here), move, delete, sort, filter, local
times, previews and the disk-space bar."""

import hashlib
import io
import os
import socket
import ssl
import time
import zipfile

import pytest

from conftest import Box
from test_rest import Api, error
from web import (SHOTS, axe_violations, chromium as web_chromium, color_scheme, new_page, shoot,  # noqa: F401
                 sign_in_past_offer, with_axe)

chromium = web_chromium
USER_PW = "violet-harbour-lantern-73"
CHUNK = 256 * 1024
CONFIG = f"[https]\nupload_chunk = {CHUNK}\nmax_upload = {64 * 1024 * 1024}\n"


@pytest.fixture
def fbox(tmp_path):
    b = Box(tmp_path, CONFIG)
    yield b
    b.stop()


def home(box, user):
    return box.data / "files" / user


def accessible(page, where):
    """axe-core finds nothing serious or critical, in the light and the dark
    scheme; a screenshot of each goes with it."""
    for scheme in ("light", "dark"):
        color_scheme(page, scheme)
        found = [f"{v['id']} ({v['help']}) at {v['targets']}" for v in axe_violations(page)
                 if v["impact"] in ("serious", "critical")]
        assert not found, f"{where}, {scheme}: {found}"
        page.screenshot(path=str(SHOTS / f"{where}-{scheme}.png"))
    color_scheme(page, "light")


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


# --- the page -----------------------------------------------------------------

def signed_in(chromium, box, name="hank", **context):
    box.add_user(name, "user", USER_PW)
    c = chromium.new_context(base_url=box.url, ignore_https_errors=True, accept_downloads=True,
                             viewport={"width": 1280, "height": 800}, **context)
    with_axe(c)
    page = c.new_page()
    page.set_default_timeout(20000)
    page.on("dialog", lambda d: d.accept())
    sign_in_past_offer(page, name, USER_PW)
    return page


DROP = """([names, folder]) => {
  const dt = new DataTransfer();
  for (const n of names) dt.items.add(new File([n + " content"], n, {type: "text/plain"}));
  const target = document.querySelector("main");
  for (const type of ["dragenter", "dragover", "drop"]) {
    target.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: dt}));
  }
}"""

# Chromium makes no FileSystemEntry from script, so a dropped folder is an
# object shaped as the File and Directory Entries API hands it over
# (webkitGetAsEntry, createReader, readEntries in batches, file()).
DROP_FOLDER = """() => {
  const file = (name, text) => ({isFile: true, isDirectory: false, name,
    file: (ok) => ok(new File([text], name))});
  const dir = (name, kids) => ({isFile: false, isDirectory: true, name,
    createReader: () => { let batches = [kids.slice(0, 1), kids.slice(1), []];
      return {readEntries: (ok) => ok(batches.shift() || [])}; }});
  const tree = dir("Album", [file("one.txt", "1"), dir("Inner", [file("two.txt", "22")]), dir("Empty", [])]);
  const dt = {types: ["Files"], files: [], items: [{webkitGetAsEntry: () => tree}]};
  const ev = new Event("drop", {bubbles: true, cancelable: true});
  Object.defineProperty(ev, "dataTransfer", {value: dt});
  document.querySelector("main").dispatchEvent(ev);
}"""


def test_drag_and_drop_and_a_folder_upload(fbox, chromium, tmp_path):
    page = signed_in(chromium, fbox)
    assert page.is_visible("#drop-zone")
    # The browser's session cookie without the CSRF header makes nothing.
    r = page.request.post("/api/v1/files/uploads", data={"path": "/csrf.bin", "size": 1})
    assert r.status in (401, 403), r.text()
    assert hidden_partials(home(fbox, "hank")) == []
    page.evaluate(DROP, [["dropped-a.txt", "dropped-b.txt"], None])
    page.wait_for_selector("table.files a.entry:has-text('dropped-b.txt')")
    h = home(fbox, "hank")
    assert (h / "dropped-a.txt").read_text() == "dropped-a.txt content"

    page.evaluate(DROP_FOLDER)
    page.wait_for_selector("table.files a.entry:has-text('Album')")
    assert (h / "Album" / "one.txt").read_text() == "1"
    assert (h / "Album" / "Inner" / "two.txt").read_text() == "22"
    assert (h / "Album" / "Empty").is_dir()

    # The folder picker (webkitdirectory): the relative paths are kept.
    src = tmp_path / "Trip"
    (src / "day1").mkdir(parents=True)
    (src / "notes.txt").write_text("notes")
    (src / "day1" / "photo.jpg").write_bytes(b"\xff\xd8jpeg")
    page.set_input_files("#upload-folder", str(src))
    page.wait_for_selector("table.files a.entry:has-text('Trip')")
    assert (h / "Trip" / "notes.txt").read_text() == "notes"
    assert (h / "Trip" / "day1" / "photo.jpg").read_bytes() == b"\xff\xd8jpeg"
    page.context.close()


def test_a_large_upload_is_cancelled_then_resumed_after_a_dropped_connection(fbox, chromium):
    page = signed_in(chromium, fbox)
    h = home(fbox, "hank")
    data = os.urandom(4 * 1024 * 1024 + 123)
    held = []
    patches = []

    def hold_third(route):
        req = route.request
        if req.method != "PATCH":
            route.continue_()
            return
        patches.append(req.url.rsplit("offset=", 1)[1])
        if len(patches) == 3 and not held:
            held.append(route)  # never reaches the server until released
            return
        route.continue_()

    page.route("**/api/v1/files/uploads/**", hold_third)
    page.set_input_files("#upload-files", files=[{"name": "big.bin", "mimeType": "application/octet-stream", "buffer": data}])
    page.wait_for_selector("li.transfer .transfer-note:has-text('of 4.2 MB')")
    deadline = time.time() + 10
    while not held and time.time() < deadline:
        page.wait_for_timeout(50)
    assert held, patches
    assert hidden_partials(h), "the partial file exists while the upload runs"
    shoot(page, "40-files-transfer")
    page.click("li.transfer button:has-text('Cancel')")
    page.wait_for_selector("li.transfer.cancelled")
    accessible(page, "files-transfer-cancelled")
    try:
        held[0].abort()
    except Exception:
        pass
    deadline = time.time() + 10
    while hidden_partials(h) and time.time() < deadline:
        time.sleep(0.1)
    assert hidden_partials(h) == [], "cancel removes the partial file"
    assert not (h / "big.bin").exists()
    page.unroute("**/api/v1/files/uploads/**")

    # Retry, and the connection drops under the fourth chunk: the page
    # asks the server what it holds and goes on from there.
    patches.clear()
    gets = []

    def drop_fourth(route):
        req = route.request
        if req.method == "GET":
            gets.append(req.url)
        if req.method == "PATCH":
            patches.append(int(req.url.rsplit("offset=", 1)[1]))
            if len(patches) == 4:
                route.abort("connectionreset")
                return
        route.continue_()

    page.route("**/api/v1/files/uploads/**", drop_fourth)
    page.click("li.transfer button:has-text('Retry')")
    page.wait_for_selector("table.files a.entry:has-text('big.bin')", timeout=60000)
    assert (h / "big.bin").read_bytes() == data
    assert hidden_partials(h) == []
    assert gets, "the page asked for the offset after the drop"
    assert patches[:4] == [0, CHUNK, 2 * CHUNK, 3 * CHUNK], patches
    assert patches[4] == 3 * CHUNK, patches  # resumed, not restarted
    assert patches.count(0) == 1, patches
    page.context.close()


def test_zip_move_delete_sort_filter_time_preview_and_space(fbox, chromium):
    fbox.add_user("hank", "user", USER_PW)
    h = home(fbox, "hank")
    (h / "Photos" / "2026").mkdir(parents=True)
    (h / "Dest").mkdir()
    (h / "Photos" / "a.txt").write_text("alpha")
    (h / "Photos" / "2026" / "b.bin").write_bytes(os.urandom(300_000))
    (h / "small.txt").write_text("<script>window.pwned = 1</script>\nplain text\n")
    (h / "zz-large.log").write_bytes(b"x" * 400_000)
    png = bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d49444154789c6360f8cfc0f01f0005000201a5f5b7a60000000049454e44ae426082")
    (h / "dot.png").write_bytes(png)
    stamp = 1_790_000_000  # 2026-09-21 14:13:20 UTC
    os.utime(h / "small.txt", (stamp, stamp))
    c = chromium.new_context(base_url=fbox.url, ignore_https_errors=True, accept_downloads=True,
                             viewport={"width": 1280, "height": 800}, timezone_id="Asia/Kolkata",
                             locale="en-GB")
    with_axe(c)
    page = c.new_page()
    page.set_default_timeout(20000)
    page.on("dialog", lambda d: d.accept())
    sign_in_past_offer(page, "hank", USER_PW)

    # Local time with seconds in the browser's zone (UTC+05:30).
    row = page.locator("tr[data-name='small.txt']")
    assert "2026-09-21 19:43:20" in row.locator("time").inner_text()
    # The disk-space bar.
    assert "free for uploads" in page.inner_text("#space")
    assert page.locator("#space-meter").count() == 1

    # Sort by size, largest first (folders stay first), and filter.
    names = lambda: page.eval_on_selector_all("#file-table tbody tr:not([hidden])", "rs => rs.map(r => r.dataset.name)")
    page.click("button[data-sort=size]")
    page.click("button[data-sort=size]")
    assert names() == ["Dest", "Photos", "zz-large.log", "dot.png", "small.txt"], names()
    assert page.get_attribute("th:has(button[data-sort=size])", "aria-sort") == "descending"
    page.fill("#filter", "TXT")
    assert names() == ["small.txt"]
    page.fill("#filter", "nothing-matches")
    assert page.is_visible("#filter-empty")
    page.fill("#filter", "")

    # Download as zip: a folder and a file, unzipped here.
    assert page.is_disabled("#zip-selected")
    page.check("tr[data-name='Photos'] input.pick")
    page.check("tr[data-name='small.txt'] input.pick")
    assert page.inner_text("#selected-count") == "2 selected"
    accessible(page, "files-selection")
    with page.expect_download() as d:
        page.click("#zip-selected")
    assert d.value.suggested_filename == "files.zip"
    z = zipfile.ZipFile(io.BytesIO(open(d.value.path(), "rb").read()))
    assert z.testzip() is None
    assert sorted(z.namelist()) == ["Photos/", "Photos/2026/", "Photos/2026/b.bin", "Photos/a.txt", "small.txt"]
    assert z.read("Photos/2026/b.bin") == (h / "Photos" / "2026" / "b.bin").read_bytes()
    assert z.read("Photos/a.txt") == b"alpha"

    # Preview: text as text, never run; the answer itself runs no script.
    page.click("tr[data-name='small.txt'] button[data-preview]")
    page.wait_for_selector("#preview-body pre:has-text('plain text')")
    assert "<script>" in page.inner_text("#preview-body pre")
    assert page.evaluate("window.pwned") is None
    r = page.request.get("/files/preview?path=/small.txt")
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in r.headers["content-security-policy"]
    assert "script-src" not in r.headers["content-security-policy"]
    page.click("#preview-close")
    page.click("tr[data-name='zz-large.log'] button[data-preview]")
    page.wait_for_selector("#preview-body p.help:has-text('The first')")
    page.click("#preview-close")
    page.click("tr[data-name='dot.png'] button[data-preview]")
    page.wait_for_function("() => { const i = document.querySelector('#preview-body img'); return i && i.naturalWidth === 1; }")
    assert page.request.get("/files/preview?path=/dot.png").headers["content-type"] == "image/png"
    shoot(page, "41-files-preview")
    accessible(page, "files-preview")
    page.click("#preview-close")
    assert page.request.get("/files/preview?path=/Photos/2026/b.bin").status == 415

    # Move two items into Dest, then delete two others.
    page.uncheck("tr[data-name='Photos'] input.pick")
    page.check("tr[data-name='small.txt'] input.pick")
    page.check("tr[data-name='dot.png'] input.pick")
    page.fill("#move-to", "/Dest")
    page.click("#move-selected")
    page.wait_for_selector("tr[data-name='dot.png']", state="detached")
    assert (h / "Dest" / "small.txt").exists() and (h / "Dest" / "dot.png").exists()
    page.check("tr[data-name='zz-large.log'] input.pick")
    page.check("tr[data-name='Photos'] input.pick")
    shoot(page, "42-files-selection")
    page.click("#delete-selected")
    page.wait_for_selector("tr[data-name='Photos']", state="detached")
    assert not (h / "Photos").exists() and not (h / "zz-large.log").exists()
    assert (h / "Dest").is_dir()
    c.close()
