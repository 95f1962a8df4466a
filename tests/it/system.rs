//! `coffer serve` as a system service: the shipped unit's hardening score,
//! the notification protocol and the watchdog (with a fake service manager
//! listening on `NOTIFY_SOCKET`), SIGHUP reloads, data dir modes, and the
//! privilege drop of a server started as root.

#![allow(clippy::disallowed_methods)] // tests wait for a real process with real time

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use crate::cli::raw;

/// A running `coffer serve`, killed when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    stderr: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, signal).unwrap();
    }
}

/// Writes a configuration; as root, the server may stay root unless the
/// test says otherwise.
pub(crate) fn config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("coffer.toml");
    let service = if nix::unistd::Uid::effective().is_root() && !extra.contains("[service]") {
        "[service]\nallow_root = true\n"
    } else {
        ""
    };
    // Top-level keys go before the first table.
    let (top, tables) = if extra.starts_with('[') {
        ("", extra)
    } else {
        (extra, "")
    };
    std::fs::write(
        &path,
        format!("version = 1\n{top}[sftp]\nrsa_host_key = false\n{service}{tables}"),
    )
    .unwrap();
    path
}

/// Starts `coffer serve` and waits for its `ready:` line.
fn serve(dir: &Path, config: &Path, env: &[(&str, &str)]) -> Server {
    serve_sealed(dir, config, &["--seal", "keyfile"], env)
}

/// [`serve`] with the given seal options (`--seal`, `--tcti`).
pub(crate) fn serve_sealed(
    dir: &Path,
    config: &Path,
    seal: &[&str],
    env: &[(&str, &str)],
) -> Server {
    let stderr = dir.join("serve.log");
    let mut c = serve_command(dir, config, seal, &stderr);
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let server = Server { child, stderr };
    let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
    assert!(
        line.starts_with("ready: sftp "),
        "server did not start: {line:?}\n{}",
        server.log()
    );
    server
}

/// `coffer serve` on `DIR/data` with `config`, both listeners on free
/// loopback ports, stderr to `stderr`.
fn serve_command(dir: &Path, config: &Path, seal: &[&str], stderr: &Path) -> std::process::Command {
    let mut c = serve_on_loopback(dir, config, seal);
    c.stderr(std::fs::File::create(stderr).unwrap());
    c
}

/// `coffer --data-dir DIR/data SEAL serve --config CONFIG` on loopback
/// ports.
pub(crate) fn serve_on_loopback(dir: &Path, config: &Path, seal: &[&str]) -> std::process::Command {
    let mut c = raw(&[]);
    c.arg("--data-dir")
        .arg(dir.join("data"))
        .args(seal)
        .args(["serve", "--config"])
        .arg(config)
        .args([
            "--sftp-listen",
            "127.0.0.1:0",
            "--https-listen",
            "127.0.0.1:0",
        ]);
    c
}

/// A fake service manager: the socket `NOTIFY_SOCKET` names.
struct Manager {
    socket: UnixDatagram,
    path: PathBuf,
}

impl Manager {
    fn new(dir: &Path) -> Self {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        Manager { socket, path }
    }

    /// Messages received within `window`, with their arrival times.
    fn collect(&self, window: Duration) -> Vec<(Instant, String)> {
        let end = Instant::now() + window;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let now = Instant::now();
            if now >= end {
                return got;
            }
            self.socket
                .set_read_timeout(Some((end - now).max(Duration::from_millis(1))))
                .unwrap();
            if let Ok(n) = self.socket.recv(&mut buf) {
                got.push((
                    Instant::now(),
                    String::from_utf8_lossy(&buf[..n]).into_owned(),
                ));
            }
        }
    }
}

fn keepalive_times(messages: &[(Instant, String)]) -> Vec<Instant> {
    messages
        .iter()
        .filter(|(_, m)| m.lines().any(|l| l == "WATCHDOG=1"))
        .map(|(t, _)| *t)
        .collect()
}

#[test]
fn shipped_unit_scores_at_most_1_5_and_the_readme_says_so() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(root.join("systemd/coffer.service"))
        .output()
        .expect("systemd-analyze (Debian package systemd) must be installed: tests/run does it");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no overall line in:\n{text}"));
    let figure: f64 = line
        .split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the figure in {line:?}"));
    assert!(figure <= 1.5, "exposure {figure} > 1.5:\n{text}");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("exposure level {figure:.1}")),
        "README.md must state the figure {figure:.1}"
    );
}

