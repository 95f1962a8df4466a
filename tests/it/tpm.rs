//! The TPM backend through the command line, on real swtpm instances.

use std::process::{Command, Output};

use coffer::seal::swtpm_process::Swtpm;

fn coffer(dir: &std::path::Path, tcti: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coffer"))
        .arg("--data-dir")
        .arg(dir)
        .args(["--tcti", tcti])
        .args(args)
        .env_remove("TSS2_LOG")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn setup_seals_with_the_tpm_and_another_tpm_cannot_unseal() {
    let tpm = Swtpm::start().expect("swtpm");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "correct-horse-battery-staple-9\n").unwrap();
    let pw = pw.to_str().unwrap();

    let out = coffer(
        &data,
        &tpm.tcti(),
        &[
            "--seal",
            "tpm",
            "setup",
            "--admin",
            "owner",
            "--password-file",
            pw,
            "--hash-cost",
            "m=64,t=1,p=1",
        ],
    );
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
