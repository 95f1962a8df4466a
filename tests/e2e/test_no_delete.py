"""A `no_delete` account keeps every file it has written: through paramiko's
SFTP, OpenSSH's scp and the REST API, a file once written can be neither
removed, truncated, overwritten nor renamed. A new file is written through
the handle that made it; once closed it is immutable for the account."""

import socket

import paramiko
import pytest

from conftest import PASSWORD
from test_openssh import payload, scp
from test_rest import Api, error

NO_DELETE = "is not allowed for this account"
FULL_TEXT = "deleting or changing existing files is not allowed for this account"


def home(box):
    return box.data / "files" / "keeper"


@pytest.fixture
def keeper(box):
    box.add_user("keeper")
    box.cli("user", "set", "keeper", "--no-delete", "true")
    h = home(box)
    h.mkdir(parents=True, exist_ok=True)
    (h / "kept.txt").write_bytes(b"precious")
    (h / "other.txt").write_bytes(b"other")
    (h / "dir").mkdir()
    (h / "dir" / "inner.txt").write_bytes(b"inner")
    (h / "empty").mkdir()
    return box


def sftp(box):
    sock = socket.create_connection(("127.0.0.1", box.port), timeout=10)
    t = paramiko.Transport(sock)
    t.start_client(timeout=10)
    t.auth_password("keeper", PASSWORD)
    return t, paramiko.SFTPClient.from_transport(t)


def copy_data(s, src, read_offset, read_len, dst, write_offset):
    """The `copy-data` extension (paramiko has no call for it)."""
    q = paramiko.sftp.int64
    s._request(paramiko.sftp.CMD_EXTENDED, "copy-data", src.handle, q(read_offset), q(read_len),
               dst.handle, q(write_offset))


def refused(call, *args):
    with pytest.raises(PermissionError) as e:
        call(*args)
    assert NO_DELETE in str(e.value), e.value


def untouched(box):
    h = home(box)
    assert (h / "kept.txt").read_bytes() == b"precious"
    assert (h / "other.txt").read_bytes() == b"other"
    assert (h / "dir" / "inner.txt").read_bytes() == b"inner"
    assert (h / "empty").is_dir()


def test_sftp_cannot_remove_truncate_overwrite_or_rename(keeper):
    t, s = sftp(keeper)
    try:
        refused(s.remove, "kept.txt")
        refused(s.rmdir, "empty")
        refused(s.rmdir, "dir")
        # OPEN with TRUNC, with CREAT, for writing or appending at all.
        for mode in ["w", "wb", "r+", "a", "x"]:
            with pytest.raises((PermissionError, IOError)):
                s.open("kept.txt", mode)
        # SETSTAT size (by path) and FSETSTAT size through a read handle.
        refused(s.truncate, "kept.txt", 0)
        refused(s.truncate, "kept.txt", 100)
        with s.open("kept.txt", "r") as f:
            refused(f.truncate, 0)
        # RENAME away, onto an existing file, posix-rename, folders too.
        refused(s.rename, "kept.txt", "gone.txt")
        refused(s.rename, "kept.txt", "other.txt")
        refused(s.posix_rename, "kept.txt", "other.txt")
        refused(s.posix_rename, "kept.txt", "new-name.txt")
        refused(s.rename, "dir", "dir2")
        # hardlink@openssh.com never replaces a name.
        with pytest.raises(IOError):
            s._request(paramiko.sftp.CMD_EXTENDED, "hardlink@openssh.com", "other.txt", "kept.txt")
        # copy-data onto an existing file: no handle to write it with.
        with pytest.raises((PermissionError, IOError)):
            s.open("other.txt", "r+")
        # A symbolic link to a kept file does not open it for writing.
        s.symlink("kept.txt", "link")
        with pytest.raises((PermissionError, IOError)):
            s.open("link", "w")
        # The refusal says what the account may not do.
        with pytest.raises(PermissionError, match=FULL_TEXT):
            s.remove("kept.txt")
    finally:
        t.close()
    untouched(keeper)


