//! Tests against a real software TPM. They never skip: without `swtpm` they fail.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tss_esapi::handles::PcrHandle;
use tss_esapi::structures::DigestValues;

use super::*;
use crate::seal::swtpm_process::Swtpm;
use crate::seal::{
    Backend, BackendChoice, KEY_FILE_NAME, Platform, SealOptions, SealStatus, TPM_BLOB_NAME, open,
    open_on,
};

fn swtpm() -> Swtpm {
    Swtpm::start().unwrap_or_else(|e| panic!("{e}"))
}

fn tpm_options(tpm: &Swtpm, bind_pcr7: bool) -> SealOptions {
    SealOptions {
        choice: BackendChoice::Tpm,
        tcti: Some(tpm.tcti()),
        bind_pcr7,
    }
}

fn open_tpm_dir(
    dir: &Path,
    tpm: &Swtpm,
    bind_pcr7: bool,
    create: bool,
) -> Result<(DataKey, SealStatus), SealError> {
    open(dir, &tpm_options(tpm, bind_pcr7), create)
}

fn extend_pcr7(tpm: &Swtpm) {
    let mut ctx = connect(&tpm.tcti()).unwrap();
    let mut digests = DigestValues::new();
    digests.set(
        HashingAlgorithm::Sha256,
        Digest::try_from(vec![0x5a; 32]).unwrap(),
    );
    ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
        ctx.pcr_extend(PcrHandle::Pcr7, digests)
    })
    .unwrap();
}

#[test]
fn tpm_round_trip() {
    let tpm = swtpm();
    let dir = tempfile::tempdir().unwrap();
    let (key, status) = open_tpm_dir(dir.path(), &tpm, false, true).unwrap();
    assert_eq!(status.backend, Backend::Tpm);
    assert_eq!(status.detail, format!("{}; PCR 7 bound: no", tpm.tcti()));
    assert!(status.hwrng_used.is_some());

    let path = dir.path().join(TPM_BLOB_NAME);
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!dir.path().join(KEY_FILE_NAME).exists());
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    let bytes = fs::read(&path).unwrap();
    assert!(bytes.starts_with(MAGIC));
    // The key is not in the file in clear.
    assert!(!bytes.windows(32).any(|w| w == key.expose().as_slice()));

    let blob = key.encrypt(b"ctx", b"seed").unwrap();
    for choice in [BackendChoice::Auto, BackendChoice::Tpm] {
        let options = SealOptions {
            choice,
            ..tpm_options(&tpm, false)
        };
        let (again, status) = open(dir.path(), &options, false).unwrap();
        assert_eq!(again.expose(), key.expose());
        assert_eq!(status.hwrng_used, None);
        assert_eq!(again.decrypt(b"ctx", &blob).unwrap().as_slice(), b"seed");
    }
}

#[test]
fn auto_picks_the_tpm_when_one_is_configured() {
    let tpm = swtpm();
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform {
        env_tcti: Some(tpm.tcti()),
        tpm_device: false,
    };
    let (key, status) = open_on(dir.path(), &SealOptions::default(), true, &platform).unwrap();
    assert_eq!(status.backend, Backend::Tpm);
    assert!(dir.path().join(TPM_BLOB_NAME).is_file());
    let (again, _) = open_on(dir.path(), &SealOptions::default(), false, &platform).unwrap();
    assert_eq!(again.expose(), key.expose());
}