#[test]
fn ready_then_keepalives_then_silence_when_the_store_is_wedged() {
    let dir = tempfile::tempdir().unwrap();
    let manager = Manager::new(dir.path());
    let cfg = config(dir.path(), "");
    let started = Instant::now();
    let server = serve(
        dir.path(),
        &cfg,
        &[
            ("NOTIFY_SOCKET", manager.path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
            ("COFFER_TEST_WEDGE", "store:3"),
        ],
    );
    let messages = manager.collect(Duration::from_secs(8).saturating_sub(started.elapsed()));
    let end = Instant::now();
    let all: Vec<&str> = messages.iter().map(|(_, m)| m.as_str()).collect();
    let ready = messages
        .iter()
        .position(|(_, m)| m.starts_with("READY=1"))
        .unwrap_or_else(|| panic!("no READY=1 in {all:?}"));
    assert!(
        messages[..ready]
            .iter()
            .any(|(_, m)| m.starts_with("STATUS=Starting")),
        "a readable status comes before READY=1: {all:?}"
    );
    assert!(
        messages[ready]
            .1
            .contains("STATUS=Serving SFTP on 127.0.0.1:"),
        "{all:?}"
    );
    let unhealthy = messages
        .iter()
        .position(|(_, m)| m.contains("STATUS=Unhealthy: the store has not answered"))
        .unwrap_or_else(|| panic!("the wedge was not noticed: {all:?}\n{}", server.log()));
    let before = keepalive_times(&messages[ready..unhealthy]);
    assert!(
        before.len() >= 3,
        "keep-alives while healthy: {}: {all:?}",
        before.len()
    );
    for pair in before.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(250) && gap <= Duration::from_millis(1000),
            "keep-alives come at half the 1 s watchdog, not every {gap:?}"
        );
    }
    let after = keepalive_times(&messages[unhealthy..]);
    assert!(after.is_empty(), "keep-alives after the wedge: {all:?}");
    assert!(
        end - messages[unhealthy].0 >= Duration::from_secs(2),
        "watched the silence for too short a time"
    );
    assert!(
        server
            .log()
            .contains("unhealthy: watchdog keep-alives stopped"),
        "{}",
        server.log()
    );
}

#[test]
fn a_dead_listener_stops_the_keepalives() {
    let dir = tempfile::tempdir().unwrap();
    let manager = Manager::new(dir.path());
    let cfg = config(dir.path(), "");
    let server = serve(
        dir.path(),
        &cfg,
        &[
            ("NOTIFY_SOCKET", manager.path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
            ("COFFER_TEST_WEDGE", "listener:2"),
        ],
    );
    let messages = manager.collect(Duration::from_secs(6));
    let all: Vec<&str> = messages.iter().map(|(_, m)| m.as_str()).collect();
    let stop = messages
        .iter()
        .position(|(_, m)| m.contains("STATUS=Unhealthy: the SFTP listener has stopped"))
        .unwrap_or_else(|| panic!("the dead listener was not noticed: {all:?}"));
    assert!(!keepalive_times(&messages[..stop]).is_empty(), "{all:?}");
    assert!(keepalive_times(&messages[stop..]).is_empty(), "{all:?}");
    drop(server);
}

#[test]
fn sigterm_right_after_the_ready_line_stops_cleanly() {
    // The handler is in place before the ready line: a SIGTERM at once ends
    // the server through its orderly stop (exit 0, control socket removed),
    // not through the signal's default action.
    for _ in 0..40 {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), "");
        let mut server = serve(dir.path(), &cfg, &[]);
        server.signal(nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "still running\n{}", server.log());
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{status:?}\n{}", server.log());
        let socket = dir.path().join("data").join("coffer.sock");
        assert!(!socket.exists(), "control socket left behind");
    }
}

