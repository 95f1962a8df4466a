//! A configuration the commands cannot use is refused before anything is
//! created: one line on stderr, exit status 2, naming the key (and the
//! file, when the file itself is wrong), with each cause said once.

use std::path::Path;
use std::process::Output;

use crate::cli::{raw, refusal};

fn serve(dir: &Path, config: &Path) -> Output {
    crate::system::serve_on_loopback(dir, config, &["--seal", "keyfile"])
        .output()
        .unwrap()
}

fn nothing_was_created(dir: &Path) {
    assert!(
        !dir.join("data").exists(),
        "a refused start creates nothing"
    );
}

/// Asserts a refusal whose one line is exactly `want`.
fn refused_with(out: &Output, want: &str) {
    let line = refusal(out, want).unwrap();
    assert_eq!(line, want);
}

#[test]
fn a_bad_value_is_refused_in_one_line_naming_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("coffer.toml");
    for (text, want) in [
        (
            "[sftp]\nmax_connections = 0\n",
            "coffer: sftp.max_connections = 0: expected 1 to 100000",
        ),
        (
            "[https]\nidle_timeout = \"1s\"\n",
            "coffer: https.idle_timeout = \"1s\": expected a duration from 60s to 604800s, e.g. 30s or 5m",
        ),
        (
            "[console]\nidle_timeout = \"1s\"\n",
            "coffer: console.idle_timeout = \"1s\": expected 30s to 24h, e.g. 10m",
        ),
        (
            "[service]\nuser = \"a:b\"\n",
            "coffer: service.user = \"a:b\" is not an account or group name",
        ),
    ] {
        std::fs::write(&cfg, format!("version = 1\n{text}")).unwrap();
        refused_with(&serve(dir.path(), &cfg), want);
    }
    std::fs::write(&cfg, "version = 1\nlog_level = \"coffer=loud\"\n").unwrap();
    let line = refusal(&serve(dir.path(), &cfg), "log_level = \"coffer=loud\"").unwrap();
    assert!(line.ends_with("; use e.g. info or coffer=debug"), "{line}");
    nothing_was_created(dir.path());
}

#[test]
fn a_file_that_cannot_be_used_is_named_and_its_cause_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("coffer.toml");
    let shown = cfg.display();
    refused_with(
        &serve(dir.path(), &cfg),
        &format!(
            "coffer: cannot read the configuration {shown}: No such file or directory (os error 2)"
        ),
    );
    std::fs::write(&cfg, "version = 2\n").unwrap();
    refused_with(
        &serve(dir.path(), &cfg),
        &format!("coffer: in {shown}: version = 2: this coffer reads configuration version 1"),
    );
    // The console reads the same file the same way.
    let out = raw(&["console", "--config"]).arg(&cfg).output().unwrap();
    refused_with(
        &out,
        &format!("coffer: in {shown}: version = 2: this coffer reads configuration version 1"),
    );
    nothing_was_created(dir.path());
}

#[test]
fn a_stdio_server_names_the_folder_it_cannot_serve() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let root = file.join("home");
    let out = raw(&["sftp-server", "--root"]).arg(&root).output().unwrap();
    refused_with(
        &out,
        &format!(
            "coffer: cannot open {}: Not a directory (os error 20)",
            root.display()
        ),
    );
}