#[test]
fn auto_with_a_configured_tpm_that_fails_does_not_fall_back() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1.
    let options = SealOptions {
        tcti: Some("swtpm:host=127.0.0.1,port=1".into()),
        ..SealOptions::default()
    };
    let err = open(dir.path(), &options, true).unwrap_err();
    assert!(matches!(err, SealError::TpmUnavailable(_)), "{err:?}");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_sealed_key_without_a_tpm_is_unavailable_not_a_fallback() {
    let tpm = swtpm();
    let dir = tempfile::tempdir().unwrap();
    open_tpm_dir(dir.path(), &tpm, false, true).unwrap();
    let nothing = Platform {
        env_tcti: None,
        tpm_device: false,
    };
    for choice in [BackendChoice::Auto, BackendChoice::Tpm] {
        let options = SealOptions {
            choice,
            ..SealOptions::default()
        };
        let err = open_on(dir.path(), &options, true, &nothing).unwrap_err();
        assert!(matches!(err, SealError::TpmUnavailable(_)), "{err:?}");
        assert!(err.to_string().contains("no TPM found"), "{err}");
    }
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_tcti_that_is_not_one_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let options = SealOptions {
        choice: BackendChoice::Tpm,
        tcti: Some("carrier-pigeon:coop=3".into()),
        bind_pcr7: false,
    };
    let err = open(dir.path(), &options, true).unwrap_err();
    assert!(matches!(err, SealError::TpmUnavailable(_)), "{err:?}");
    assert!(err.to_string().contains("carrier-pigeon"), "{err}");
}

#[test]
fn another_tpm_refuses_to_unseal() {
    let first = swtpm();
    let second = swtpm();
    let dir = tempfile::tempdir().unwrap();
    open_tpm_dir(dir.path(), &first, false, true).unwrap();

    let err = open_tpm_dir(dir.path(), &second, false, true).unwrap_err();
    assert!(matches!(err, SealError::WrongTpm), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the sealed data key does not belong to this TPM (was the data disk moved to another box, or the TPM cleared?)"
    );
    // Still sealed, still only the one file: no fallback, no new key.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    // The failure path flushed its handles: the second TPM keeps working after
    // many refusals.
    for _ in 0..20 {
        assert!(matches!(
            open_tpm_dir(dir.path(), &second, false, false),
            Err(SealError::WrongTpm)
        ));
    }
    let other = tempfile::tempdir().unwrap();
    open_tpm_dir(other.path(), &second, false, true).unwrap();
    // And the first TPM still opens its own key.
    open_tpm_dir(dir.path(), &first, false, false).unwrap();
}

#[test]
fn twenty_opens_in_a_row_on_one_swtpm() {
    let tpm = swtpm();
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = open_tpm_dir(dir.path(), &tpm, false, true).unwrap();
    for _ in 0..20 {
        let (again, _) = open_tpm_dir(dir.path(), &tpm, false, false).unwrap();
        assert_eq!(again.expose(), key.expose());
    }
}

#[test]
fn the_key_survives_a_tpm_restart() {
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = {
        let tpm = Swtpm::start_in(state.path()).unwrap_or_else(|e| panic!("{e}"));
        open_tpm_dir(dir.path(), &tpm, true, true).unwrap().0
    };
    // Same state, fresh boot: PCR 7 is back at its reset value.
    let tpm = Swtpm::start_in(state.path()).unwrap_or_else(|e| panic!("{e}"));
    let (again, status) = open_tpm_dir(dir.path(), &tpm, true, false).unwrap();
    assert_eq!(again.expose(), key.expose());
    assert!(status.detail.ends_with("PCR 7 bound: yes"));
}

#[test]
fn pcr7_binding_round_trip_then_policy_mismatch() {
    let tpm = swtpm();
    let dir = tempfile::tempdir().unwrap();
    let (key, status) = open_tpm_dir(dir.path(), &tpm, true, true).unwrap();
    assert_eq!(status.detail, format!("{}; PCR 7 bound: yes", tpm.tcti()));
    for _ in 0..3 {
        let (again, status) = open_tpm_dir(dir.path(), &tpm, true, false).unwrap();
        assert_eq!(again.expose(), key.expose());
        assert!(status.detail.ends_with("PCR 7 bound: yes"));
    }
    // The binding is the sealed object's own: opening without asking for it
    // still needs PCR 7 and still reports it.
    let (_, status) = open_tpm_dir(dir.path(), &tpm, false, false).unwrap();
    assert!(status.detail.ends_with("PCR 7 bound: yes"));

    extend_pcr7(&tpm);
    let err = open_tpm_dir(dir.path(), &tpm, true, false).unwrap_err();
    assert!(matches!(err, SealError::PolicyMismatch), "{err:?}");
    assert!(err.to_string().contains("PCR 7"), "{err}");
    // The policy failures flushed their sessions and objects.
    for _ in 0..20 {
        assert!(matches!(
            open_tpm_dir(dir.path(), &tpm, true, false),
            Err(SealError::PolicyMismatch)
        ));
    }
    // A key sealed now binds to the new PCR 7 value and opens.
    let other = tempfile::tempdir().unwrap();
    let (fresh, _) = open_tpm_dir(other.path(), &tpm, true, true).unwrap();
    let (again, _) = open_tpm_dir(other.path(), &tpm, true, false).unwrap();
    assert_eq!(fresh.expose(), again.expose());
}