#[test]
fn a_closed_stdout_costs_only_the_ready_line() {
    // Started with nobody reading its stdout, the server warns that the
    // ready line could not be written and serves anyway.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let data = dir.path().join("data");
    let stderr = dir.path().join("serve.log");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = serve_command(dir.path(), &cfg, &["--seal", "keyfile"], &stderr)
        .stdout(writer)
        .spawn()
        .unwrap();
    let mut server = Server { child, stderr };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server
        .log()
        .contains("cannot write the ready line to stdout")
    {
        assert!(
            server.child.try_wait().unwrap().is_none(),
            "the server ended\n{}",
            server.log()
        );
        assert!(Instant::now() < deadline, "no warning\n{}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = crate::cli::coffer(&data, &["status"]);
    assert!(crate::cli::ok(&status).contains("server:    running"));
    server.signal(nix::sys::signal::Signal::SIGTERM);
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", server.log());
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

#[test]
fn sighup_reloads_the_log_level_and_names_what_needs_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let manager = Manager::new(dir.path());
    let cfg = config(dir.path(), "log_level = \"warn\"\n");
    let server = serve(
        dir.path(),
        &cfg,
        &[("NOTIFY_SOCKET", manager.path.to_str().unwrap())],
    );
    let _ = manager.collect(Duration::from_millis(300));
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("log_level = \"warn\"", "log_level = \"info\"")
            .replace(
                "rsa_host_key = false",
                "rsa_host_key = false\nmax_channels = 4",
            ),
    )
    .unwrap();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    let messages = manager.collect(Duration::from_secs(2));
    let all: Vec<&str> = messages.iter().map(|(_, m)| m.as_str()).collect();
    let reloading = all
        .iter()
        .position(|m| m.starts_with("RELOADING=1\nMONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("{all:?}"));
    assert!(
        all[reloading..].iter().any(|m| m.starts_with("READY=1")),
        "{all:?}"
    );
    let log = server.log();
    assert!(log.contains("log_level is now \"info\""), "{log}");
    assert!(
        log.contains("sftp changed: it takes effect after a restart"),
        "{log}"
    );
    // A broken file is reported; the server goes on.
    std::fs::write(&cfg, "version = 1\nnonsense = 1\n").unwrap();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    let _ = manager.collect(Duration::from_secs(1));
    assert!(server.log().contains("reload failed"), "{}", server.log());
    let status = crate::cli::coffer(&dir.path().join("data"), &["status"]);
    assert!(crate::cli::ok(&status).contains("server:    running"));
}

#[test]
fn loose_data_dir_modes_are_refused_naming_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = config(dir.path(), "");
    crate::cli::ok(&crate::cli::coffer_stdin(
        &data,
        &[
            "setup",
            "--admin",
            "owner",
            "--password-file",
            "-",
            "--hash-cost",
            "m=64,t=1,p=1",
        ],
        crate::harness::PASSWORD,
    ));
    let serve_once = || {
        let mut c = raw(&[]);
        c.arg("--data-dir")
            .arg(&data)
            .args(["--seal", "keyfile", "serve", "--config"])
            .arg(&cfg)
            .args([
                "--sftp-listen",
                "127.0.0.1:0",
                "--https-listen",
                "127.0.0.1:0",
            ]);
        c.output().unwrap()
    };
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let line = crate::cli::refusal(&serve_once(), "chmod 700").unwrap();
    assert!(line.contains(data.to_str().unwrap()), "{line}");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let store = data.join("coffer.redb");
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o644)).unwrap();
    let line = crate::cli::refusal(&serve_once(), "chmod 600").unwrap();
    assert!(line.contains("coffer.redb"), "{line}");
}

