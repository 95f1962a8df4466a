//! The `coffer` binary as an operator runs it: every command's refusals keep
//! the error contract (exit status 2, one line on stderr that starts with
//! `coffer: `, nothing on stdout, nothing written), and the happy paths print
//! what scripts rely on.
//!
//! Each test gets its own data dir. A refused command is checked against a
//! snapshot of the whole store (every table, the audit log and the data dir's
//! file names) taken before and after it.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, OnceLock};

use coffer::audit::{Event, Filter, Record};
use coffer::auth::flow::{Login, Step};
use coffer::auth::{Auth, Method, Options, Protocol};
use coffer::clock::SystemClock;
use coffer::seal::{BackendChoice, SealOptions};
use coffer::store::{OpenMode, Read as _, Store, StoreError, Table};

use crate::harness::{CHEAP, PASSWORD, params};

/// An ed25519 key in authorized_keys form.
pub const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bob@laptop";

/// Environment variables the binary reads; cleared so the caller's shell
/// cannot steer a test.
pub const ENV: [&str; 7] = [
    "COFFER_DATA_DIR",
    "COFFER_SEAL",
    "COFFER_TCTI",
    "TPM2TOOLS_TCTI",
    "TCTI",
    "STATE_DIRECTORY",
    "RUST_LOG",
];

/// `coffer ARGS` with a clean environment and no standard input.
pub fn raw(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_coffer"));
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for v in ENV {
        c.env_remove(v);
    }
    c
}

/// `coffer --data-dir DIR --seal keyfile ARGS`.
pub fn command(dir: &Path, args: &[&str]) -> Command {
    let mut c = raw(&[]);
    c.arg("--data-dir")
        .arg(dir)
        .args(["--seal", "keyfile"])
        .args(args);
    c
}

/// Runs `coffer --data-dir DIR --seal keyfile ARGS`.
pub fn coffer(dir: &Path, args: &[&str]) -> Output {
    command(dir, args).output().unwrap()
}

