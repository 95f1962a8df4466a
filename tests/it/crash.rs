//! `kill -9` while the CLI writes: every account it reported as created
//! survives, the store opens afterwards, and the kernel releases the writer
//! lock. A second writer is told who holds the store.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use coffer::store::{OpenMode, Store};

use crate::cli::{DataDir, fails};

/// Creates accounts `PREFIX0`, `PREFIX1`, ... one `coffer user add` at a time
/// and appends each name to the log only after its command exited 0. Stops
/// (status 3) on the first failure, with the error in `$LOG.err`.
const LOOP: &str = r#"
coffer=$1 data=$2 log=$3 prefix=$4 password=$5
i=0
while :; do
    if [ -n "$password" ]; then
        "$coffer" --data-dir "$data" --seal keyfile user add "$prefix$i" --password-file "$password" >/dev/null 2>>"$log.err" || exit 3
    else
        "$coffer" --data-dir "$data" --seal keyfile user add "$prefix$i" >/dev/null 2>>"$log.err" || exit 3
    fi
    echo "$prefix$i" >>"$log"
    i=$((i + 1))
done
"#;

fn start_loop(d: &DataDir, log: &Path, prefix: &str, password: Option<&Path>) -> Child {
    use std::os::unix::process::CommandExt as _;
    let mut sh = Command::new("sh");
    for v in crate::cli::ENV {
        sh.env_remove(v);
    }
    sh.arg("-c")
        .arg(LOOP)
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_coffer"))
        .arg(&d.data)
        .arg(log)
        .arg(prefix)
        .arg(password.map(|p| p.as_os_str()).unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so one signal reaches the shell and its coffer.
        .process_group(0)
        .spawn()
        .unwrap()
}

fn logged(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[allow(clippy::disallowed_methods)] // a test waiting for real processes
fn pause(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// SIGKILL to the whole process group led by `child` (nix is built without
/// its `signal` feature, so through kill(1)).
fn kill_group(child: &mut Child) {
    let status = Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{}", child.id())])
        .status()
        .unwrap();
    assert!(status.success(), "kill failed");
    child.wait().unwrap();
}

#[test]
fn kill_9_while_creating_accounts_loses_none_that_were_reported() {
    let d = DataDir::claimed();
    let mut expected: BTreeSet<String> = BTreeSet::from(["owner".to_string()]);
    // (prefix, password or not, accounts to wait for, extra delay in ms):
    // different counts and delays put the kill at different points of a
    // command: start-up, password check and hashing, the commit's fsync.
    let rounds = [("p", true, 6, 0), ("a", false, 20, 7), ("b", false, 25, 19)];
    for (prefix, with_password, count, delay) in rounds {
        let log = d.file(&format!("{prefix}.log"));
        let password = with_password.then(|| d.file("pw"));
        let mut child = start_loop(&d, &log, prefix, password.as_deref());
        let mut waited = 0;
        while logged(&log).len() < count {
            if let Some(status) = child.try_wait().unwrap() {
                let err = std::fs::read_to_string(log.with_extension("log.err"));
                panic!("the loop stopped ({status}): {err:?}");
            }
            assert!(
                waited < 60_000,
                "only {} accounts in 60 s",
                logged(&log).len()
            );
            pause(5);
            waited += 5;
        }
        pause(delay);
        kill_group(&mut child);

        let reported = logged(&log);
        assert!(reported.len() >= count);
        let names = d.account_names();
        let lost: Vec<&String> = reported.iter().filter(|n| !names.contains(*n)).collect();
        assert!(lost.is_empty(), "round {prefix}: lost {lost:?}");
        expected.extend(reported.iter().cloned());
        // At most the one account whose command was killed between its
        // commit and the log line, and only the next in sequence.
        let extra: Vec<&String> = names.difference(&expected).collect();
        let next = format!("{prefix}{}", reported.len());
        assert!(
            extra.is_empty() || extra == [&next],
            "round {prefix}: unexpected accounts {extra:?}"
        );
        expected.extend(extra.into_iter().cloned().collect::<Vec<_>>());
    }
    // The store is whole: every command still works on it.
    crate::cli::ok(&d.run(&["status"]));
    d.ok(&["user", "add", "after-the-crash"]);
    assert_eq!(d.account_names().len(), expected.len() + 1);
}

#[test]
fn a_second_writer_is_told_who_holds_the_store() {
    let d = DataDir::claimed();
    let held = Store::open(&d.data, OpenMode::Existing, &coffer::auth::SCHEMA).unwrap();
    #[allow(clippy::disallowed_methods)] // measures how long a real process waits
    let started = std::time::Instant::now();
    let out = d.run(&["user", "list"]);
    let waited = started.elapsed();
    let line = fails(
        &out,
        &format!("is in use by process {}", std::process::id()),
    );
    assert!(line.contains("stop it or wait for it to finish"), "{line}");
    assert!(
        waited >= Duration::from_secs(2),
        "gave up after {waited:?}, before retrying for a while"
    );
    drop(held);
    assert!(d.account_names().contains("owner"));
}
