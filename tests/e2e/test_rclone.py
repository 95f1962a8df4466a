"""rclone (Debian's package) copies a directory tree up and down over SFTP,
logging in with an access token, and `rclone check --download` is clean."""

import os
import subprocess


def rclone(box, token, *args):
    env = dict(os.environ)
    obscured = subprocess.run(["rclone", "obscure", token], capture_output=True, text=True, check=True).stdout.strip()
    env.update({
        "RCLONE_CONFIG_BOX_TYPE": "sftp",
        "RCLONE_CONFIG_BOX_HOST": "127.0.0.1",
        "RCLONE_CONFIG_BOX_PORT": str(box.port),
        "RCLONE_CONFIG_BOX_USER": "bob",
        "RCLONE_CONFIG_BOX_PASS": obscured,
        # The box offers no shell, so rclone must not try remote hash commands.
        "RCLONE_CONFIG_BOX_SHELL_TYPE": "none",
        "RCLONE_CONFIG_BOX_DISABLE_HASHCHECK": "true",
        "RCLONE_CONFIG": "/dev/null",
    })
    return subprocess.run(["rclone", *args], env=env, capture_output=True, text=True, timeout=300)


def make_tree(root):
    for d in ["a", "a/b", "a/b/c", "empty-not", "x y z"]:
        (root / d).mkdir(parents=True, exist_ok=True)
    sizes = [0, 1, 4095, 4096, 65537, 1024 * 1024 + 3]
    for i, size in enumerate(sizes):
        for d in ["a", "a/b/c", "x y z"]:
            (root / d / f"file{i}.bin").write_bytes(os.urandom(size))
    (root / "empty-not" / "note.txt").write_text("ünïcødé name inside\n")


def test_rclone_copies_a_tree_up_and_down(box, tmp_path):
    box.add_user("bob")
    box.enrol("bob")  # the token skips the code, as unattended clients need
    token = box.token("bob", "--scope", "ssh")
    src = tmp_path / "src"
    make_tree(src)
    up = rclone(box, token, "copy", str(src), "box:backup")
    assert up.returncode == 0, up.stderr
    check = rclone(box, token, "check", "--download", str(src), "box:backup")
    assert check.returncode == 0, check.stderr
    down = tmp_path / "down"
    got = rclone(box, token, "copy", "box:backup", str(down))
    assert got.returncode == 0, got.stderr
    for path in src.rglob("*"):
        if path.is_file():
            assert (down / path.relative_to(src)).read_bytes() == path.read_bytes()
    assert (box.data / "files" / "bob" / "backup" / "a" / "b" / "c" / "file5.bin").stat().st_size == 1024 * 1024 + 3