def test_sftp_writes_a_new_file_through_its_handle_then_it_is_kept(keeper):
    t, s = sftp(keeper)
    try:
        with s.open("new.txt", "w") as f:
            f.write(b"hello world")
            f.seek(0)
            f.write(b"HELLO")          # overwriting inside the file being made
            f.truncate(8)              # FSETSTAT size on its own handle
            f.write(b"!")
        assert s.open("new.txt").read() == b"HELLO!wo"
        s.put(__file__, "copy.py")     # paramiko's put: open, write, close, stat
        s.mkdir("made")
        s.chmod("new.txt", 0o600)      # modes and times are not destruction
        s.utime("new.txt", (1_000_000, 1_000_000))
        # Closed: now kept like any other file.
        refused(s.remove, "new.txt")
        refused(s.truncate, "new.txt", 0)
        refused(s.rename, "new.txt", "renamed.txt")
        with pytest.raises((PermissionError, IOError)):
            s.open("new.txt", "a")
        with pytest.raises((PermissionError, IOError)):
            s.put(__file__, "new.txt")
    finally:
        t.close()
    assert (home(keeper) / "new.txt").read_bytes() == b"HELLO!wo"
    untouched(keeper)


def test_sftp_copy_data_cannot_write_an_existing_file(keeper):
    t, s = sftp(keeper)
    try:
        src = s.open("other.txt", "r")
        dst = s.open("kept.txt", "r")
        with pytest.raises(IOError):
            copy_data(s, src, 0, 0, dst, 0)
        # Into a file being made, it is allowed.
        made = s.open("copied.txt", "w")
        copy_data(s, src, 0, 0, made, 0)
        made.close()
        assert s.open("copied.txt").read() == b"other"
    finally:
        t.close()
    untouched(keeper)


def test_scp_cannot_overwrite(keeper, tmp_path):
    src = payload(tmp_path, size=1000)
    for legacy in (False, True):
        status, _, out = scp(keeper, str(src), "keeper@127.0.0.1:kept.txt", legacy=legacy)
        assert status != 0, out
        status, _, out = scp(keeper, str(src), "keeper@127.0.0.1:dir/inner.txt", legacy=legacy)
        assert status != 0, out
    # A new name is written.
    status, _, out = scp(keeper, str(src), "keeper@127.0.0.1:fresh.bin", legacy=True)
    assert status == 0, out
    assert (home(keeper) / "fresh.bin").read_bytes() == src.read_bytes()
    status, _, out = scp(keeper, str(src), "keeper@127.0.0.1:fresh.bin", legacy=True)
    assert status != 0, out
    assert (home(keeper) / "fresh.bin").read_bytes() == src.read_bytes()
    untouched(keeper)


def test_rest_cannot_overwrite_delete_or_rename(keeper):
    api = Api(keeper.https_port)
    api.token = api.token_for("keeper", PASSWORD)
    error(api.put("/files/content", params={"path": "/kept.txt", "overwrite": "true"}, data=b"x"), 403)
    error(api.put("/files/content", params={"path": "/kept.txt"}, data=b"x"), 409, "exists")
    error(api.delete("/files", params={"path": "/kept.txt"}), 403)
    error(api.delete("/files", params={"path": "/dir", "recursive": "true"}), 403)
    error(api.delete("/files", params={"path": "/empty"}), 403)
    error(api.post("/files/rename", json={"from": "/kept.txt", "to": "/moved.txt"}), 403)
    error(api.post("/files/rename", json={"from": "/kept.txt", "to": "/other.txt", "overwrite": True}), 403)
    # An upload to a new name is placed (its temporary file renamed into place).
    r = api.put("/files/content", params={"path": "/up.txt"}, data=b"uploaded")
    assert r.status_code == 201, r.text
    assert (home(keeper) / "up.txt").read_bytes() == b"uploaded"
    error(api.put("/files/content", params={"path": "/up.txt", "overwrite": "true"}, data=b"y"), 403)
    assert (home(keeper) / "up.txt").read_bytes() == b"uploaded"
    # No temporary file is left behind.
    assert sorted(p.name for p in home(keeper).iterdir()) == ["dir", "empty", "kept.txt", "other.txt", "up.txt"]
    untouched(keeper)