/// Reads `Key:` of /proc/PID/status.
fn proc_status(pid: u32, key: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn started_as_root_the_server_drops_to_its_account() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: the privilege drop needs root (CI runs as root)");
        return;
    }
    let user = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let group = nix::unistd::Group::from_gid(user.gid).unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The service account must reach the data dir.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = config(
        dir.path(),
        &format!("[service]\nuser = \"nobody\"\ngroup = \"{}\"\n", group.name),
    );
    let server = serve(dir.path(), &cfg, &[]);
    let pid = server.child.id();
    let (uid, gid) = (user.uid.as_raw(), user.gid.as_raw());
    assert_eq!(proc_status(pid, "Uid"), format!("{uid} {uid} {uid} {uid}"));
    assert_eq!(proc_status(pid, "Gid"), format!("{gid} {gid} {gid} {gid}"));
    assert_eq!(proc_status(pid, "Groups"), gid.to_string());
    for set in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert_eq!(proc_status(pid, set), "0000000000000000", "{set}");
    }
    assert_eq!(proc_status(pid, "NoNewPrivs"), "1");
    // Every thread dropped, not only the main one.
    // A short-lived thread (a blocking-pool worker) may end between the
    // listing and the read; one that is gone holds nothing.
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = match std::fs::read_to_string(task.unwrap().path().join("status")) {
            Ok(status) => status,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(3) => {
                continue;
            }
            Err(e) => panic!("reading a thread's status: {e}"),
        };
        assert!(
            status.contains(&format!("Uid:\t{uid}\t{uid}\t{uid}\t{uid}")),
            "{status}"
        );
        assert!(status.contains("CapEff:\t0000000000000000"), "{status}");
    }
    // The data dir now belongs to the account; root's CLI still reaches the server.
    let data = dir.path().join("data");
    use std::os::unix::fs::MetadataExt as _;
    assert_eq!(
        std::fs::metadata(data.join("coffer.redb")).unwrap().uid(),
        uid
    );
    // All the way down: the certificate and key made before the drop too.
    for file in ["tls", "tls/cert.pem", "tls/key.pem"] {
        assert_eq!(
            std::fs::symlink_metadata(data.join(file)).unwrap().uid(),
            uid,
            "{file}"
        );
    }
    let status = crate::cli::coffer(&data, &["status"]);
    let status = crate::cli::ok(&status);
    assert!(status.contains("server:    running"), "{status}");
    // The certificate the server serves, not "no certificate yet".
    assert!(
        status.contains("https:     certificate SHA-256 "),
        "{status}"
    );
    assert!(
        server.log().contains("dropped root privileges"),
        "{}",
        server.log()
    );
    drop(server);
    // A certificate the account cannot read is named once, its cause once.
    std::fs::set_permissions(
        data.join("tls/cert.pem"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::os::unix::fs::chown(data.join("tls/cert.pem"), Some(0), Some(0)).unwrap();
    let stderr = dir.path().join("as-account.log");
    let mut c = serve_command(dir.path(), &cfg, &["--seal", "keyfile"], &stderr);
    use std::os::unix::process::CommandExt as _;
    let status = c.uid(uid).gid(gid).status().unwrap();
    let log = std::fs::read_to_string(&stderr).unwrap();
    assert!(!status.success(), "{log}");
    assert!(log.contains("tls/cert.pem"), "{log}");
    assert_eq!(log.matches("Permission denied").count(), 1, "{log}");
}

#[test]
fn started_as_root_without_an_account_to_drop_to_the_server_refuses() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = |extra: &str| {
        let cfg = config(dir.path(), extra);
        let mut c = raw(&[]);
        c.arg("--data-dir")
            .arg(&data)
            .args(["--seal", "keyfile", "serve", "--config"])
            .arg(&cfg)
            .args([
                "--sftp-listen",
                "127.0.0.1:0",
                "--https-listen",
                "127.0.0.1:0",
            ]);
        c.output().unwrap()
    };
    crate::cli::refusal(&run("[service]\nuser = \"root\"\n"), "allow_root").unwrap();
    crate::cli::refusal(
        &run("[service]\nuser = \"no-such-account-here\"\n"),
        "no such account",
    )
    .unwrap();
    if nix::unistd::User::from_name("coffer").unwrap().is_none() {
        crate::cli::refusal(&run("[service]\n"), "allow_root = true").unwrap();
    }
    assert!(!data.exists(), "a refused start creates nothing");
}

/// Parses one native journal datagram (`NAME\n<u64 LE length><value>\n`
/// or `NAME=value\n`) into its fields.
fn journal_fields(mut b: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let Some(nl) = b.iter().position(|&c| c == b'\n') else {
            break;
        };
        let head = &b[..nl];
        if let Some(eq) = head.iter().position(|&c| c == b'=') {
            out.push((
                String::from_utf8_lossy(&head[..eq]).into_owned(),
                String::from_utf8_lossy(&head[eq + 1..]).into_owned(),
            ));
            b = &b[nl + 1..];
            continue;
        }
        let name = String::from_utf8_lossy(head).into_owned();
        let rest = &b[nl + 1..];
        let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
        out.push((
            name,
            String::from_utf8_lossy(&rest[8..8 + len]).into_owned(),
        ));
        b = &rest[8 + len + 1..];
    }
    out
}