/// Runs `coffer --data-dir DIR --seal keyfile ARGS` with `input` on stdin.
pub fn coffer_stdin(dir: &Path, args: &[&str], input: &str) -> Output {
    let mut child = command(dir, args).stdin(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The command may exit before reading (a refusal): a broken pipe is fine.
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts success; returns stdout.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "expected success, got {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Checks the error contract: exit status 2, nothing on stdout, exactly one
/// line on stderr that starts with `coffer: ` and contains `phrase`. Returns
/// that line, or what is wrong.
pub fn refusal(out: &Output, phrase: &str) -> Result<String, String> {
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let line = lines.first().copied().unwrap_or_default();
    let mut wrong = Vec::new();
    if out.status.code() != Some(2) {
        wrong.push(format!("exit status {:?}, not 2", out.status.code()));
    }
    if !stdout.is_empty() {
        wrong.push("stdout is not empty".to_string());
    }
    if lines.len() != 1 {
        wrong.push(format!("{} lines on stderr, not 1", lines.len()));
    }
    if !line.starts_with("coffer: ") {
        wrong.push("stderr does not start with \"coffer: \"".to_string());
    }
    if !line.contains(phrase) {
        wrong.push(format!("stderr does not contain {phrase:?}"));
    }
    if wrong.is_empty() {
        Ok(line.to_string())
    } else {
        Err(format!(
            "{}\n  stdout: {stdout:?}\n  stderr: {stderr:?}",
            wrong.join("; ")
        ))
    }
}

/// Asserts the error contract (see [`refusal`]); returns the line.
pub fn fails(out: &Output, phrase: &str) -> String {
    refusal(out, phrase).unwrap_or_else(|e| panic!("{e}"))
}

/// A temporary directory with password files and a data dir (`data`, absent
/// until setup). In arguments, `@NAME` stands for the file NAME beside it.
pub struct DataDir {
    tmp: tempfile::TempDir,
    /// The data dir.
    pub data: PathBuf,
}

impl DataDir {
    /// An empty one: nothing set up.
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        for (name, content) in [
            ("pw", format!("{PASSWORD}\n")),
            ("pw2", "purple-elephant-juggles-42-marbles\n".to_string()),
            ("weak", "aaaaaaaaaaaa\n".to_string()),
            ("short", "Tr0ub4dor\n".to_string()),
            ("empty", String::new()),
            ("newline", "\n".to_string()),
        ] {
            std::fs::write(tmp.path().join(name), content).unwrap();
        }
        let data = tmp.path().join("data");
        Self { tmp, data }
    }

    /// A claimed box: owner `owner` with the test password, cheap hashing.
    /// A copy of one `coffer setup` per test run: a password check costs a
    /// tenth of a second in a debug build.
    pub fn claimed() -> Self {
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        static TEMPLATE: OnceLock<Vec<(std::ffi::OsString, Vec<u8>)>> = OnceLock::new();
        let files = TEMPLATE.get_or_init(|| {
            let d = Self::new();
            d.ok(&[
                "setup",
                "--admin",
                "owner",
                "--password-file",
                "@pw",
                "--hash-cost",
                CHEAP,
            ]);
            std::fs::read_dir(&d.data)
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    (e.file_name(), std::fs::read(e.path()).unwrap())
                })
                .collect()
        });
        let d = Self::new();
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&d.data)
            .unwrap();
        for (name, bytes) in files {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(d.data.join(name))
                .unwrap()
                .write_all(bytes)
                .unwrap();
        }
        d
    }

    /// The path of a file beside the data dir.
    pub fn file(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn expand(&self, args: &[&str]) -> Vec<String> {
        args.iter()
            .map(|a| match a.strip_prefix('@') {
                Some(name) => self.file(name).display().to_string(),
                None => a.to_string(),
            })
            .collect()
    }

    /// Runs `coffer` on this data dir.
    pub fn run(&self, args: &[&str]) -> Output {
        let args = self.expand(args);
        coffer(
            &self.data,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    }

    /// Runs `coffer` on this data dir with `input` on stdin.
    pub fn run_stdin(&self, args: &[&str], input: &str) -> Output {
        let args = self.expand(args);
        coffer_stdin(
            &self.data,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            input,
        )
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "coffer {args:?} failed: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Runs a command whose stdout is JSON and parses it.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    /// The accounts' names, from `user list --json`.
    pub fn account_names(&self) -> BTreeSet<String> {
        self.json(&["user", "list", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// The core on this data dir, in this process (drop it before running
    /// `coffer` again: it holds the store).
    pub fn core(&self) -> Auth {
        let store = Store::open(&self.data, OpenMode::Existing, &coffer::auth::SCHEMA).unwrap();
        let options = SealOptions {
            choice: BackendChoice::KeyFile,
            ..SealOptions::default()
        };
        let (key, _) = coffer::seal::open(&self.data, &options, false).unwrap();
        Auth::new(
            store,
            key,
            Arc::new(SystemClock),
            Options::for_data_dir(&self.data),
        )
    }
}

/// Every table of schema version 1.
const TABLES: [&str; 10] = [
    "meta",
    "accounts",
    "groups",
    "passwords",
    "public_keys",
    "totp",
    "recovery_codes",
    "tokens",
    "login_failures",
    "settings",
];

/// Everything a command could have written.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    /// Paths under the data dir.
    files: Vec<String>,
    /// Every record of every table.
    tables: Vec<(&'static str, Vec<(String, serde_json::Value)>)>,
    /// The audit log, newest first.
    audit: Vec<Record>,
}

fn files_under(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let path = e.unwrap().path();
        out.push(path.strip_prefix(root).unwrap().display().to_string());
        if path.is_dir() {
            files_under(root, &path, out);
        }
    }
}

/// Reads the whole store of `dir` (without a running `coffer`).
pub fn snapshot(dir: &Path) -> Snapshot {
    let mut files = Vec::new();
    files_under(dir, dir, &mut files);
    files.sort();
    let (tables, audit) = match Store::open(dir, OpenMode::Existing, &coffer::auth::SCHEMA) {
        Err(StoreError::NotInitialized { .. }) => (Vec::new(), Vec::new()),
        Err(e) => panic!("cannot open the store in {}: {e}", dir.display()),
        Ok(store) => store
            .read(|r| {
                let tables = TABLES
                    .iter()
                    .map(|&name| Ok((name, r.all(Table::<serde_json::Value>::new(name))?)))
                    .collect::<Result<Vec<_>, StoreError>>()?;
                let audit = coffer::audit::query(r, &Filter::default())?;
                Ok::<_, StoreError>((tables, audit))
            })
            .unwrap(),
    };
    Snapshot {
        files,
        tables,
        audit,
    }
}

/// What differs between two snapshots, audit log aside.
fn changes(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    if before.files != after.files {
        out.push(format!("files {:?} -> {:?}", before.files, after.files));
    }
    if before.tables.len() != after.tables.len() {
        out.push("the store appeared or vanished".to_string());
    }
    for ((name, old), (_, new)) in before.tables.iter().zip(&after.tables) {
        if old != new {
            out.push(format!("table {name}: {old:?} -> {new:?}"));
        }
    }
    out
}

/// A command that must be refused.
pub struct Refused<'a> {
    args: Vec<&'a str>,
    stdin: Option<&'a str>,
    phrase: &'a str,
    /// Audit events the refusal itself records (a refused password or code
    /// is a security event); nothing else may change.
    records: Vec<Event>,
}

/// `coffer ARGS` must fail with a message containing `phrase`.
pub fn refused<'a>(args: &[&'a str], phrase: &'a str) -> Refused<'a> {
    Refused {
        args: args.to_vec(),
        stdin: None,
        phrase,
        records: Vec::new(),
    }
}

impl<'a> Refused<'a> {
    /// Feeds `input` on stdin.
    pub fn stdin(mut self, input: &'a str) -> Self {
        self.stdin = Some(input);
        self
    }

    /// The refusal records these audit events (oldest first).
    pub fn records(mut self, events: &[Event]) -> Self {
        self.records = events.to_vec();
        self
    }
}

/// Runs every case on `d` and checks the error contract and that the store is
/// unchanged but for the expected audit records. Reports every failing case.
pub fn check_refusals(d: &DataDir, cases: &[Refused<'_>]) {
    let mut failures = Vec::new();
    let mut before = snapshot(&d.data);
    for c in cases {
        let out = match c.stdin {
            Some(input) => d.run_stdin(&c.args, input),
            None => d.run(&c.args),
        };
        if let Err(e) = refusal(&out, c.phrase) {
            failures.push(format!("coffer {:?}: {e}", c.args));
        }
        let after = snapshot(&d.data);
        let changed = changes(&before, &after);
        if !changed.is_empty() {
            failures.push(format!(
                "coffer {:?} changed the store:\n  {}",
                c.args,
                changed.join("\n  ")
            ));
        }
        let added = after.audit.len().saturating_sub(before.audit.len());
        let mut new_events: Vec<Event> = after.audit[..added].iter().map(|r| r.event).collect();
        new_events.reverse();
        if new_events != c.records || after.audit[added..] != before.audit[..] {
            failures.push(format!(
                "coffer {:?}: audit log gained {new_events:?}, expected {:?}",
                c.args, c.records
            ));
        }
        before = after;
    }
    assert!(
        failures.is_empty(),
        "{} of {} refusals broke the contract:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[allow(clippy::disallowed_methods)] // the binary reads the wall clock, so the test must too
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Starts a TOTP enrolment for `name`; returns the seed.
fn enroll(d: &DataDir, name: &str) -> Vec<u8> {
    let out = d.ok(&["mfa", "enroll", name]);
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap_or_else(|| panic!("no secret in {out:?}"));
    assert!(out.contains("otpauth://totp/"), "{out}");
    data_encoding::BASE32_NOPAD
        .decode(secret.trim().as_bytes())
        .unwrap()
}

/// The code an authenticator app shows now.
fn code_now(seed: &[u8]) -> String {
    params()
        .code_at_step(seed, unix_now() / 30)
        .as_str()
        .to_owned()
}

/// A well-formed code that no step near now produces.
fn wrong_code(seed: &[u8]) -> String {
    let step = unix_now() / 30;
    let near: Vec<String> = (step - 3..=step + 3)
        .map(|s| params().code_at_step(seed, s).as_str().to_owned())
        .collect();
    (0..)
        .map(|n| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

// ---------------------------------------------------------------- refusals

#[test]
fn refused_before_setup_every_command_names_the_missing_store() {
    let d = DataDir::new();
    let store = "no Coffer store in";
    check_refusals(
        &d,
        &[
            refused(&["status"], "run `coffer setup`"),
            refused(&["user", "add", "carol", "--password-file", "@pw"], store),
            refused(&["user", "list"], store),
            refused(&["user", "show", "carol"], store),
            refused(&["user", "disable", "carol"], store),
            refused(&["user", "enable", "carol"], store),
            refused(&["user", "remove", "carol"], store),
            refused(
                &["user", "password", "carol", "--password-file", "@pw"],
                store,
            ),
            refused(&["user", "set", "carol", "--read-only", "true"], store),
            refused(&["user", "key", "add", "carol", KEY], store),
            refused(&["user", "key", "remove", "carol", "bob@laptop"], store),
            refused(&["user", "key", "list", "carol"], store),
            refused(&["group", "add", "staff"], store),
            refused(&["group", "set", "staff", "--enabled", "false"], store),
            refused(&["group", "list"], store),
            refused(&["group", "remove", "staff"], store),
            refused(&["mfa", "enroll", "carol"], store),
            refused(&["mfa", "confirm", "carol", "123456"], store),
            refused(&["mfa", "reset", "carol"], store),
            refused(&["mfa", "recovery-codes", "carol"], store),
            refused(&["token", "add", "carol", "--label", "ci"], store),
            refused(&["token", "list"], store),
            refused(&["token", "revoke", "0123456789ab"], store),
            refused(&["unlock", "carol"], store),
            refused(&["policy", "show"], store),
            refused(&["policy", "set", "mfa.allowed=false"], store),
            refused(&["audit"], store),
        ],
    );
    assert!(!d.data.exists(), "a refused command created the data dir");
}

#[test]
fn refused_setup_creates_nothing() {
    let d = DataDir::new();
    let setup = |pw: &'static str| -> Vec<&'static str> {
        vec![
            "setup",
            "--admin",
            "owner",
            "--password-file",
            pw,
            "--hash-cost",
            CHEAP,
        ]
    };
    check_refusals(
        &d,
        &[
            refused(
                &setup("@weak"),
                "password refused: the password is too easy to guess",
            ),
            refused(&setup("@short"), "the password is too short"),
            refused(&setup("@empty"), "is empty"),
            refused(&setup("@newline"), "is empty"),
            refused(&setup("@missing"), "cannot read the password from"),
            refused(&setup("-"), "the password in standard input is empty").stdin(""),
            refused(&setup("-"), "password refused").stdin("aaaaaaaaaaaa\n"),
            refused(
                &[
                    "setup",
                    "--admin",
                    "owner",
                    "--password-file",
                    "@pw",
                    "--hash-cost",
                    "m=1",
                ],
                "--hash-cost: m= must be",
            ),
            refused(
                &[
                    "setup",
                    "--admin",
                    "owner",
                    "--password-file",
                    "@pw",
                    "--hash-cost",
                    "lots",
                ],
                "--hash-cost",
            ),
            refused(
                &["setup", "--admin", "has space", "--password-file", "@pw"],
                "a user name may contain only letters",
            ),
            refused(
                &["setup", "--admin", "", "--password-file", "@pw"],
                "a user name has 1 to 64 characters",
            ),
            refused(&["setup", "--password-file", "@pw"], "required"),
            refused(
                &[
                    "setup",
                    "--admin",
                    "owner",
                    "--password-file",
                    "@pw",
                    "--bogus",
                ],
                "--bogus",
            ),
        ],
    );
    assert!(!d.data.exists(), "a refused setup created the data dir");

    // An unknown seal backend is refused before anything is created, too.
    let pw = d.file("pw");
    let out = raw(&[
        "--seal",
        "bogus",
        "setup",
        "--admin",
        "owner",
        "--password-file",
    ])
    .arg(&pw)
    .arg("--data-dir")
    .arg(&d.data)
    .output()
    .unwrap();
    fails(&out, "--seal: unknown seal backend \"bogus\"");
    assert!(!d.data.exists());

    // A data dir that cannot be created.
    std::fs::write(d.file("plain-file"), "").unwrap();
    let out = coffer(
        &d.file("plain-file").join("data"),
        &[
            "setup",
            "--admin",
            "owner",
            "--password-file",
            pw.to_str().unwrap(),
        ],
    );
    fails(&out, "plain-file");
}

#[test]
fn refused_second_setup_leaves_the_box_as_it_was() {
    let d = DataDir::claimed();
    check_refusals(
        &d,
        &[
            refused(
                &["setup", "--admin", "owner", "--password-file", "@pw"],
                "already claimed",
            ),
            refused(
                &[
                    "setup",
                    "--admin",
                    "intruder",
                    "--password-file",
                    "@pw2",
                    "--hash-cost",
                    CHEAP,
                ],
                "already claimed",
            ),
            refused(&["status", "--bogus"], "unexpected argument '--bogus'"),
            refused(&["frobnicate"], "unrecognized subcommand 'frobnicate'"),
            refused(&["--bogus", "status"], "unexpected argument '--bogus'"),
        ],
    );
    assert_eq!(d.account_names(), BTreeSet::from(["owner".to_string()]));
}

/// A claimed box with group `staff`, its member `alice` (with key [`KEY`],
/// and the test password when `password`) and `bob`.
fn accounts(password: bool) -> DataDir {
    let d = DataDir::claimed();
    d.ok(&["group", "add", "staff"]);
    let mut alice = vec!["user", "add", "alice", "--group", "staff", "--key", KEY];
    if password {
        alice.extend(["--password-file", "@pw"]);
    }
    d.ok(&alice);
    d.ok(&["user", "add", "bob"]);
    d
}

const MISSING: &str = "there is no account named \"ghost\"";

#[test]
fn refused_user_commands() {
    let d = accounts(true);
    let missing = MISSING;
    let last_owner = "this is the last enabled system_admin";
    check_refusals(
        &d,
        &[
            // user add
            refused(
                &["user", "add", "alice"],
                "account \"alice\" already exists",
            ),
            refused(
                &["user", "add", "carol", "--role", "root"],
                "--role: \"root\" is not a role",
            ),
            refused(
                &["user", "add", "carol", "--group", "nope"],
                "there is no group named \"nope\"",
            ),
            refused(
                &["user", "add", "carol", "--password-file", "@weak"],
                "password refused: the password is too easy to guess",
            ),
            refused(
                &["user", "add", "carol", "--password-file", "@short"],
                "the password is too short",
            ),
            refused(
                &["user", "add", "carol", "--password-file", "@empty"],
                "is empty",
            ),
            refused(
                &["user", "add", "carol", "--password-file", "@missing"],
                "cannot read the password from",
            ),
            refused(
                &["user", "add", "carol", "--password-file", "-"],
                "the password in standard input is empty",
            )
            .stdin(""),
            refused(
                &["user", "add", "carol", "--key", "ssh-ed25519 not-base64!"],
                "not an OpenSSH public key",
            ),
            refused(
                &["user", "add", "has space"],
                "a user name may contain only letters A-Z and a-z, digits, '.', '-', '_' and '@'",
            ),
            refused(
                &["user", "add", ".."],
                "a user name may not start with a dot",
            ),
            refused(
                &["user", "add", ".:"],
                "a user name may contain only letters",
            ),
            refused(
                &["user", "add", "ACME\\joe"],
                "a user name may contain only letters",
            ),
            refused(
                &["user", "add", "ALICE"],
                "account \"alice\" already exists",
            ),
            refused(
                &["user", "add", "carol", "--home", "/etc"],
                "must be relative to the files root",
            ),
            refused(
                &["user", "add", "carol", "--bogus"],
                "unexpected argument '--bogus'",
            ),
            // user list / show
            refused(
                &["user", "list", "--bogus"],
                "unexpected argument '--bogus'",
            ),
            refused(&["user", "show", "ghost"], missing),
            // user disable / enable / remove
            refused(&["user", "disable", "ghost"], missing),
            refused(&["user", "disable", "owner"], last_owner),
            refused(&["user", "enable", "ghost"], missing),
            refused(&["user", "remove", "ghost"], missing),
            refused(&["user", "remove", "owner"], last_owner),
            // user password
            refused(
                &["user", "password", "ghost", "--password-file", "@pw2"],
                missing,
            ),
            refused(
                &["user", "password", "alice", "--password-file", "@weak"],
                "password refused: the password is too easy to guess",
            )
            .records(&[Event::PasswordRejected]),
            refused(
                &["user", "password", "alice", "--password-file", "@pw"],
                "it is one of your last 5 passwords",
            )
            .records(&[Event::PasswordRejected]),
            refused(
                &["user", "password", "alice", "--password-file", "@missing"],
                "cannot read the password from",
            ),
            refused(
                &["user", "password", "alice", "--password-file", "-"],
                "is empty",
            )
            .stdin("\n"),
            // user set
            refused(&["user", "set", "alice"], "nothing to change"),
            refused(&["user", "set", "ghost", "--read-only", "true"], missing),
            refused(
                &["user", "set", "alice", "--ip-allow", "10.0.0.0/33"],
                "--ip-allow: \"10.0.0.0/33\" is not an address or network",
            ),
            refused(
                &["user", "set", "alice", "--ip-deny", "10.0.0.1,banana"],
                "--ip-deny: \"banana\" is not an address or network",
            ),
            refused(
                &["user", "set", "alice", "--role", "root"],
                "--role: \"root\" is not a role",
            ),
            refused(
                &["user", "set", "alice", "--group", "nope"],
                "there is no group named \"nope\"",
            ),
            refused(&["user", "set", "alice", "--home", "../x"], "home \"../x\""),
            refused(
                &["user", "set", "alice", "--read-only", "sometimes"],
                "--read-only: \"sometimes\" is not true or false",
            ),
            refused(&["user", "set", "alice", "--no-delete", "2"], "--no-delete"),
            refused(
                &["user", "set", "alice", "--may-change-password", "maybe"],
                "--may-change-password",
            ),
            refused(
                &["user", "set", "alice", "--mfa-exempt", "perhaps"],
                "--mfa-exempt",
            ),
            refused(
                &["user", "set", "alice", "--mfa-skip", "later"],
                "--mfa-skip",
            ),
            refused(&["user", "set", "owner", "--role", "user"], last_owner),
            refused(&["user", "frob"], "unrecognized subcommand 'frob'"),
        ],
    );
    assert_eq!(
        d.account_names(),
        BTreeSet::from(["alice", "bob", "owner"].map(String::from))
    );
}

#[test]
fn refused_key_and_group_commands() {
    let d = accounts(false);
    let missing = MISSING;
    check_refusals(
        &d,
        &[
            // user key add / remove / list
            refused(
                &["user", "key", "add", "alice", "garbage"],
                "not an OpenSSH public key",
            ),
            refused(
                &["user", "key", "add", "alice", "ssh-ed25519 AAAA"],
                "not an OpenSSH public key: the key data is truncated",
            ),
            refused(
                &["user", "key", "add", "alice", "-"],
                "not an OpenSSH public key",
            )
            .stdin("ssh-dss AAAAB3NzaC1kc3MAAACBAP\n"),
            refused(&["user", "key", "add", "alice", KEY], "already exists"),
            refused(&["user", "key", "add", "ghost", KEY], missing),
            refused(
                &["user", "key", "remove", "alice", "SHA256:nope"],
                "there is no key named \"SHA256:nope\"",
            ),
            refused(&["user", "key", "remove", "ghost", "bob@laptop"], missing),
            refused(&["user", "key", "list", "ghost"], missing),
            refused(&["user", "key", "frob"], "unrecognized subcommand 'frob'"),
            // group add / set / list / remove
            refused(&["group", "add", "staff"], "group \"staff\" already exists"),
            refused(&["group", "add", "two words"], "may not contain spaces"),
            refused(
                &["group", "add", "ops", "--enabled", "maybe"],
                "--enabled: \"maybe\" is not true or false",
            ),
            refused(
                &["group", "add", "ops", "--home-template", "/srv/${USER}"],
                "must be relative to the files root",
            ),
            refused(
                &["group", "add", "ops", "--ip-allow", "300.1.2.3"],
                "--ip-allow: \"300.1.2.3\" is not an address or network",
            ),
            refused(
                &["group", "set", "nope", "--enabled", "false"],
                "there is no group named \"nope\"",
            ),
            refused(
                &["group", "set", "staff", "--ip-deny", "banana"],
                "--ip-deny",
            ),
            refused(
                &["group", "set", "staff", "--read-only", "sometimes"],
                "--read-only",
            ),
            refused(
                &["group", "set", "staff", "--home-template", "a//b"],
                "home \"a//b\"",
            ),
            refused(
                &["group", "list", "--bogus"],
                "unexpected argument '--bogus'",
            ),
            refused(
                &["group", "remove", "nope"],
                "there is no group named \"nope\"",
            ),
            refused(&["group", "remove", "staff"], "still has 1 member(s)"),
            refused(&["group", "frob"], "unrecognized subcommand 'frob'"),
        ],
    );
    assert_eq!(d.json(&["group", "list", "--json"])[0]["name"], "staff");
}

#[test]
fn refused_credential_commands() {
    let d = DataDir::claimed();
    d.ok(&["user", "add", "alice"]);
    d.ok(&["user", "add", "bob"]);
    let seed = enroll(&d, "bob");
    let wrong = wrong_code(&seed);
    d.ok(&["token", "add", "alice", "--label", "ci"]);
    let missing = MISSING;
    check_refusals(
        &d,
        &[
            // mfa enroll / confirm / reset / recovery-codes
            refused(&["mfa", "enroll", "ghost"], missing),
            refused(
                &["mfa", "enroll", "alice", "--config", "nope"],
                "there is no TOTP configuration named \"nope\"",
            ),
            refused(
                &["mfa", "confirm", "alice", "123456"],
                "alice has no enrolment waiting for confirmation",
            ),
            refused(
                &["mfa", "confirm", "bob", "12ab56"],
                "the code must be exactly 6 digits",
            )
            .records(&[Event::EnrolmentFailed]),
            refused(&["mfa", "confirm", "bob", &wrong], "the code is not valid")
                .records(&[Event::EnrolmentFailed]),
            refused(&["mfa", "confirm", "ghost", "123456"], missing),
            refused(
                &["mfa", "reset", "alice"],
                "alice has no two-factor enrolment",
            ),
            refused(&["mfa", "reset", "ghost"], missing),
            refused(
                &["mfa", "recovery-codes", "bob"],
                "bob has no confirmed two-factor enrolment",
            ),
            refused(&["mfa", "recovery-codes", "ghost"], missing),
            refused(&["mfa", "frob", "bob"], "unrecognized subcommand 'frob'"),
            // token add / list / revoke
            refused(&["token", "add", "ghost", "--label", "ci"], missing),
            refused(
                &["token", "add", "alice", "--label", " "],
                "a token label has 1 to 64 printable characters",
            ),
            refused(
                &[
                    "token",
                    "add",
                    "alice",
                    "--label",
                    "ci",
                    "--expires",
                    "tomorrow",
                ],
                "--expires: \"tomorrow\" is neither a date",
            ),
            refused(
                &["token", "add", "alice", "--label", "ci", "--expires", "0d"],
                "--expires",
            ),
            refused(
                &[
                    "token",
                    "add",
                    "alice",
                    "--label",
                    "ci",
                    "--expires",
                    "2000-01-01",
                ],
                "the expiry date is in the past",
            ),
            refused(
                &[
                    "token",
                    "add",
                    "alice",
                    "--label",
                    "ci",
                    "--scope",
                    "ssh,gopher",
                ],
                "--scope: \"gopher\" is not a protocol",
            ),
            refused(&["token", "list", "ghost"], missing),
            refused(
                &["token", "list", "--bogus"],
                "unexpected argument '--bogus'",
            ),
            refused(
                &["token", "revoke", "0123456789ab"],
                "there is no token named \"0123456789ab\"",
            ),
            refused(
                &["token", "revoke", "cft_nonsense"],
                "there is no token named",
            ),
            refused(&["token", "frob"], "unrecognized subcommand 'frob'"),
            // unlock
            refused(&["unlock", "ghost"], missing),
            refused(&["unlock", "alice", "bob"], "unexpected argument 'bob'"),
        ],
    );
    let bob = d.json(&["user", "show", "bob", "--json"]);
    assert_eq!(bob["mfa"]["pending"], true, "{bob}");
    assert_eq!(bob["mfa"]["enrolled"], false, "{bob}");
}

#[test]
fn refused_policy_and_audit_commands() {
    let d = DataDir::claimed();
    let shown = d.ok(&["policy", "show"]);
    check_refusals(
        &d,
        &[
            refused(
                &["policy", "show", "--bogus"],
                "unexpected argument '--bogus'",
            ),
            refused(&["policy", "frob"], "unrecognized subcommand 'frob'"),
            refused(
                &["policy", "set", "bogus.key=1"],
                "bogus.key: unknown setting; `coffer policy show` lists the settings",
            ),
            refused(
                &["policy", "set", "lockout.max_failures=0"],
                "lockout.max_failures: \"0\" is not a whole number from 1 to 64",
            ),
            refused(
                &["policy", "set", "lockout.window=forever"],
                "lockout.window",
            ),
            refused(&["policy", "set", "lockout.window"], "expected KEY=VALUE"),
            refused(
                &["policy", "set", "mfa.required_for=admin,root"],
                "\"root\" is not one of",
            ),
            refused(&["policy", "set", "mfa.protocols=gopher"], "mfa.protocols"),
            refused(
                &["policy", "set", "mfa.allowed=perhaps"],
                "mfa.allowed: \"perhaps\" is not true or false",
            ),
            refused(
                &["policy", "set", "password.min_length=4"],
                "password.min_length",
            ),
            refused(
                &["policy", "set", "password.hash_cost=m=1"],
                "password.hash_cost: m= must be",
            ),
            refused(
                &["policy", "set", "totp.default=nope"],
                "there is no TOTP configuration named \"nope\"",
            ),
            refused(
                &["policy", "set", "totp.config.default=remove"],
                "this is the default configuration",
            ),
            refused(&["policy", "set", "audit.retain=5"], "audit.retain"),
            // All or none: the valid first setting is not applied either.
            refused(
                &["policy", "set", "password.min_length=12", "bogus=1"],
                "bogus: unknown setting",
            ),
            refused(
                &["audit", "--event", "nonsense"],
                "--event: \"nonsense\" is not an event id or name",
            ),
            refused(&["audit", "--event", "9999"], "--event: \"9999\""),
            refused(
                &["audit", "--since", "yesterday"],
                "--since: \"yesterday\" is not a date",
            ),
            refused(&["audit", "--since", "2026-02-30"], "--since"),
            refused(
                &["audit", "--limit", "many"],
                "invalid value 'many' for '--limit",
            ),
            refused(&["audit", "--json", "extra"], "unexpected argument 'extra'"),
        ],
    );
    assert_eq!(d.ok(&["policy", "show"]), shown);
}

/// One key given twice at creation is refused as `user key add` refuses it:
/// a stored duplicate would survive `user key remove` of "that" key.
#[test]
fn refused_user_add_with_a_repeated_key() {
    let d = DataDir::claimed();
    check_refusals(
        &d,
        &[refused(
            &["user", "add", "carol", "--key", KEY, "--key", KEY],
            "already exists",
        )],
    );
}

/// Commands need the data key as well as the store; without it they say so
/// in one line. `status` still prints its report (that is its job) and then
/// fails.
#[test]
fn refused_without_the_data_key() {
    let d = DataDir::claimed();
    std::fs::remove_file(d.data.join("data-key")).unwrap();
    check_refusals(
        &d,
        &[
            refused(&["user", "list"], "no data key in"),
            refused(&["user", "add", "carol"], "no data key in"),
            refused(&["policy", "set", "mfa.allowed=false"], "no data key in"),
        ],
    );
    let out = d.run(&["status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stdout).contains("sealing:   ERROR: no data key in"),
        "{}",
        text(&out.stdout)
    );
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("coffer: ") && stderr.contains("data key"),
        "{stderr}"
    );
}

/// A missing argument is one line, and that line says which argument.
#[test]
fn refused_missing_argument_names_it() {
    let d = DataDir::claimed();
    check_refusals(
        &d,
        &[
            refused(&["user", "add"], "<NAME>"),
            refused(&["user", "password", "alice"], "--password-file"),
            refused(&["token", "add", "alice"], "--label"),
            refused(&["policy", "set"], "KEY=VALUE"),
            refused(&["unlock"], "<NAME|--address <ADDR>>"),
        ],
    );
}

/// `coffer setup` demanding a TPM that is not there.
fn setup_with_an_unreachable_tpm(d: &DataDir) -> Output {
    raw(&["--seal", "tpm", "--tcti", "device:/nonexistent/tpm"])
        .arg("--data-dir")
        .arg(&d.data)
        .args(["setup", "--admin", "owner", "--password-file"])
        .arg(d.file("pw"))
        .output()
        .unwrap()
}

/// Setup that cannot seal the data key must leave no store behind.
#[test]
fn refused_setup_with_an_unreachable_tpm_creates_nothing() {
    let d = DataDir::new();
    let out = setup_with_an_unreachable_tpm(&d);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let left = snapshot(&d.data).files;
    assert!(
        left.is_empty(),
        "a refused setup left {left:?} in the data dir"
    );
}

/// ... and say why in one line: the TPM libraries' own logging must not
/// reach stderr.
#[test]
fn refused_setup_with_an_unreachable_tpm_says_so_in_one_line() {
    let d = DataDir::new();
    fails(&setup_with_an_unreachable_tpm(&d), "the TPM is unavailable");
}

/// A command group without its subcommand prints that group's help on
/// stderr and exits 2 (clap's convention, kept on purpose in `cli::main`).
#[test]
fn bare_command_group_prints_its_help_and_exits_2() {
    let d = DataDir::new();
    for (group, usage) in [
        (vec!["user"], "Usage: coffer user"),
        (vec!["user", "key"], "Usage: coffer user key"),
        (vec!["group"], "Usage: coffer group"),
        (vec!["mfa"], "Usage: coffer mfa"),
        (vec!["token"], "Usage: coffer token"),
        (vec!["policy"], "Usage: coffer policy"),
    ] {
        let out = d.run(&group);
        assert_eq!(out.status.code(), Some(2), "{group:?}");
        assert!(out.stdout.is_empty(), "{group:?}");
        assert!(text(&out.stderr).contains(usage), "{group:?}");
    }
    // With an option but no command at all: the one-line form.
    fails(&d.run(&[]), "requires a subcommand");
    assert!(!d.data.exists());
}

#[test]
fn help_and_version_succeed_on_stdout() {
    let out = raw(&["--version"]).output().unwrap();
    assert!(ok(&out).starts_with("coffer "));
    let help = ok(&raw(&["user", "add", "--help"]).output().unwrap());
    assert!(help.contains("--password-file"), "{help}");
}

// ---------------------------------------------------------------- happy paths

#[test]
fn setup_then_status_reports_the_key_file_plainly() {
    let d = DataDir::new();
    let out = d.run(&[
        "setup",
        "--admin",
        "owner",
        "--password-file",
        "@pw",
        "--hash-cost",
        CHEAP,
    ]);
    let stdout = ok(&out);
    assert!(
        stdout.contains("claimed by owner (system_admin, the owner) in "),
        "{stdout}"
    );
    assert!(stdout.contains("sealing: key file"), "{stdout}");
    let status = d.ok(&["status"]);
    assert!(status.contains("key file, NO TPM"), "{status}");
    assert!(status.contains("claimed:   yes, by owner"), "{status}");
    assert!(status.contains("accounts:  1 "), "{status}");
    let json = d.json(&["status", "--json"]);
    assert_eq!(json["sealing"]["backend"], "keyfile", "{json}");
    assert_eq!(json["claimed_by"], "owner", "{json}");
    assert_eq!(json["counts"]["accounts"], 1, "{json}");
    assert_eq!(json["store"]["schema_version"], 1, "{json}");
    let p = d.json(&["policy", "show", "--json"]);
    assert_eq!(
        p["password"]["hash_cost"]["m"], 64,
        "the cost given at setup"
    );
}

#[test]
fn setup_reads_the_password_from_standard_input() {
    let d = DataDir::new();
    let out = d.run_stdin(
        &[
            "setup",
            "--admin",
            "owner",
            "--password-file",
            "-",
            "--hash-cost",
            CHEAP,
        ],
        &format!("{PASSWORD}\n"),
    );
    ok(&out);
    let auth = d.core();
    let session = Login::new("owner", ip("192.0.2.1"), Protocol::Https).password(
        &auth,
        Method::Api,
        PASSWORD,
    );
    assert!(matches!(session, Step::Granted(_)), "{session:?}");
}

#[test]
fn user_add_list_and_show_as_json() {
    let d = DataDir::claimed();
    d.ok(&["group", "add", "staff", "--home-template", "staff/${USER}"]);
    let out = d.run_stdin(
        &[
            "user",
            "add",
            "alice",
            "--role",
            "admin",
            "--group",
            "staff",
            "--password-file",
            "-",
            "--key",
            KEY,
        ],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(ok(&out), "created user alice (admin)\n");
    assert_eq!(d.ok(&["user", "add", "bob"]), "created user bob (user)\n");

    let list = d.json(&["user", "list", "--json"]);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob", "owner"]);
    assert_eq!(list[2]["role"], "system_admin");

    let alice = d.json(&["user", "show", "alice", "--json"]);
    assert_eq!(alice["role"], "admin");
    assert_eq!(alice["group"], "staff");
    assert_eq!(alice["has_password"], true);
    assert_eq!(alice["public_keys"], serde_json::json!([KEY]));
    assert_eq!(alice["home_folder"], "staff/alice");
    assert_eq!(alice["mfa"]["enrolled"], false);
    let bob = d.json(&["user", "show", "bob", "--json"]);
    assert_eq!(bob["has_password"], false);

    let table = d.ok(&["user", "list"]);
    assert!(table.starts_with("NAME "), "{table}");
    assert_eq!(table.lines().count(), 4, "{table}");
    let shown = d.ok(&["user", "show", "alice"]);
    assert!(shown.contains("password:    set"), "{shown}");
    assert!(shown.contains(&format!("key:         {KEY}")), "{shown}");
}

#[test]
fn user_and_group_changes_round_trip() {
    let d = DataDir::claimed();
    d.ok(&["group", "add", "staff", "--read-only", "true"]);
    d.ok(&["user", "add", "alice", "--password-file", "@pw"]);

    let set = d.ok(&[
        "user",
        "set",
        "alice",
        "--group",
        "staff",
        "--ip-allow",
        "10.0.0.0/8,192.0.2.7",
        "--mfa-exempt",
        "true",
    ]);
    assert!(set.contains("group:       staff"), "{set}");
    assert!(
        set.contains("ip allow:    10.0.0.0/8,192.0.2.7/32"),
        "{set}"
    );
    assert!(set.contains("permissions: read-only"), "{set}");
    assert!(set.contains("exempt"), "{set}");

    assert_eq!(d.ok(&["user", "disable", "alice"]), "disabled alice\n");
    assert_eq!(
        d.json(&["user", "show", "alice", "--json"])["disabled"],
        true
    );
    assert_eq!(d.ok(&["user", "enable", "alice"]), "enabled alice\n");
    assert_eq!(
        d.ok(&["user", "password", "alice", "--password-file", "@pw2"]),
        "password changed for alice\n"
    );
    let out = d.run_stdin(&["user", "key", "add", "alice", "-"], &format!("{KEY}\n"));
    assert!(ok(&out).starts_with("added key SHA256:"));
    assert_eq!(d.ok(&["user", "key", "list", "alice"]), format!("{KEY}\n"));
    let removed = d.ok(&["user", "key", "remove", "alice", "bob@laptop"]);
    assert!(removed.starts_with("removed key SHA256:"), "{removed}");
    assert_eq!(d.ok(&["user", "key", "list", "alice"]), "");

    let groups = d.json(&["group", "list", "--json"]);
    assert_eq!(groups[0]["name"], "staff");
    assert_eq!(groups[0]["read_only"], true);
    assert_eq!(
        d.ok(&[
            "group",
            "set",
            "staff",
            "--read-only",
            "false",
            "--no-delete",
            "true"
        ]),
        "changed group staff\n"
    );
    assert!(d.ok(&["group", "list"]).contains("no-delete"));
    d.ok(&["user", "set", "alice", "--group", "none"]);
    assert_eq!(d.ok(&["group", "remove", "staff"]), "removed group staff\n");
    assert_eq!(d.ok(&["user", "remove", "alice"]), "removed alice\n");
    assert_eq!(d.account_names(), BTreeSet::from(["owner".to_string()]));
}

#[test]
fn mfa_enroll_confirm_prints_ten_recovery_codes() {
    let d = DataDir::claimed();
    d.ok(&["user", "add", "alice", "--password-file", "@pw"]);
    let seed = enroll(&d, "alice");
    assert_eq!(seed.len(), 20, "SHA1 seeds are 160 bits");

    let out = d.ok(&["mfa", "confirm", "alice", &code_now(&seed)]);
    let mut lines = out.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("TOTP confirmed for alice.")
    );
    let codes: Vec<&str> = lines.collect();
    assert_eq!(codes.len(), 10, "{out}");
    for c in &codes {
        let groups: Vec<&str> = c.split('-').collect();
        assert_eq!(groups.len(), 4, "{c}");
        assert!(
            groups.iter().all(|g| g.len() == 4
                && g.bytes()
                    .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))),
            "{c}"
        );
    }
    assert_eq!(codes.iter().collect::<BTreeSet<_>>().len(), 10);
    let alice = d.json(&["user", "show", "alice", "--json"]);
    assert_eq!(alice["mfa"]["enrolled"], true);
    assert_eq!(alice["mfa"]["recovery_codes_left"], 10);

    let fresh = d.ok(&["mfa", "recovery-codes", "alice"]);
    assert_eq!(fresh.lines().count(), 11, "{fresh}");
    assert!(
        !codes.iter().any(|c| fresh.contains(c)),
        "old codes reissued"
    );

    assert_eq!(
        d.ok(&["mfa", "reset", "alice"]),
        "two-factor authentication removed from alice\n"
    );
    let alice = d.json(&["user", "show", "alice", "--json"]);
    assert_eq!(alice["mfa"]["enrolled"], false);
}

#[test]
fn token_value_is_printed_once_and_never_listed() {
    let d = DataDir::claimed();
    d.ok(&["user", "add", "alice", "--password-file", "@pw"]);
    let out = d.run(&[
        "token",
        "add",
        "alice",
        "--label",
        "backup",
        "--expires",
        "30d",
        "--scope",
        "https",
    ]);
    let value = ok(&out).trim_end().to_string();
    assert_eq!(
        text(&out.stdout),
        format!("{value}\n"),
        "one line on stdout"
    );
    let rest = value.strip_prefix("cft_").expect("cft_ prefix");
    let (id, secret) = rest.split_at(12);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    let secret = secret.strip_prefix('_').expect("_ after the id");
    assert_eq!(secret.len(), 43, "{value}");
    assert!(
        secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert!(text(&out.stderr).contains("shown only once"));

    for args in [
        &["token", "list"][..],
        &["token", "list", "alice"],
        &["token", "list", "--json"],
        &["user", "show", "alice", "--json"],
        &["audit", "--json"],
    ] {
        let listed = d.ok(args);
        assert!(!listed.contains(secret), "{args:?} shows the token");
    }
    let listed = d.json(&["token", "list", "alice", "--json"]);
    assert_eq!(listed[0]["id"], id);
    assert_eq!(listed[0]["label"], "backup");
    assert_eq!(listed[0]["scope"], serde_json::json!(["https"]));
    assert_eq!(listed[0]["expired"], false);

    // The printed value is the credential.
    {
        let auth = d.core();
        let step = Login::new("alice", ip("192.0.2.1"), Protocol::Https).password(
            &auth,
            Method::Api,
            &value,
        );
        assert!(matches!(step, Step::Granted(_)), "{step:?}");
    }

    let revoked = d.ok(&["token", "revoke", id]);
    assert_eq!(revoked, format!("revoked token {id} (backup) of alice\n"));
    assert_eq!(d.json(&["token", "list", "--json"]), serde_json::json!([]));
}

#[test]
fn policy_set_then_show_round_trips() {
    let d = DataDir::claimed();
    let out = d.ok(&[
        "policy",
        "set",
        "lockout.max_failures=7",
        "mfa.required_for=admin,system_admin",
        "lockout.window=10m",
    ]);
    assert_eq!(
        out,
        "lockout.max_failures = 7\nmfa.required_for = system_admin,admin\nlockout.window = 600s\n"
    );
    let shown = d.ok(&["policy", "show"]);
    assert!(shown.contains("lockout.max_failures = 7\n"), "{shown}");
    assert!(shown.contains("lockout.window = 600s\n"), "{shown}");
    let json = d.json(&["policy", "show", "--json"]);
    assert_eq!(json["lockout"]["max_failures"], 7);
    assert_eq!(
        json["mfa"]["required_for"],
        serde_json::json!(["system_admin", "admin"])
    );

    // Every line `policy show` prints is a setting `policy set` accepts.
    let settings: Vec<String> = shown
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(" = ").unwrap();
            format!("{k}={v}")
        })
        .collect();
    let mut args = vec!["policy", "set"];
    args.extend(settings.iter().map(String::as_str));
    d.ok(&args);
    assert_eq!(d.ok(&["policy", "show"]), shown);

    let changes = d.json(&["audit", "--event", "policy_changed", "--json"]);
    assert_eq!(changes.as_array().unwrap().len(), 2);
}

#[test]
fn audit_json_lists_events_with_numeric_ids() {
    let d = DataDir::claimed();
    d.ok(&["user", "add", "alice"]);
    d.ok(&["unlock", "alice"]);
    let all = d.json(&["audit", "--json"]);
    let all = all.as_array().unwrap();
    let seen: Vec<(u64, &str)> = all
        .iter()
        .map(|r| (r["id"].as_u64().unwrap(), r["event"].as_str().unwrap()))
        .collect();
    // Newest first.
    assert_eq!(
        seen,
        [
            (1506, "account_unlocked"),
            (1500, "account_created"),
            (1700, "box_claimed"),
            (1500, "account_created"),
        ]
    );
    assert!(all.iter().all(|r| r["seq"].is_u64() && r["at"].is_u64()));
    assert!(all.iter().all(|r| r["protocol"] == "cli"));
    assert_eq!(all[1]["account"], "alice");

    let count = |args: &[&str]| {
        let mut a = vec!["audit", "--json"];
        a.extend_from_slice(args);
        d.json(&a).as_array().unwrap().len()
    };
    assert_eq!(count(&["--event", "1500"]), 2);
    assert_eq!(count(&["--event", "account_created", "--user", "alice"]), 1);
    assert_eq!(count(&["--event", "1700", "--event", "1506"]), 2);
    assert_eq!(count(&["--limit", "1"]), 1);
    assert_eq!(count(&["--since", "2000-01-01"]), 4);
    assert_eq!(count(&["--since", "9999-12-31T00:00:00Z"]), 0);

    let plain = d.ok(&["audit", "--user", "alice"]);
    assert!(
        plain.contains(" 1500 account_created  account=alice"),
        "{plain}"
    );
}

#[test]
fn unlock_clears_lockouts_and_says_how_many() {
    let d = DataDir::claimed();
    d.ok(&["user", "add", "alice", "--password-file", "@pw"]);
    assert_eq!(
        d.ok(&["unlock", "alice"]),
        "unlocked alice (0 lock record(s) cleared)\n"
    );
    {
        let auth = d.core();
        for _ in 0..5 {
            let step = Login::new("alice", ip("192.0.2.9"), Protocol::Ssh).password(
                &auth,
                Method::Password,
                "wrong-password",
            );
            assert!(matches!(step, Step::Denied(_)), "{step:?}");
        }
    }
    let shown = d.ok(&["user", "show", "alice"]);
    assert!(
        shown.contains("locked:      from 192.0.2.9 until"),
        "{shown}"
    );
    assert!(d.ok(&["user", "list"]).contains(" locked "));
    let out = d.ok(&["unlock", "alice"]);
    assert!(out.starts_with("unlocked alice ("), "{out}");
    assert!(!out.contains("(0 lock"), "{out}");
    assert_eq!(
        d.json(&["user", "show", "alice", "--json"])["locked"],
        serde_json::json!([])
    );
    let auth = d.core();
    let step = Login::new("alice", ip("192.0.2.9"), Protocol::Ssh).password(
        &auth,
        Method::Password,
        PASSWORD,
    );
    assert!(matches!(step, Step::Granted(_)), "{step:?}");
}

#[test]
fn unlock_address_clears_an_address_lock_that_unlock_name_leaves() {
    let d = DataDir::claimed();
    d.ok(&["user", "add", "alice", "--password-file", "@pw"]);
    let sprayer = "2001:db8:7:7::5";
    {
        let auth = d.core();
        for i in 0..20 {
            let step = Login::new(&format!("guess{i}"), ip(sprayer), Protocol::Ssh).password(
                &auth,
                Method::Password,
                "wrong-password",
            );
            assert!(matches!(step, Step::Denied(_)), "{step:?}");
        }
    }
    let locked = |d: &DataDir| {
        let auth = d.core();
        let step = Login::new("alice", ip("2001:db8:7:7::6"), Protocol::Ssh).password(
            &auth,
            Method::Password,
            PASSWORD,
        );
        matches!(step, Step::Locked(_))
    };
    assert!(locked(&d));
    let status = d.ok(&["status"]);
    assert!(
        status.contains("locked:    address 2001:db8:7:7::/64 for all accounts until"),
        "{status}"
    );
    let shown = d.ok(&["user", "show", "alice"]);
    assert!(
        shown.contains("locked:      address 2001:db8:7:7::/64 (all accounts) until"),
        "{shown}"
    );
    assert_eq!(
        d.json(&["status", "--json"])["locks"]["addresses"][0][0],
        "2001:db8:7:7::/64"
    );
    // Unlocking the account leaves the address locked.
    d.ok(&["unlock", "alice"]);
    assert!(locked(&d));
    check_refusals(
        &d,
        &[
            refused(&["unlock", "--address", "nowhere"], "not an IP address"),
            refused(&["unlock", "--address", "2001:db8::/48"], "IPv6 /64"),
            refused(
                &["unlock", "alice", "--address", "192.0.2.1"],
                "cannot be used with",
            ),
        ],
    );
    let out = d.ok(&["unlock", "--address", "2001:db8:7:7::/64"]);
    assert!(
        out.starts_with("unlocked address 2001:db8:7:7::/64 ("),
        "{out}"
    );
    assert!(!locked(&d));
    assert!(!d.ok(&["status"]).contains("locked:"));
    let audit = d.ok(&["audit", "--event", "address_unlocked"]);
    assert!(audit.contains("2001:db8:7:7::/64"), "{audit}");
}

/// Output that cannot be written is reported, never a panic: a full disk
/// behind a redirect is an error; a reader that stopped early (`| head -1`)
/// is not.
#[test]
fn unwritable_output_is_an_error_and_a_closed_pipe_is_quiet() {
    let d = DataDir::claimed();
    let full = command(&d.data, &["user", "list"])
        .stdout(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
        .output()
        .unwrap();
    assert_eq!(full.status.code(), Some(2));
    assert_eq!(
        text(&full.stderr).trim_end(),
        "coffer: cannot write the output: No space left on device (os error 28)"
    );
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let closed = command(&d.data, &["user", "list"])
        .stdout(writer)
        .output()
        .unwrap();
    assert_eq!(closed.status.code(), Some(0), "{}", text(&closed.stderr));
    assert!(closed.stderr.is_empty(), "{}", text(&closed.stderr));
}
