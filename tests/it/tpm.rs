//! The TPM backend through the command line, on real swtpm instances, with
//! the `coffer-tpm` helper doing the TPM work in a process of its own.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::swtpm::Swtpm;

use crate::harness::{CHEAP, PASSWORD};

fn coffer(dir: &std::path::Path, tcti: &str, args: &[&str]) -> Output {
    coffer_at(env!("CARGO_BIN_EXE_coffer").as_ref(), dir, tcti, args)
}

/// `binary` (coffer, or a copy of it elsewhere) on the data dir `dir`.
fn coffer_at(binary: &std::path::Path, dir: &std::path::Path, tcti: &str, args: &[&str]) -> Output {
    Command::new(binary)
        .arg("--data-dir")
        .arg(dir)
        .args(["--tcti", tcti])
        .args(args)
        .env_remove("TSS2_LOG")
        .output()
        .unwrap()
}

/// `coffer --seal tpm setup` on a new data dir.
fn setup(binary: &std::path::Path, data: &std::path::Path, tcti: &str) -> Output {
    let pw = data.with_file_name("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let pw = pw.to_str().unwrap();
    let args = [
        "--seal",
        "tpm",
        "setup",
        "--admin",
        "owner",
        "--password-file",
        pw,
        "--hash-cost",
        CHEAP,
    ];
    coffer_at(binary, data, tcti, &args)
}

/// A box claimed on a new swtpm: the TPM, the folder and the data dir.
fn claimed_on_tpm() -> (Swtpm, tempfile::TempDir, std::path::PathBuf) {
    let tpm = Swtpm::start().expect("swtpm");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = setup(env!("CARGO_BIN_EXE_coffer").as_ref(), &data, &tpm.tcti());
    assert!(out.status.success(), "{}", text(&out.stderr));
    (tpm, dir, data)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn setup_seals_with_the_tpm_and_another_tpm_cannot_unseal() {
    let tpm = Swtpm::start().expect("swtpm");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let out = setup(env!("CARGO_BIN_EXE_coffer").as_ref(), &data, &tpm.tcti());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("TPM 2.0"),
        "{}",
        text(&out.stdout)
    );
    assert!(data.join("data-key.tpm").exists());
    assert!(!data.join("data-key").exists());

    let out = coffer(&data, &tpm.tcti(), &["status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("sealing:   TPM 2.0"),
        "{}",
        text(&out.stdout)
    );

    // Seeds are encrypted under the unsealed key: enrol and check the secret comes back.
    let out = coffer(&data, &tpm.tcti(), &["mfa", "enroll", "owner"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The same data dir on another TPM: one clear line, exit 2.
    let other = Swtpm::start().expect("second swtpm");
    let out = coffer(&data, &other.tcti(), &["status"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err}");
    assert!(err.contains("does not belong to this TPM"), "{err}");
    assert!(
        text(&out.stdout).contains("sealing:   ERROR"),
        "{}",
        text(&out.stdout)
    );
    let out = coffer(&data, &other.tcti(), &["user", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("does not belong to this TPM"));

    // Back on its own TPM, everything is there.
    let out = coffer(&data, &tpm.tcti(), &["user", "show", "owner"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("enrolment pending"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_seed_sealed_under_the_tpm_key_follows_a_rename() {
    use coffer::auth::totp::{Params, TotpConfig};
    use coffer::clock::{Clock as _, SystemClock};
    let (tpm, _dir, data) = claimed_on_tpm();
    let run = |args: &[&str]| {
        let out = coffer(&data, &tpm.tcti(), args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    // An enrolment waiting for its code, its seed sealed under "owner".
    let enrolled = run(&["mfa", "enroll", "owner"]);
    let secret = enrolled
        .lines()
        .find_map(|l| l.strip_prefix("secret:"))
        .unwrap()
        .trim()
        .replace(' ', "");
    run(&["user", "rename", "owner", "boss"]);
    // The code confirms under the new name: the seed was opened with the
    // TPM-unsealed key under the old name and sealed again under the new.
    let seed = data_encoding::BASE32_NOPAD
        .decode(secret.as_bytes())
        .unwrap();
    let params = Params::from(&TotpConfig::default());
    let code = params.code_at_step(&seed, params.step(SystemClock.now()));
    run(&["mfa", "confirm", "boss", &code]);
    let status = run(&["status"]);
    assert!(status.contains("claimed:   yes, by boss"), "{status}");
}

#[test]
fn the_serving_process_never_loads_the_tpm_libraries() {
    let (tpm, dir, _data) = claimed_on_tpm();

    let config = crate::system::config(dir.path(), "");
    let tcti = tpm.tcti();
    let server = crate::system::serve_sealed(
        dir.path(),
        &config,
        &["--tcti", &tcti, "--seal", "tpm"],
        &[],
    );
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", server.child.id())).unwrap();
    let log = server.log();
    assert!(log.contains("data key sealed by the TPM"), "{log}");
    // The key came from the TPM, through the helper: not one page of tpm2-tss
    // or OpenSSL in the process that serves.
    assert!(maps.contains("coffer"), "{maps}");
    for library in ["libtss2", "libcrypto"] {
        assert!(!maps.contains(library), "{library} is mapped:\n{maps}");
    }
}

#[test]
fn without_its_helper_the_tpm_is_unavailable_and_nothing_is_written() {
    let tpm = Swtpm::start().expect("swtpm");
    let dir = tempfile::tempdir().unwrap();
    // A copy of coffer with no coffer-tpm beside it.
    let lonely = dir.path().join("coffer");
    std::fs::copy(env!("CARGO_BIN_EXE_coffer"), &lonely).unwrap();
    let data = dir.path().join("data");
    let out = setup(&lonely, &data, &tpm.tcti());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("the TPM helper"), "{err}");
    assert!(err.contains("coffer-tpm is missing"), "{err}");
    assert!(!data.join("data-key.tpm").exists());
    assert!(!data.join("data-key").exists());
}

#[test]
fn the_helper_refuses_garbage_with_a_reason() {
    for garbage in [&b""[..], b"GET / HTTP/1.1\r\n\r\n", &[0xff; 70_000][..]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_coffer-tpm"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // The helper stops reading at its limit; the rest may not be taken.
        let _ = stdin.write_all(garbage);
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        // Status 6 (a refused request), then the reason.
        assert_eq!(out.stdout.first(), Some(&6), "{:?}", out.stdout);
        let reason = text(out.stdout.get(3..).unwrap_or_default());
        assert!(
            reason.contains("request") || reason.contains("too long"),
            "{reason}"
        );
    }
}