#[test]
fn journald_gets_the_audit_fields_and_the_session_id() {
    let socket = Path::new(coffer::system::logging::JOURNAL_SOCKET);
    if !nix::unistd::Uid::effective().is_root() || socket.exists() {
        eprintln!("skipped: needs root and no journal of its own to stand in for it");
        return;
    }
    let parent = socket.parent().unwrap();
    let made_dir = !parent.exists();
    std::fs::create_dir_all(parent).unwrap();
    let journal = UnixDatagram::bind(socket).unwrap();
    struct Cleanup<'a>(&'a Path, bool);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
            if self.1 {
                let _ = std::fs::remove_dir(self.0.parent().unwrap());
            }
        }
    }
    let _cleanup = Cleanup(socket, made_dir);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "log_target = \"journald\"\n");
    let server = serve(dir.path(), &cfg, &[]);
    // The port is in the server's status.
    let data = dir.path().join("data");
    crate::cli::ok(&crate::cli::coffer(&data, &["user", "add", "bob"]));
    let status = crate::cli::ok(&crate::cli::coffer(&data, &["status", "--json"]));
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let port = status["server"]["listening"][0]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let key = dir.path().join("id_ed25519");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen (openssh-client) must be installed: tests/run does it");
    assert!(made.success());
    let public = std::fs::read_to_string(dir.path().join("id_ed25519.pub")).unwrap();
    crate::cli::ok(&crate::cli::coffer(
        &data,
        &["user", "key", "add", "bob", public.trim()],
    ));
    let mut ssh = std::process::Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-N",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "PreferredAuthentications=publickey",
            "-i",
        ])
        .arg(&key)
        .args(["-p", &port, "bob@127.0.0.1"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Read the journal until the login shows (or 10 s pass).
    journal
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(n) = journal.recv(&mut buf) {
            let fields = journal_fields(&buf[..n]);
            let done = fields.iter().any(|(k, v)| k == "EVENT_ID" && v == "1000");
            events.push(fields);
            if done {
                break;
            }
        }
    }
    let _ = ssh.kill();
    let _ = ssh.wait();
    drop(server);
    let field = |e: &Vec<(String, String)>, k: &str| {
        e.iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    let created = events
        .iter()
        .find(|e| field(e, "EVENT_ID") == ["1500"])
        .unwrap_or_else(|| panic!("no account_created event: {events:?}"));
    assert_eq!(field(created, "ACCOUNT"), ["bob"]);
    assert_eq!(field(created, "PROTOCOL"), ["cli"]);
    assert_eq!(field(created, "SYSLOG_IDENTIFIER"), ["coffer"]);
    assert_eq!(field(created, "MESSAGE"), ["audit"]);
    let granted = events
        .iter()
        .find(|e| field(e, "EVENT_ID") == ["1000"])
        .unwrap_or_else(|| panic!("no login_granted event: {events:?}"));
    assert_eq!(field(granted, "EVENT"), ["login_granted"]);
    assert_eq!(field(granted, "ACCOUNT"), ["bob"]);
    assert_eq!(field(granted, "ADDRESS"), ["127.0.0.1"]);
    assert!(
        field(granted, "PEER")[0].starts_with("127.0.0.1:"),
        "{granted:?}"
    );
    assert_eq!(field(granted, "PROTOCOL"), ["ssh"]);
    assert_eq!(field(granted, "METHOD"), ["publickey"]);
    assert_eq!(field(granted, "SESSION_ID").len(), 1, "{granted:?}");
}

#[test]
fn read_only_root_networkd_drop_in_is_a_valid_unit_setting() {
    // Debian's own systemd-networkd.service with the image's drop-in beside
    // it: systemd-analyze loads drop-ins from the unit's directory and warns
    // about every setting it cannot use.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        "/lib/systemd/system/systemd-networkd.service",
        dir.path().join("systemd-networkd.service"),
    )
    .expect("systemd-networkd.service (Debian package systemd) must be installed");
    let drop_in = dir.path().join("systemd-networkd.service.d");
    std::fs::create_dir(&drop_in).unwrap();
    std::fs::copy(
        root.join("systemd/read-only-root/systemd-networkd.service.d/coffer-network.conf"),
        drop_in.join("coffer-network.conf"),
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--no-pager", "--man=no"])
        .arg(dir.path().join("systemd-networkd.service"))
        .output()
        .expect("systemd-analyze (Debian package systemd) must be installed: tests/run does it");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("coffer-network.conf"), "{text}");
    // The console writes where networkd's bind mount reads.
    let conf = std::fs::read_to_string(drop_in.join("coffer-network.conf")).unwrap();
    assert!(conf.contains("BindReadOnlyPaths=/var/lib/coffer/network:/etc/systemd/network"));
    let recipe = std::fs::read_to_string(
        root.join("yocto/meta-coffer/recipes-coffer/coffer/coffer_0.1.0.bb"),
    )
    .unwrap();
    assert!(recipe.contains(r#"network_dir = "${localstatedir}/lib/coffer/network""#));
}
