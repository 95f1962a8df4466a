//! The file servers: OpenSSH's own `sftp` and `scp` clients against
//! `coffer sftp-server` / `coffer scp-server`, and a raw SFTP client that
//! sends exact bytes for the confinement suite and hostile input.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use coffer::files::Access;
use coffer::files::scp::{ScpError, serve_scp};
use coffer::files::sftp::{SftpError, SftpLimits, serve};
use coffer::files::{Root, Summary};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;

const SECRET: &[u8] = b"OUTSIDE-SECRET-7f3a9c";
const FULL: Access = Access {
    write: true,
    delete: true,
};

fn coffer() -> &'static str {
    env!("CARGO_BIN_EXE_coffer")
}

fn sha(path: &Path) -> String {
    let data = std::fs::read(path).unwrap();
    data_encoding::HEXLOWER.encode(&Sha256::digest(&data))
}

/// Deterministic pseudo-random bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A temporary tree: `home/` is served; `sentinel/` and `outside.txt`
/// lie beside it and must never change or leak.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Self::with(tempfile::tempdir().unwrap())
    }

    /// A fixture on tmpfs (`/dev/shm`), where files are opened without
    /// the blocking pool.
    fn in_memory() -> Self {
        let shm = Path::new("/dev/shm");
        let dir = std::fs::File::open(shm).expect("/dev/shm is needed for in-memory homes");
        assert!(coffer::files::in_memory(&dir), "/dev/shm is not tmpfs");
        Self::with(tempfile::tempdir_in(shm).unwrap())
    }

    fn with(dir: tempfile::TempDir) -> Self {
        let f = Fixture { dir };
        std::fs::create_dir_all(f.home()).unwrap();
        std::fs::create_dir_all(f.path("sentinel/inner")).unwrap();
        std::fs::write(f.path("sentinel/s.txt"), b"SENTINEL").unwrap();
        std::fs::write(f.path("sentinel/inner/t.txt"), SECRET).unwrap();
        std::fs::write(f.path("outside.txt"), SECRET).unwrap();
        f
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn home(&self) -> PathBuf {
        self.path("home")
    }

    fn local(&self) -> PathBuf {
        let p = self.path("local");
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    fn root(&self, permissions: Access) -> Arc<Root> {
        Arc::new(Root::open(&self.home(), "alice", permissions).unwrap())
    }

    /// Everything outside the home: paths, types, modes, mtimes, contents.
    fn outside_snapshot(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for entry in walk(self.dir.path()) {
            let rel = entry.strip_prefix(self.dir.path()).unwrap();
            if rel.starts_with("home") || rel.starts_with("local") {
                continue;
            }
            let meta = std::fs::symlink_metadata(&entry).unwrap();
            let content = if meta.is_file() {
                format!("{:?}", std::fs::read(&entry).unwrap())
            } else if meta.file_type().is_symlink() {
                format!("-> {:?}", std::fs::read_link(&entry).unwrap())
            } else {
                String::new()
            };
            out.insert(
                rel.display().to_string(),
                format!("{:o} {} {}", meta.mode(), meta.mtime(), content),
            );
        }
        out
    }

    /// A fake `ssh` for `scp -S`: drops ssh's options and the host, then
    /// runs the subsystem (`-s sftp`) or the exec command locally.
    fn fake_ssh(&self, flags: &str) -> PathBuf {
        let script = self.path(&format!("fake-ssh{}", flags.replace(' ', "")));
        let text = format!(
            r#"#!/bin/sh
sub=0
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    -s) sub=1; shift ;;
    -[bcDEeFIiJLlmOopQRSWw]) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
shift # the host
if [ "$sub" = 1 ]; then
  exec "{coffer}" sftp-server --root "{home}" --account alice {flags}
fi
exec "{coffer}" scp-server --root "{home}" --account alice {flags} -- "$@"
"#,
            coffer = coffer(),
            home = self.home().display(),
        );
        std::fs::write(&script, text).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    /// Runs `sftp -D coffer sftp-server` with a batch file.
    fn sftp_batch(&self, flags: &str, batch: &str) -> Output {
        let file = self.path("batch");
        std::fs::write(&file, batch).unwrap();
        let server = format!(
            "{} sftp-server --root {} --account alice {flags}",
            coffer(),
            self.home().display()
        );
        Command::new("sftp")
            .arg("-D")
            .arg(server)
            .arg("-b")
            .arg(&file)
            .current_dir(self.local())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn scp(&self, flags: &str, args: &[&str]) -> Output {
        Command::new("scp")
            .arg("-S")
            .arg(self.fake_ssh(flags))
            .args(args)
            .current_dir(self.local())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        out.push(p.clone());
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            out.extend(walk(&p));
        }
    }
    out
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn tree_digest(dir: &Path) -> BTreeMap<String, String> {
    walk(dir)
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let v = if p.is_file() { sha(&p) } else { "dir".into() };
            (rel, v)
        })
        .collect()
}

// ---------------------------------------------------------------------
// Real clients.