#[test]
fn an_unbound_key_ignores_pcr7() {
    let tpm = swtpm();
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = open_tpm_dir(dir.path(), &tpm, false, true).unwrap();
    extend_pcr7(&tpm);
    let (again, _) = open_tpm_dir(dir.path(), &tpm, false, false).unwrap();
    assert_eq!(again.expose(), key.expose());
}

#[test]
fn sealed_object_file_round_trips_and_rejects_damage() {
    let tpm = swtpm();
    let key = DataKey::generate().unwrap().0;
    for pcr7 in [false, true] {
        let sealed = seal(&tpm.tcti(), &key, pcr7).unwrap();
        let bytes = sealed.to_bytes();
        assert_eq!(SealedObject::parse(&bytes).unwrap(), sealed);
        assert_eq!(unseal(&tpm.tcti(), &sealed).unwrap().expose(), key.expose());

        // Every truncation and any trailing byte is refused, without panicking.
        for len in 0..bytes.len() {
            assert!(SealedObject::parse(&bytes[..len]).is_err(), "len {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(SealedObject::parse(&longer).is_err());

        // A flipped PCR 7 flag contradicts the object.
        let mut flag = bytes.clone();
        flag[MAGIC.len() + 1] ^= FLAG_PCR7;
        assert!(SealedObject::parse(&flag).is_err());

        // Flipped bytes are either refused by the parser or by the TPM; never
        // does a different key come out.
        for index in MAGIC.len()..bytes.len() {
            let mut altered = bytes.clone();
            altered[index] ^= 0x01;
            if let Ok(parsed) = SealedObject::parse(&altered) {
                match unseal(&tpm.tcti(), &parsed) {
                    Ok(unsealed) => assert_eq!(unsealed.expose(), key.expose()),
                    Err(SealError::Tpm { .. } | SealError::WrongTpm | SealError::Corrupt(_)) => {}
                    Err(e) => panic!("byte {index}: unexpected {e:?}"),
                }
            }
        }
    }
    // The TPM still has room after all those failures.
    unseal(&tpm.tcti(), &seal(&tpm.tcti(), &key, false).unwrap()).unwrap();
}

#[test]
fn garbage_sealed_object_file_is_corrupt() {
    let tpm = swtpm();
    for contents in [
        &b""[..],
        b"coffer-tpm-seal\n",
        b"coffer-tpm-seal\n\x02\x00",
        &[0u8; 100],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TPM_BLOB_NAME);
        fs::write(&path, contents).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let err = open_tpm_dir(dir.path(), &tpm, false, true).unwrap_err();
        assert!(matches!(err, SealError::Corrupt(_)), "{err:?}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}

#[test]
fn sealed_object_file_readable_by_others_is_refused() {
    let tpm = swtpm();
    let dir = tempfile::tempdir().unwrap();
    open_tpm_dir(dir.path(), &tpm, false, true).unwrap();
    let path = dir.path().join(TPM_BLOB_NAME);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let err = open_tpm_dir(dir.path(), &tpm, false, false).unwrap_err();
    assert!(matches!(err, SealError::LoosePermissions { .. }), "{err:?}");
    assert!(err.to_string().contains("chmod 600"));
}