#[test]
fn sftp_client_puts_gets_and_manages_files() {
    let f = Fixture::new();
    let big = f.local().join("big.bin");
    std::fs::write(&big, noise(6 * 1024 * 1024 + 12_345, 1)).unwrap();
    let o = f.sftp_batch(
        "",
        "put big.bin\n\
         mkdir d\n\
         put big.bin d/copy.bin\n\
         get d/copy.bin back.bin\n\
         rename d/copy.bin d/renamed.bin\n\
         ln -s d/renamed.bin link\n\
         chmod 600 big.bin\n\
         ls -l\n\
         ls -la d\n\
         df -h\n\
         get link via-link.bin\n\
         rm d/renamed.bin\n\
         rmdir d\n\
         -rmdir nothere\n\
         ls\n",
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert_eq!(sha(&big), sha(&f.home().join("big.bin")));
    assert_eq!(sha(&big), sha(&f.local().join("back.bin")));
    assert_eq!(sha(&big), sha(&f.local().join("via-link.bin")));
    let mode = std::fs::metadata(f.home().join("big.bin")).unwrap().mode();
    assert_eq!(mode & 0o777, 0o600, "{out}");
    // ls -l lines as OpenSSH's server writes them, owner shown as the account.
    assert!(
        out.lines().any(|l| l.starts_with("-rw-------")
            && l.contains(" alice ")
            && l.contains(" 6303801 ")
            && l.ends_with(" big.bin")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("lrwxrwxrwx") && l.ends_with(" link")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("drwxr-xr-x") && l.ends_with(" ..")),
        "{out}"
    );
    assert!(out.contains("Size") && out.contains("Avail"), "df: {out}");
    assert!(!f.home().join("d").exists());
    assert_eq!(
        std::fs::read_link(f.home().join("link")).unwrap(),
        Path::new("d/renamed.bin")
    );
    // Nothing leaked into the listing output about the host.
    assert!(!out.contains(&f.dir.path().display().to_string()), "{out}");
}

#[test]
fn scp_legacy_protocol_both_ways_with_recursion_and_times() {
    let f = Fixture::new();
    let local = f.local();
    let big = local.join("big.bin");
    std::fs::write(&big, noise(5 * 1024 * 1024 + 7, 2)).unwrap();
    std::fs::create_dir_all(local.join("tree/sub/deeper")).unwrap();
    std::fs::write(local.join("tree/a.txt"), b"alpha\n").unwrap();
    std::fs::write(local.join("tree/sub/b.bin"), noise(300_000, 3)).unwrap();
    std::fs::write(local.join("tree/sub/deeper/c"), b"").unwrap();
    std::fs::set_permissions(
        local.join("tree/a.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();

    let o = f.scp("", &["-O", "big.bin", "h:up.bin"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(sha(&big), sha(&f.home().join("up.bin")));

    let o = f.scp("", &["-O", "h:up.bin", "down.bin"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(sha(&big), sha(&local.join("down.bin")));

    let o = f.scp("", &["-O", "-r", "-p", "tree", "h:"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        tree_digest(&local.join("tree")),
        tree_digest(&f.home().join("tree"))
    );
    let up = std::fs::metadata(f.home().join("tree/a.txt")).unwrap();
    let orig = std::fs::metadata(local.join("tree/a.txt")).unwrap();
    assert_eq!(up.mode() & 0o777, 0o640);
    assert_eq!(up.mtime(), orig.mtime());

    let o = f.scp("", &["-O", "-r", "-p", "h:tree", "back"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        tree_digest(&local.join("tree")),
        tree_digest(&local.join("back"))
    );
    assert_eq!(
        std::fs::metadata(local.join("back/a.txt")).unwrap().mtime(),
        orig.mtime()
    );

    // Wildcards in the last component are expanded by the server.
    std::fs::create_dir_all(local.join("globbed")).unwrap();
    let o = f.scp("", &["-O", "h:tree/sub/*.bin", "h:tree/?.txt", "globbed/"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(local.join("globbed/b.bin").exists() && local.join("globbed/a.txt").exists());

    // Symbolic links back up the tree are not followed round and round.
    std::fs::create_dir_all(f.home().join("looped/sub")).unwrap();
    std::fs::write(f.home().join("looped/sub/f"), b"x").unwrap();
    std::os::unix::fs::symlink("..", f.home().join("looped/sub/up")).unwrap();
    std::os::unix::fs::symlink(".", f.home().join("looped/self")).unwrap();
    let o = f.scp("", &["-O", "-r", "h:looped", "loopcopy"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("symbolic link loop, skipped"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read(local.join("loopcopy/sub/f")).unwrap(), b"x");

    // A missing source: the client prints the server's message, exit 1.
    let o = f.scp("", &["-O", "h:missing.bin", "x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("/missing.bin: No such file or directory"),
        "{}",
        text(&o)
    );
}

#[test]
fn scp_sftp_mode_both_ways_with_recursion() {
    let f = Fixture::new();
    let local = f.local();
    let big = local.join("big.bin");
    std::fs::write(&big, noise(7 * 1024 * 1024 + 3, 4)).unwrap();
    std::fs::create_dir_all(local.join("tree/sub")).unwrap();
    std::fs::write(local.join("tree/sub/x.bin"), noise(1_000_000, 5)).unwrap();

    let o = f.scp("", &["big.bin", "h:up.bin"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(sha(&big), sha(&f.home().join("up.bin")));

    // Several downloads: scp writes in place and truncates at the first
    // out-of-order reply, so this also checks replies keep their order.
    for i in 0..3 {
        let name = format!("down{i}.bin");
        let o = f.scp("", &["h:up.bin", &name]);
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(sha(&big), sha(&local.join(&name)));
    }

    let o = f.scp("", &["-r", "tree", "h:t2"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        tree_digest(&local.join("tree")),
        tree_digest(&f.home().join("t2"))
    );
    let o = f.scp("", &["-r", "h:t2", "t3"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        tree_digest(&local.join("tree")),
        tree_digest(&local.join("t3"))
    );
}

#[test]
fn read_only_account_is_refused_every_change() {
    let f = Fixture::new();
    std::fs::write(f.home().join("kept.txt"), b"keep me").unwrap();
    std::fs::create_dir_all(f.home().join("dir")).unwrap();
    std::fs::write(f.local().join("new.txt"), b"new").unwrap();
    let before = tree_digest(&f.home());

    let o = f.sftp_batch(
        "--read-only",
        "get kept.txt\n-put new.txt\n-mkdir x\n-rm kept.txt\n-rmdir dir\n\
         -rename kept.txt k2\n-ln -s kept.txt l\n-chmod 777 kept.txt\n",
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert_eq!(
        std::fs::read(f.local().join("kept.txt")).unwrap(),
        b"keep me"
    );
    // OpenSSH's client prints the status code's text, not our message.
    assert!(out.matches("Permission denied").count() >= 6, "{out}");

    let o = f.scp("--read-only", &["-O", "new.txt", "h:new.txt"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("read-only account"),
        "{}",
        text(&o)
    );
    let o = f.scp("--read-only", &["new.txt", "h:new.txt"]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    let o = f.scp("--read-only", &["-O", "h:kept.txt", "got.txt"]);
    assert!(o.status.success(), "{}", text(&o));

    assert_eq!(before, tree_digest(&f.home()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_refusals_say_read_only_account() {
    let f = Fixture::new();
    std::fs::write(f.home().join("kept.txt"), b"keep me").unwrap();
    let mut c = Raw::start(f.root(Access {
        write: false,
        delete: false,
    }))
    .await;
    let denied = |r: Reply| match r {
        Reply::Status(3, msg) => assert_eq!(msg, "read-only account"),
        other => panic!("{other:?}"),
    };
    denied(c.open(b"kept.txt", WRITE).await);
    denied(c.open(b"new.txt", WRITE | CREAT | TRUNC).await);
    denied(c.open(b"kept.txt", READ | APPEND).await);
    denied(c.mkdir(b"x").await);
    denied(c.path_op(REMOVE, b"kept.txt").await);
    denied(c.path_op(RMDIR, b"x").await);
    denied(c.two_paths(RENAME, b"kept.txt", b"k2").await);
    denied(c.two_paths(SYMLINK, b"kept.txt", b"l").await);
    denied(c.setstat(b"kept.txt", Some(0o777), None).await);
    denied(c.ext2("posix-rename@openssh.com", b"kept.txt", b"k3").await);
    denied(c.ext2("hardlink@openssh.com", b"kept.txt", b"k4").await);
    let h = handle(c.open(b"kept.txt", READ).await);
    assert_eq!(c.read(&h, 0, 100).await, Ok(b"keep me".to_vec()));
    denied(c.write(&h, 0, b"x").await);
    denied(c.fsetstat(&h, Some(0o600)).await);
    c.finish(&f).await;
    assert_eq!(
        std::fs::read(f.home().join("kept.txt")).unwrap(),
        b"keep me"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_delete_account_keeps_every_file() {
    let f = Fixture::new();
    std::fs::write(f.home().join("a.txt"), b"a").unwrap();
    std::fs::write(f.home().join("b.txt"), b"b").unwrap();
    std::fs::create_dir_all(f.home().join("empty")).unwrap();
    let mut c = Raw::start(f.root(Access {
        write: true,
        delete: false,
    }))
    .await;
    let no_delete = |r: Reply| match r {
        Reply::Status(3, msg) => assert_eq!(
            msg,
            "deleting or changing existing files is not allowed for this account"
        ),
        other => panic!("{other:?}"),
    };
    no_delete(c.path_op(REMOVE, b"a.txt").await);
    no_delete(c.path_op(RMDIR, b"empty").await);
    no_delete(c.ext2("posix-rename@openssh.com", b"a.txt", b"b.txt").await);
    // Renaming anything, to a new name or onto an existing one, is refused.
    no_delete(c.two_paths(RENAME, b"a.txt", b"b.txt").await);
    no_delete(c.two_paths(RENAME, b"a.txt", b"c.txt").await);
    // Writing a new file (through the handle that made it) is allowed;
    // opening an existing one for writing is not.
    ok(c.mkdir(b"newdir").await);
    let h = handle(c.open(b"new.txt", WRITE | CREAT).await);
    ok(c.write(&h, 0, b"hello").await);
    ok(c.close(&h).await);
    no_delete(c.open(b"new.txt", WRITE | CREAT).await);
    c.finish(&f).await;
    assert_eq!(std::fs::read(f.home().join("b.txt")).unwrap(), b"b");
    assert_eq!(std::fs::read(f.home().join("a.txt")).unwrap(), b"a");
    assert_eq!(std::fs::read(f.home().join("new.txt")).unwrap(), b"hello");
    assert!(f.home().join("empty").is_dir());

    let o = f.sftp_batch("--no-delete", "-rm a.txt\n");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
        "{}",
        text(&o)
    );
    assert!(f.home().join("a.txt").exists());
}

// ---------------------------------------------------------------------
// A raw SFTP client over an in-process pipe.

const READ: u32 = 1;
const WRITE: u32 = 2;
const APPEND: u32 = 4;
const CREAT: u32 = 8;
const TRUNC: u32 = 0x10;

const OPEN: u8 = 3;
const CLOSE: u8 = 4;
const READ_T: u8 = 5;
const WRITE_T: u8 = 6;
const LSTAT: u8 = 7;
const SETSTAT: u8 = 9;
const FSETSTAT: u8 = 10;
const OPENDIR: u8 = 11;
const READDIR: u8 = 12;
const REMOVE: u8 = 13;
const MKDIR: u8 = 14;
const RMDIR: u8 = 15;
const REALPATH: u8 = 16;
const STAT: u8 = 17;
const RENAME: u8 = 18;
const READLINK: u8 = 19;
const SYMLINK: u8 = 20;
const EXTENDED: u8 = 200;

#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Status(u32, String),
    Handle(Vec<u8>),
    Data(Vec<u8>),
    Name(Vec<Vec<u8>>),
    Attrs {
        size: Option<u64>,
        perm: Option<u32>,
    },
    Extended(Vec<u8>),
}

fn put_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_be_bytes());
}

fn put_str(b: &mut Vec<u8>, s: &[u8]) {
    put_u32(b, s.len() as u32);
    b.extend_from_slice(s);
}

fn frame(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    put_u32(&mut v, body.len() as u32 + 1);
    v.push(ty);
    v.extend_from_slice(body);
    v
}

struct Cur<'a>(&'a [u8]);
impl Cur<'_> {
    fn u32(&mut self) -> u32 {
        let (a, b) = self.0.split_at(4);
        self.0 = b;
        u32::from_be_bytes(a.try_into().unwrap())
    }
    fn u64(&mut self) -> u64 {
        (u64::from(self.u32()) << 32) | u64::from(self.u32())
    }
    fn string(&mut self) -> Vec<u8> {
        let n = self.u32() as usize;
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a.to_vec()
    }
    fn attrs(&mut self) -> (Option<u64>, Option<u32>) {
        let flags = self.u32();
        let size = (flags & 1 != 0).then(|| self.u64());
        if flags & 2 != 0 {
            self.u32();
            self.u32();
        }
        let perm = (flags & 4 != 0).then(|| self.u32());
        if flags & 8 != 0 {
            self.u32();
            self.u32();
        }
        (size, perm)
    }
}

struct Raw {
    s: DuplexStream,
    id: u32,
    /// Every byte the server sent.
    seen: Vec<u8>,
    server: JoinHandle<Result<Summary, SftpError>>,
}

impl Raw {
    async fn start(root: Arc<Root>) -> Raw {
        Self::start_with(root, SftpLimits::default()).await
    }

    async fn start_with(root: Arc<Root>, limits: SftpLimits) -> Raw {
        let (client, server) = tokio::io::duplex(1 << 20);
        let server = tokio::spawn(serve(server, root, limits));
        let mut c = Raw {
            s: client,
            id: 0,
            seen: Vec::new(),
            server,
        };
        let mut init = Vec::new();
        put_u32(&mut init, 3);
        c.s.write_all(&frame(1, &init)).await.unwrap();
        let (ty, body) = c.packet().await;
        assert_eq!(ty, 2);
        assert_eq!(&body[..4], &[0, 0, 0, 3]);
        c
    }

    async fn packet(&mut self) -> (u8, Vec<u8>) {
        let mut len = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(20), self.s.read_exact(&mut len))
            .await
            .expect("reply in time")
            .unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.s.read_exact(&mut body).await.unwrap();
        self.seen.extend_from_slice(&body);
        (body[0], body[1..].to_vec())
    }

    fn parse(ty: u8, body: &[u8]) -> (u32, Reply) {
        let mut c = Cur(body);
        let id = c.u32();
        let reply = match ty {
            101 => {
                let code = c.u32();
                Reply::Status(code, String::from_utf8(c.string()).unwrap())
            }
            102 => Reply::Handle(c.string()),
            103 => Reply::Data(c.string()),
            104 => {
                let n = c.u32();
                let mut names = Vec::new();
                for _ in 0..n {
                    names.push(c.string());
                    c.string();
                    c.attrs();
                }
                Reply::Name(names)
            }
            105 => {
                let (size, perm) = c.attrs();
                Reply::Attrs { size, perm }
            }
            201 => Reply::Extended(c.0.to_vec()),
            other => panic!("unexpected reply type {other}"),
        };
        (id, reply)
    }

    async fn call(&mut self, ty: u8, fields: &[u8]) -> Reply {
        self.id += 1;
        let mut body = Vec::new();
        put_u32(&mut body, self.id);
        body.extend_from_slice(fields);
        self.s.write_all(&frame(ty, &body)).await.unwrap();
        let (rty, rbody) = self.packet().await;
        let (id, reply) = Self::parse(rty, &rbody);
        assert_eq!(id, self.id);
        reply
    }

    async fn path_op(&mut self, ty: u8, path: &[u8]) -> Reply {
        let mut b = Vec::new();
        put_str(&mut b, path);
        self.call(ty, &b).await
    }

    async fn two_paths(&mut self, ty: u8, a: &[u8], z: &[u8]) -> Reply {
        let mut b = Vec::new();
        put_str(&mut b, a);
        put_str(&mut b, z);
        self.call(ty, &b).await
    }

    async fn ext(&mut self, name: &str, fields: &[u8]) -> Reply {
        let mut b = Vec::new();
        put_str(&mut b, name.as_bytes());
        b.extend_from_slice(fields);
        self.call(EXTENDED, &b).await
    }

    async fn ext2(&mut self, name: &str, a: &[u8], z: &[u8]) -> Reply {
        let mut b = Vec::new();
        put_str(&mut b, a);
        put_str(&mut b, z);
        self.ext(name, &b).await
    }

    async fn open(&mut self, path: &[u8], flags: u32) -> Reply {
        let mut b = Vec::new();
        put_str(&mut b, path);
        put_u32(&mut b, flags);
        put_u32(&mut b, 0);
        self.call(OPEN, &b).await
    }

    async fn mkdir(&mut self, path: &[u8]) -> Reply {
        let mut b = Vec::new();
        put_str(&mut b, path);
        put_u32(&mut b, 0);
        self.call(MKDIR, &b).await
    }

    fn attrs(mode: Option<u32>, times: Option<u32>) -> Vec<u8> {
        let mut b = Vec::new();
        let flags = mode.map_or(0, |_| 4) | times.map_or(0, |_| 8);
        put_u32(&mut b, flags);
        if let Some(m) = mode {
            put_u32(&mut b, m);
        }
        if let Some(t) = times {
            put_u32(&mut b, t);
            put_u32(&mut b, t);
        }
        b
    }

    async fn setstat(&mut self, path: &[u8], mode: Option<u32>, times: Option<u32>) -> Reply {
        let mut b = Vec::new();
        put_str(&mut b, path);
        b.extend(Self::attrs(mode, times));
        self.call(SETSTAT, &b).await
    }

    async fn fsetstat(&mut self, h: &[u8], mode: Option<u32>) -> Reply {
        let mut b = Vec::new();
        put_str(&mut b, h);
        b.extend(Self::attrs(mode, None));
        self.call(FSETSTAT, &b).await
    }

    async fn read(&mut self, h: &[u8], offset: u64, len: u32) -> Result<Vec<u8>, u32> {
        let mut b = Vec::new();
        put_str(&mut b, h);
        b.extend_from_slice(&offset.to_be_bytes());
        put_u32(&mut b, len);
        match self.call(READ_T, &b).await {
            Reply::Data(d) => Ok(d),
            Reply::Status(code, _) => Err(code),
            other => panic!("{other:?}"),
        }
    }

    async fn write(&mut self, h: &[u8], offset: u64, data: &[u8]) -> Reply {
        let mut b = Vec::new();
        put_str(&mut b, h);
        b.extend_from_slice(&offset.to_be_bytes());
        put_str(&mut b, data);
        self.call(WRITE_T, &b).await
    }

    async fn close(&mut self, h: &[u8]) -> Reply {
        let mut b = Vec::new();
        put_str(&mut b, h);
        self.call(CLOSE, &b).await
    }

    /// Lists a folder (all batches).
    async fn list(&mut self, path: &[u8]) -> Result<Vec<Vec<u8>>, u32> {
        let h = match self.path_op(OPENDIR, path).await {
            Reply::Handle(h) => h,
            Reply::Status(code, _) => return Err(code),
            other => panic!("{other:?}"),
        };
        let mut names = Vec::new();
        loop {
            let mut b = Vec::new();
            put_str(&mut b, &h);
            match self.call(READDIR, &b).await {
                Reply::Name(n) => names.extend(n),
                Reply::Status(1, _) => break,
                other => panic!("{other:?}"),
            }
        }
        ok(self.close(&h).await);
        names.sort();
        Ok(names)
    }

    /// Ends the session and checks nothing secret ever crossed the wire.
    async fn finish(mut self, f: &Fixture) -> Summary {
        self.s.shutdown().await.unwrap();
        drop(self.s);
        let summary = tokio::time::timeout(Duration::from_secs(20), self.server)
            .await
            .expect("server ends")
            .unwrap()
            .unwrap();
        let host = f.dir.path().display().to_string();
        assert!(
            !self.seen.windows(SECRET.len()).any(|w| w == SECRET),
            "the outside secret crossed the wire"
        );
        assert!(
            !self.seen.windows(host.len()).any(|w| w == host.as_bytes()),
            "a host path crossed the wire"
        );
        summary
    }
}

fn handle(r: Reply) -> Vec<u8> {
    match r {
        Reply::Handle(h) => h,
        other => panic!("expected a handle, got {other:?}"),
    }
}

#[track_caller]
fn ok(r: Reply) {
    assert_eq!(r, Reply::Status(0, "Success".into()));
}

/// SETSTAT of size 0 (a truncate).
async fn truncate(c: &mut Raw, path: &[u8]) -> Reply {
    let mut b = Vec::new();
    put_str(&mut b, path);
    put_u32(&mut b, 1);
    b.extend_from_slice(&0u64.to_be_bytes());
    c.call(SETSTAT, &b).await
}

fn code(r: &Reply) -> u32 {
    match r {
        Reply::Status(c, _) => *c,
        _ => 0,
    }
}

/// Not OK, and not some success reply either.
#[track_caller]
fn refused(what: &str, r: &Reply) {
    assert!(
        matches!(r, Reply::Status(c, _) if *c != 0),
        "{what}: expected a refusal, got {r:?}"
    );
}

// ---------------------------------------------------------------------
// Confinement.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confinement_suite_of_hostile_paths_and_symlinks() {
    confinement_suite(Fixture::new()).await;
}

/// The same suite in a home on tmpfs, where the SFTP server opens files
/// (to read, make or truncate) on the connection's thread instead of the
/// blocking pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confinement_suite_in_a_home_held_in_memory() {
    confinement_suite(Fixture::in_memory()).await;
}

async fn confinement_suite(f: Fixture) {
    let home = f.home();
    std::fs::create_dir_all(home.join("docs")).unwrap();
    std::fs::write(home.join("file.txt"), b"inside").unwrap();
    // Links an attacker could have planted (or a previous tool left).
    let link =
        |target: &str, name: &str| std::os::unix::fs::symlink(target, home.join(name)).unwrap();
    link("/etc", "abs_etc");
    link(f.path("outside.txt").to_str().unwrap(), "abs_outside");
    link("../outside.txt", "up");
    link("../../outside.txt", "upup");
    link("../sentinel", "sentinel_link");
    link("c2", "c1");
    link("docs/../../sentinel/s.txt", "c2");
    link("loop2", "loop1");
    link("loop1", "loop2");
    link("/dev/zero", "devzero");
    nix::unistd::mkfifo(
        &home.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let before = f.outside_snapshot();
    let outside_mode = std::fs::metadata(f.path("outside.txt")).unwrap().mode();
    let host_outside = f.path("outside.txt").display().to_string();

    let mut c = Raw::start(f.root(FULL)).await;
    let mut cases = 0;
    let mut check = |what: &str, r: &Reply| {
        refused(what, r);
        cases += 1;
    };

    // Lexical tricks: clamped at the home, so these name files that do not exist.
    for p in [
        &b"../outside.txt"[..],
        b"/../../outside.txt",
        b"../../../../../../etc/passwd",
        b"/../../etc/passwd",
        b"..\\..\\outside.txt",
        b"%2e%2e%2foutside.txt",
        b"%2e%2e/%2e%2e/outside.txt",
        b"docs/../../outside.txt",
        host_outside.as_bytes(),
        b"/etc/passwd",
        b"....//....//outside.txt",
    ] {
        let r = c.open(p, READ).await;
        assert_eq!(code(&r), 2, "{:?}: {r:?}", String::from_utf8_lossy(p));
        check("lexical", &r);
        check("lexical stat", &c.path_op(STAT, p).await);
    }
    // NUL bytes and over-long paths are refused before any lookup.
    let r = c.open(b"file.txt\0../../outside.txt", READ).await;
    assert!(
        matches!(&r, Reply::Status(5, m) if m.contains("NUL")),
        "{r:?}"
    );
    check("nul", &r);
    check("nul stat", &c.path_op(STAT, b"\0").await);
    let long = vec![b'a'; 5000];
    let r = c.open(&long, READ | WRITE | CREAT).await;
    assert!(
        matches!(&r, Reply::Status(5, m) if m.contains("longer")),
        "{r:?}"
    );
    check("long", &r);
    let mut deep = b"../".repeat(1400);
    deep.extend_from_slice(b"outside.txt");
    check("deep dots", &c.open(&deep, READ).await);
    check(
        "long name",
        &c.open(&[b'x'; 300], READ | WRITE | CREAT).await,
    );

    // Symbolic links that lead out: refused, never followed.
    for p in [
        &b"abs_etc/passwd"[..],
        b"abs_etc",
        b"abs_outside",
        b"up",
        b"upup",
        b"c1",
        b"c2",
        b"sentinel_link/s.txt",
        b"sentinel_link/inner/t.txt",
        b"devzero",
    ] {
        let r = c.open(p, READ).await;
        check("open link", &r);
        check("stat link", &c.path_op(STAT, p).await);
        check("realpath link", &c.path_op(REALPATH, p).await);
    }
    let r = c.open(b"up", READ).await;
    assert!(
        matches!(&r, Reply::Status(3, m) if m.contains("outside the home")),
        "{r:?}"
    );
    check("loop", &c.open(b"loop1", READ).await);
    check("opendir abs", &c.path_op(OPENDIR, b"abs_etc").await);
    check(
        "opendir sentinel",
        &c.path_op(OPENDIR, b"sentinel_link").await,
    );
    check(
        "opendir sentinel/inner",
        &c.path_op(OPENDIR, b"sentinel_link/inner").await,
    );
    check(
        "write through link",
        &c.open(b"sentinel_link/s.txt", WRITE | CREAT | TRUNC).await,
    );
    check(
        "create through link",
        &c.open(b"sentinel_link/new.txt", WRITE | CREAT).await,
    );
    check(
        "create in /etc",
        &c.open(b"abs_etc/coffer-evil", WRITE | CREAT).await,
    );
    check("truncate via setstat", &truncate(&mut c, b"up").await);
    check(
        "chmod through link",
        &c.setstat(b"up", Some(0o777), None).await,
    );
    check(
        "utimes through link",
        &c.setstat(b"sentinel_link", None, Some(0)).await,
    );
    check(
        "remove through link",
        &c.path_op(REMOVE, b"sentinel_link/s.txt").await,
    );
    check(
        "rmdir through link",
        &c.path_op(RMDIR, b"sentinel_link/inner").await,
    );
    check("rmdir of a link", &c.path_op(RMDIR, b"sentinel_link").await);
    check(
        "mkdir through link",
        &c.mkdir(b"sentinel_link/newdir").await,
    );
    check("mkdir in /etc", &c.mkdir(b"abs_etc/newdir").await);
    check(
        "symlink through link",
        &c.two_paths(SYMLINK, b"x", b"sentinel_link/l").await,
    );
    check(
        "rename into link",
        &c.two_paths(RENAME, b"file.txt", b"sentinel_link/f").await,
    );
    check(
        "rename out of link",
        &c.two_paths(RENAME, b"sentinel_link/s.txt", b"s").await,
    );
    check(
        "posix-rename into link",
        &c.ext2(
            "posix-rename@openssh.com",
            b"file.txt",
            b"sentinel_link/s.txt",
        )
        .await,
    );
    check(
        "hardlink from outside",
        &c.ext2("hardlink@openssh.com", b"sentinel_link/s.txt", b"hl")
            .await,
    );
    check(
        "hardlink of a host path",
        &c.ext2("hardlink@openssh.com", host_outside.as_bytes(), b"hl2")
            .await,
    );
    let mut statvfs = Vec::new();
    put_str(&mut statvfs, b"abs_etc");
    check(
        "statvfs through link",
        &c.ext("statvfs@openssh.com", &statvfs).await,
    );
    let mut expand = Vec::new();
    put_str(&mut expand, b"~root/.ssh");
    check(
        "expand ~root",
        &c.ext("expand-path@openssh.com", &expand).await,
    );
    let mut home_dir = Vec::new();
    put_str(&mut home_dir, b"root");
    check(
        "home-directory root",
        &c.ext("home-directory", &home_dir).await,
    );
    let r = c.open(b"fifo", READ).await;
    assert!(
        matches!(&r, Reply::Status(4, m) if m == "not a regular file"),
        "{r:?}"
    );
    check("fifo", &r);
    check("fifo write", &c.open(b"fifo", WRITE).await);

    // Creating a link that points out is allowed; following it is not.
    ok(c.two_paths(SYMLINK, b"../../../outside.txt", b"mine").await);
    check("follow own link", &c.open(b"mine", READ).await);
    assert_eq!(
        c.path_op(READLINK, b"mine").await,
        Reply::Name(vec![b"../../../outside.txt".to_vec()])
    );
    // An absolute target is a path inside the home.
    ok(c.two_paths(SYMLINK, b"/file.txt", b"docs/abs").await);
    assert_eq!(
        c.path_op(READLINK, b"docs/abs").await,
        Reply::Name(vec![b"../file.txt".to_vec()])
    );
    let h = handle(c.open(b"docs/abs", READ).await);
    assert_eq!(c.read(&h, 0, 100).await, Ok(b"inside".to_vec()));
    ok(c.close(&h).await);
    // A hard link of a symlink is another symlink: still not followed.
    ok(c.ext2("hardlink@openssh.com", b"up", b"up_hard").await);
    check("follow hard-linked link", &c.open(b"up_hard", READ).await);
    // lsetstat acts on the link itself, inside the home.
    let mut ls = Vec::new();
    put_str(&mut ls, b"abs_etc");
    ls.extend(Raw::attrs(None, Some(1_000_000)));
    ok(c.ext("lsetstat@openssh.com", &ls).await);

    // `..` never lists or names anything above the home.
    let top = c.list(b"/").await.unwrap();
    assert_eq!(c.list(b"..").await.unwrap(), top);
    assert_eq!(c.list(b"/../..").await.unwrap(), top);
    assert!(!top.contains(&b"sentinel".to_vec()) && !top.contains(&b"outside.txt".to_vec()));
    assert_eq!(
        c.path_op(REALPATH, b"../..").await,
        Reply::Name(vec![b"/".to_vec()])
    );
    assert_eq!(
        c.path_op(REALPATH, b"/../x").await,
        Reply::Name(vec![b"/x".to_vec()])
    );
    let mut expand = Vec::new();
    put_str(&mut expand, b"~/../../etc");
    assert_eq!(
        c.ext("expand-path@openssh.com", &expand).await,
        Reply::Name(vec![b"/etc".to_vec()])
    );
    // mkdir and rename with `..` stay inside.
    ok(c.mkdir(b"../escaped_dir").await);
    assert!(home.join("escaped_dir").is_dir());
    ok(c.two_paths(RENAME, b"file.txt", b"../renamed.txt").await);
    assert!(home.join("renamed.txt").is_file());
    // Removing the link itself is fine and leaves its target alone.
    ok(c.path_op(REMOVE, b"sentinel_link").await);
    check("rmdir home", &c.path_op(RMDIR, b"/").await);
    check("rename home", &c.two_paths(RENAME, b"/", b"x").await);

    c.finish(&f).await;
    assert!(cases >= 30, "only {cases} cases");
    assert_eq!(
        before,
        f.outside_snapshot(),
        "something outside the home changed"
    );
    assert_eq!(
        std::fs::metadata(f.path("outside.txt")).unwrap().mode(),
        outside_mode
    );
    assert!(!Path::new("/etc/coffer-evil").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_swapped_in_for_a_folder_never_leads_out() {
    symlink_swap_race(Fixture::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_swapped_in_for_a_folder_in_memory_never_leads_out() {
    symlink_swap_race(Fixture::in_memory()).await;
}

async fn symlink_swap_race(f: Fixture) {
    let home = f.home();
    std::fs::create_dir_all(home.join("d")).unwrap();
    std::fs::write(home.join("d/s.txt"), b"INSIDE").unwrap();
    std::os::unix::fs::symlink("../sentinel", home.join("d_swap")).unwrap();
    let before = f.outside_snapshot();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let home = home.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let dir = std::fs::File::open(&home).unwrap();
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                rustix::fs::renameat_with(
                    &dir,
                    "d",
                    &dir,
                    "d_swap",
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .unwrap();
                swaps += 1;
            }
            swaps
        })
    };

    let mut c = Raw::start(f.root(FULL)).await;
    let mut inside_reads = 0;
    for i in 0..400 {
        match c.open(b"d/s.txt", READ).await {
            Reply::Handle(h) => {
                if let Ok(data) = c.read(&h, 0, 64).await {
                    assert_eq!(data, b"INSIDE", "read through the swapped link");
                    inside_reads += 1;
                }
                c.close(&h).await;
            }
            r => refused("open", &r),
        }
        let name = format!("d/new{i}.txt");
        if let Reply::Handle(h) = c.open(name.as_bytes(), WRITE | CREAT | TRUNC).await {
            c.write(&h, 0, b"PWNED").await;
            c.close(&h).await;
        }
        c.path_op(REMOVE, b"d/s.txt").await;
        truncate(&mut c, b"d/s.txt").await;
        c.setstat(b"d", Some(0o777), Some(0)).await;
        c.path_op(STAT, b"d/s.txt").await;
        if let Ok(names) = c.list(b"d").await {
            assert!(!names.contains(&b"inner".to_vec()), "listed the sentinel");
        }
        // Put the inside file back if a remove hit it.
        if let Reply::Handle(h) = c.open(b"d/s.txt", WRITE | CREAT).await {
            c.write(&h, 0, b"INSIDE").await;
            c.close(&h).await;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    c.finish(&f).await;
    assert!(swaps > 100, "the race did not run ({swaps} swaps)");
    assert!(inside_reads > 0);
    assert_eq!(
        before,
        f.outside_snapshot(),
        "something outside the home changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_home_never_sees_a_sibling_home() {
    let f = Fixture::new();
    let homes = f.path("homes");
    std::fs::create_dir_all(homes.join("bob")).unwrap();
    std::fs::write(homes.join("bob/secret.txt"), SECRET).unwrap();
    let alice = Arc::new(Root::open(&homes.join("alice"), "alice", FULL).unwrap());
    assert_eq!(
        std::fs::metadata(homes.join("alice")).unwrap().mode() & 0o777,
        0o700,
        "a new home is private"
    );
    let mut c = Raw::start(alice.clone()).await;
    for p in [
        &b"../bob/secret.txt"[..],
        b"/../bob/secret.txt",
        b"bob/secret.txt",
    ] {
        refused("sibling", &c.open(p, READ).await);
    }
    ok(c.two_paths(SYMLINK, b"../bob", b"b").await);
    refused("sibling via link", &c.open(b"b/secret.txt", READ).await);
    refused("sibling listing", &c.path_op(OPENDIR, b"b").await);
    ok(c.two_paths(SYMLINK, b"/../bob", b"b2").await);
    refused(
        "absolute sibling link",
        &c.open(b"b2/secret.txt", READ).await,
    );
    let mut expand = Vec::new();
    put_str(&mut expand, b"~bob/secret.txt");
    refused("~bob", &c.ext("expand-path@openssh.com", &expand).await);
    c.finish(&f).await;

    // SCP too.
    let (client, server) = tokio::io::duplex(1 << 16);
    let task = tokio::spawn(serve_scp("scp -f ../bob/secret.txt", server, alice.clone()));
    let (mut r, mut w) = tokio::io::split(client);
    w.write_all(&[0]).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), r.read_to_end(&mut got)).await;
    let summary = task.await.unwrap().unwrap();
    assert_eq!(summary.failures, 1);
    assert!(
        got.starts_with(b"\x01scp: /bob/secret.txt: No such file"),
        "{got:?}"
    );
    assert!(!got.windows(SECRET.len()).any(|x| x == SECRET));
    assert!(matches!(
        serve_scp("scp -f ~bob/secret.txt", tokio::io::duplex(64).0, alice).await,
        Err(ScpError::Command(_))
    ));
}

// ---------------------------------------------------------------------
// Hostile input.

/// Runs the server on `input` (then end of stream) and returns how it ended.
async fn serve_bytes(root: Arc<Root>, input: Vec<u8>) -> Result<Summary, SftpError> {
    let (client, server) = tokio::io::duplex(1 << 16);
    let task = tokio::spawn(serve(server, root, SftpLimits::default()));
    let (mut r, mut w) = tokio::io::split(client);
    let reader = tokio::spawn(async move {
        let mut sink = Vec::new();
        let _ = r.read_to_end(&mut sink).await;
    });
    let _ = w.write_all(&input).await;
    let _ = w.shutdown().await;
    let result = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the server ends")
        .expect("no panic");
    drop(w);
    let _ = reader.await;
    result
}

fn init() -> Vec<u8> {
    frame(1, &[0, 0, 0, 3])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_input_ends_the_session_without_panic() {
    let f = Fixture::new();
    let root = f.root(FULL);
    let mut seed = 7u64;
    for round in 0..300 {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let len = (seed >> 33) as usize % 3000;
        let mut input = if round % 2 == 0 { init() } else { Vec::new() };
        input.extend(noise(len, seed));
        // Some rounds: plausible lengths with random types and bodies.
        if round % 3 == 0 {
            let mut framed = init();
            for chunk in noise(len, seed ^ 1).chunks(37) {
                framed.extend(frame(chunk[0] % 24, chunk));
            }
            input = framed;
        }
        let _ = serve_bytes(root.clone(), input).await;
    }
    // Specific shapes.
    let huge = [init(), vec![0xff, 0xff, 0xff, 0xff, 3, 0, 0, 0, 1]].concat();
    assert!(matches!(
        serve_bytes(root.clone(), huge).await,
        Err(SftpError::Protocol(_))
    ));
    let empty = [init(), vec![0, 0, 0, 0]].concat();
    assert!(matches!(
        serve_bytes(root.clone(), empty).await,
        Err(SftpError::Protocol(_))
    ));
    let truncated = [init(), vec![0, 0, 1, 0, 17, 0, 0]].concat();
    assert!(matches!(
        serve_bytes(root.clone(), truncated).await,
        Err(SftpError::Protocol(_))
    ));
    let mut bad_body = Vec::new();
    put_u32(&mut bad_body, 9);
    put_u32(&mut bad_body, 1000); // a string longer than the packet
    let malformed = [init(), frame(OPEN, &bad_body)].concat();
    assert!(matches!(
        serve_bytes(root.clone(), malformed).await,
        Err(SftpError::Protocol(_))
    ));
    let no_init = frame(STAT, &[0, 0, 0, 1, 0, 0, 0, 1, b'/']);
    assert!(matches!(
        serve_bytes(root.clone(), no_init).await,
        Err(SftpError::Protocol(_))
    ));
    // A clean end right after INIT is a normal end.
    assert!(serve_bytes(root.clone(), init()).await.is_ok());
    assert!(serve_bytes(root, Vec::new()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_packet_is_skipped_and_the_stream_stays_in_sync() {
    let f = Fixture::new();
    let mut c = Raw::start(f.root(FULL)).await;
    let h = handle(c.open(b"f.bin", WRITE | CREAT).await);
    let r = c.write(&h, 0, &vec![7u8; 400 * 1024]).await;
    assert_eq!(r, Reply::Status(4, "packet too large".into()));
    ok(c.write(&h, 0, b"small").await);
    ok(c.close(&h).await);
    // An unknown type and an unknown extension are answered, not fatal.
    assert!(matches!(c.call(99, &[]).await, Reply::Status(8, _)));
    assert!(matches!(
        c.ext("nope@example.com", &[]).await,
        Reply::Status(8, _)
    ));
    // Bad handles.
    assert!(matches!(c.read(b"xxxx", 0, 10).await, Err(4)));
    assert!(matches!(c.close(b"\0\0\0\x09").await, Reply::Status(4, _)));
    let summary = c.finish(&f).await;
    assert_eq!(std::fs::read(f.home().join("f.bin")).unwrap(), b"small");
    assert_eq!(summary.bytes_written, 5);
    assert_eq!(summary.files_opened, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_queue_smaller_than_a_read_is_raised_to_one_read() {
    // A queue of READ replies that cannot hold one whole read would leave
    // the read waiting forever; the session raises it to `max_read`.
    let f = Fixture::new();
    let data = noise(600 * 1024, 12);
    std::fs::write(f.home().join("q.bin"), &data).unwrap();
    let limits = SftpLimits {
        max_read_queued: 1,
        ..SftpLimits::default()
    };
    let mut c = Raw::start_with(f.root(FULL), limits).await;
    let h = handle(c.open(b"q.bin", READ).await);
    let mut got = Vec::new();
    while got.len() < data.len() {
        let read = c.read(&h, got.len() as u64, 256 * 1024);
        let chunk = tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("READ answered")
            .unwrap();
        assert_eq!(chunk.len(), (data.len() - got.len()).min(256 * 1024));
        got.extend_from_slice(&chunk);
    }
    assert!(got == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_and_bounded() {
    let f = Fixture::new();
    let data = noise(4 * 1024 * 1024, 9);
    std::fs::write(f.home().join("r.bin"), &data).unwrap();
    let limits = SftpLimits {
        max_outstanding: 8,
        max_handles: 4,
        ..SftpLimits::default()
    };
    let mut c = Raw::start_with(f.root(FULL), limits).await;
    // limits@openssh.com tells the client the sizes.
    match c.ext("limits@openssh.com", &[]).await {
        Reply::Extended(v) => {
            let mut cur = Cur(&v);
            assert_eq!(cur.u64(), 256 * 1024 + 1024);
            assert_eq!(cur.u64(), 256 * 1024);
            assert_eq!(cur.u64(), 256 * 1024);
            assert_eq!(cur.u64(), 4);
        }
        other => panic!("{other:?}"),
    }
    let h = handle(c.open(b"r.bin", READ).await);
    // 100 reads of 32 KiB sent at once, plus one too long (cut to 256 KiB).
    let mut batch = Vec::new();
    let first = c.id + 1;
    for i in 0..100u32 {
        let mut b = Vec::new();
        put_u32(&mut b, first + i);
        put_str(&mut b, &h);
        b.extend_from_slice(&(u64::from(i) * 32768).to_be_bytes());
        put_u32(&mut b, 32768);
        batch.extend(frame(READ_T, &b));
    }
    let mut b = Vec::new();
    put_u32(&mut b, first + 100);
    put_str(&mut b, &h);
    b.extend_from_slice(&0u64.to_be_bytes());
    put_u32(&mut b, 1 << 20);
    batch.extend(frame(READ_T, &b));
    c.s.write_all(&batch).await.unwrap();
    for i in 0..100u32 {
        let (ty, body) = c.packet().await;
        let (id, reply) = Raw::parse(ty, &body);
        assert_eq!(id, first + i, "replies in request order");
        let start = i as usize * 32768;
        assert_eq!(reply, Reply::Data(data[start..start + 32768].to_vec()));
    }
    let (ty, body) = c.packet().await;
    match Raw::parse(ty, &body) {
        (_, Reply::Data(d)) => assert_eq!(d.len(), 256 * 1024),
        other => panic!("{other:?}"),
    }
    c.id = first + 100;
    assert_eq!(c.read(&h, data.len() as u64, 10).await, Err(1), "EOF");
    // Handle limit.
    let mut handles = vec![h];
    loop {
        match c.open(b"r.bin", READ).await {
            Reply::Handle(h) => handles.push(h),
            Reply::Status(4, m) => {
                assert_eq!(m, "too many open handles");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(handles.len(), 4);
    for h in handles.drain(1..) {
        ok(c.close(&h).await);
    }
    // Writes in flight, then a read of the same range sees them.
    let w = handle(c.open(b"w.bin", WRITE | READ | CREAT).await);
    let mut batch = Vec::new();
    let first = c.id + 1;
    for i in 0..16u32 {
        let mut b = Vec::new();
        put_u32(&mut b, first + i);
        put_str(&mut b, &w);
        b.extend_from_slice(&(u64::from(i) * 4096).to_be_bytes());
        put_str(&mut b, &[i as u8; 4096]);
        batch.extend(frame(WRITE_T, &b));
    }
    let mut b = Vec::new();
    put_u32(&mut b, first + 16);
    put_str(&mut b, &w);
    b.extend_from_slice(&0u64.to_be_bytes());
    put_u32(&mut b, 16 * 4096);
    batch.extend(frame(READ_T, &b));
    c.s.write_all(&batch).await.unwrap();
    for i in 0..16 {
        let (ty, body) = c.packet().await;
        assert_eq!(
            Raw::parse(ty, &body),
            (first + i, Reply::Status(0, "Success".into()))
        );
    }
    let (ty, body) = c.packet().await;
    let expected: Vec<u8> = (0..16u8).flat_map(|i| [i; 4096]).collect();
    assert_eq!(Raw::parse(ty, &body), (first + 16, Reply::Data(expected)));
    c.id = first + 16;
    let st = c.path_op(LSTAT, b"w.bin").await;
    assert_eq!(
        st,
        Reply::Attrs {
            size: Some(65536),
            perm: Some(0o100_644)
        }
    );
    c.finish(&f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_refuses_other_commands_and_hostile_records() {
    let f = Fixture::new();
    let root = f.root(FULL);
    for cmd in [
        "ls -la",
        "sh -c 'scp -t x'",
        "scp -t x; rm -rf ~",
        "scp -t $(id)",
        "scp -x -t x",
        "scp -t -f x",
        "scp a b",
        "rsync --server . x",
        "",
    ] {
        let r = serve_scp(cmd, tokio::io::duplex(64).0, root.clone()).await;
        assert!(matches!(r, Err(ScpError::Command(_))), "{cmd}: {r:?}");
    }

    // A record naming a path instead of a file name ends the session.
    for record in [
        &b"C0644 3 ../x\n"[..],
        b"C0644 3 a/b\n",
        b"C0644 3 ..\n",
        b"C0644 3 \n",
        b"D0755 0 dir\n",
        b"X junk\n",
        b"C0644 99999999999999999999999 a\n",
    ] {
        let (client, server) = tokio::io::duplex(1 << 16);
        let task = tokio::spawn(serve_scp("scp -t .", server, root.clone()));
        let (mut r, mut w) = tokio::io::split(client);
        let mut ready = [9u8; 1];
        r.read_exact(&mut ready).await.unwrap();
        assert_eq!(ready, [0]);
        w.write_all(record).await.unwrap();
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), r.read_to_end(&mut got)).await;
        assert!(
            got.starts_with(b"\x01scp: protocol error"),
            "{record:?}: {got:?}"
        );
        assert!(
            matches!(task.await.unwrap(), Err(ScpError::Protocol(_))),
            "{record:?}"
        );
    }
    assert!(!f.path("x").exists());

    // A full upload by hand: times, then a file, checked byte for byte.
    let (client, server) = tokio::io::duplex(1 << 16);
    let task = tokio::spawn(serve_scp("scp -p -t -- /", server, root.clone()));
    let (mut r, mut w) = tokio::io::split(client);
    let mut ack = [9u8; 1];
    r.read_exact(&mut ack).await.unwrap();
    w.write_all(b"T1600000000 0 1600000001 0\n").await.unwrap();
    r.read_exact(&mut ack).await.unwrap();
    assert_eq!(ack, [0]);
    w.write_all(b"C4755 5 hand.txt\n").await.unwrap();
    r.read_exact(&mut ack).await.unwrap();
    assert_eq!(ack, [0]);
    w.write_all(b"hello\0").await.unwrap();
    r.read_exact(&mut ack).await.unwrap();
    assert_eq!(ack, [0]);
    w.shutdown().await.unwrap();
    let summary = task.await.unwrap().unwrap();
    assert_eq!(summary.bytes_written, 5);
    let meta = std::fs::metadata(f.home().join("hand.txt")).unwrap();
    assert_eq!(std::fs::read(f.home().join("hand.txt")).unwrap(), b"hello");
    assert_eq!(meta.mode() & 0o7777, 0o755, "setuid stripped");
    assert_eq!(meta.mtime(), 1_600_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_garbage_input_never_panics_or_hangs() {
    let f = Fixture::new();
    let root = f.root(FULL);
    std::fs::write(f.home().join("x.bin"), noise(100_000, 11)).unwrap();
    let before = f.outside_snapshot();
    let mut seed = 3u64;
    for round in 0..150 {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let command = [
            "scp -t .",
            "scp -r -p -t -- /",
            "scp -f x.bin",
            "scp -r -f /",
        ][round % 4];
        let mut input = noise((seed >> 40) as usize % 2000, seed);
        // Some rounds start like a real client.
        if round % 3 == 0 {
            let mut real = if command.contains("-f") {
                b"\0".to_vec()
            } else {
                Vec::new()
            };
            real.extend_from_slice(b"C0644 10 a\n0123456789\0D0755 0 d\nC0600 3 ");
            real.extend(input);
            input = real;
        }
        let (client, server) = tokio::io::duplex(1 << 16);
        let task = tokio::spawn(serve_scp(command, server, root.clone()));
        let (mut r, mut w) = tokio::io::split(client);
        let reader = tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = r.read_to_end(&mut sink).await;
        });
        let _ = w.write_all(&input).await;
        let _ = w.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("the scp server ends")
            .expect("no panic");
        drop(w);
        let _ = reader.await;
    }
    assert_eq!(before, f.outside_snapshot());
}
