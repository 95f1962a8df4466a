use std::fs::{self, DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::time::{Duration, Instant};

use super::*;

fn key() -> DataKey {
    DataKey::generate().unwrap().0
}

fn no_tpm() -> Platform {
    Platform {
        env_tcti: None,
        tpm_device: false,
    }
}

fn keyfile_options() -> SealOptions {
    SealOptions {
        choice: BackendChoice::KeyFile,
        ..SealOptions::default()
    }
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn aead_round_trip() {
    let key = key();
    for plaintext in [&b""[..], b"JBSWY3DPEHPK3PXP", &[0u8; 4096][..]] {
        let blob = key.encrypt(b"alice/enrol-1", plaintext).unwrap();
        assert_eq!(blob.len(), 1 + NONCE_LEN + plaintext.len() + TAG_LEN);
        assert_eq!(blob[0], BLOB_VERSION);
        let opened = key.decrypt(b"alice/enrol-1", &blob).unwrap();
        assert_eq!(opened.as_slice(), plaintext);
    }
}

#[test]
fn encrypting_twice_uses_fresh_nonces() {
    let key = key();
    let a = key.encrypt(b"ctx", b"seed").unwrap();
    let b = key.encrypt(b"ctx", b"seed").unwrap();
    assert_ne!(a, b);
}

#[test]
fn wrong_context_is_tampered() {
    let key = key();
    let blob = key.encrypt(b"alice/enrol-1", b"seed").unwrap();
    for context in [&b"alice/enrol-2"[..], b"bob/enrol-1", b""] {
        assert!(matches!(
            key.decrypt(context, &blob),
            Err(SealError::Tampered)
        ));
    }
}

#[test]
fn another_key_cannot_decrypt() {
    let blob = key().encrypt(b"ctx", b"seed").unwrap();
    assert!(matches!(
        key().decrypt(b"ctx", &blob),
        Err(SealError::Tampered)
    ));
}

#[test]
fn every_flipped_bit_is_tampered() {
    let key = key();
    let blob = key.encrypt(b"ctx", b"a TOTP seed").unwrap();
    for index in 0..blob.len() {
        for bit in 0..8 {
            let mut altered = blob.clone();
            altered[index] ^= 1 << bit;
            assert!(
                matches!(key.decrypt(b"ctx", &altered), Err(SealError::Tampered)),
                "byte {index} bit {bit}"
            );
        }
    }
}

#[test]
fn truncated_extended_empty_and_garbage_blobs_are_tampered() {
    let key = key();
    let blob = key.encrypt(b"ctx", b"a TOTP seed").unwrap();
    for len in 0..blob.len() {
        assert!(matches!(
            key.decrypt(b"ctx", &blob[..len]),
            Err(SealError::Tampered)
        ));
    }
    let mut longer = blob.clone();
    longer.push(0);
    assert!(matches!(
        key.decrypt(b"ctx", &longer),
        Err(SealError::Tampered)
    ));
    for garbage in [
        vec![],
        vec![BLOB_VERSION],
        vec![0xff; 1 + NONCE_LEN + TAG_LEN],
        vec![BLOB_VERSION; 1 + NONCE_LEN + TAG_LEN],
        vec![0; 1000],
    ] {
        assert!(matches!(
            key.decrypt(b"ctx", &garbage),
            Err(SealError::Tampered)
        ));
    }
}

#[test]
fn subkeys_differ_per_label_and_are_stable() {
    let key = key();
    let recovery = key.subkey(b"coffer/recovery-codes/v1");
    let tokens = key.subkey(b"coffer/access-tokens/v1");
    assert_ne!(*recovery, *tokens);
    assert_eq!(*recovery, *key.subkey(b"coffer/recovery-codes/v1"));
    assert_ne!(*recovery, *key.expose());
    assert_ne!(*recovery, *key.subkey(b""));
    // Another data key gives other subkeys for the same label.
    assert_ne!(*recovery, *self::key().subkey(b"coffer/recovery-codes/v1"));
}

#[test]
fn subkey_is_hmac_sha256_of_the_label() {
    // RFC 4231 test case 2 uses a 4-byte key; with a 32-byte key, check against
    // the definition instead: HMAC(K, m) = H((K ^ opad) || H((K ^ ipad) || m)).
    let key = DataKey::from_bytes(Zeroizing::new([0x0b; 32]));
    let mut inner = Sha256::new();
    inner.update([0x0b ^ 0x36; 32]);
    inner.update([0x36; 32]);
    inner.update(b"label");
    let mut outer = Sha256::new();
    outer.update([0x0b ^ 0x5c; 32]);
    outer.update([0x5c; 32]);
    outer.update(inner.finalize());
    assert_eq!(key.subkey(b"label").as_slice(), outer.finalize().as_slice());
}

#[test]
fn debug_never_shows_the_key() {
    let key = DataKey::from_bytes(Zeroizing::new([0xab; 32]));
    let shown = format!("{key:?}");
    assert_eq!(shown, "DataKey(***)");
}

#[test]
fn generated_keys_differ() {
    let (a, _) = DataKey::generate().unwrap();
    let (b, _) = DataKey::generate().unwrap();
    assert_ne!(a.expose(), b.expose());
}

#[test]
fn generate_mixes_in_hwrng_bytes_when_they_come() {
    let dir = tempfile::tempdir().unwrap();
    let device = dir.path().join("hwrng");
    fs::write(&device, [7u8; 64]).unwrap();
    let (_, used) = DataKey::generate_with(&device, Duration::from_secs(5)).unwrap();
    assert!(used);
    let short = dir.path().join("short");
    fs::write(&short, [7u8; 5]).unwrap();
    let (_, used) = DataKey::generate_with(&short, Duration::from_secs(5)).unwrap();
    assert!(used, "a short read still contributes");
    let empty = dir.path().join("empty");
    fs::write(&empty, []).unwrap();
    let (_, used) = DataKey::generate_with(&empty, Duration::from_secs(5)).unwrap();
    assert!(!used);
}

#[test]
fn generate_without_hwrng_uses_the_os_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (_, used) = DataKey::generate_with(&dir.path().join("absent"), HWRNG_TIMEOUT).unwrap();
    assert!(!used);
}

#[test]
#[allow(clippy::disallowed_methods)] // proves a wait is bounded (200 ms timeout, 2 s margin)
fn generate_does_not_wait_for_a_silent_hwrng() {
    let dir = tempfile::tempdir().unwrap();
    // Opening a FIFO for reading blocks until a writer comes: a device that
    // never answers.
    let fifo = dir.path().join("hwrng");
    nix::unistd::mkfifo(
        &fifo,
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
    )
    .unwrap();
    let started = Instant::now();
    let (_, used) = DataKey::generate_with(&fifo, Duration::from_millis(200)).unwrap();
    assert!(!used);
    assert!(started.elapsed() < Duration::from_secs(2));
    // Release the helper thread.
    drop(OpenOptions::new().write(true).open(&fifo));
}

#[test]
fn backend_choice_parses_config_strings() {
    assert_eq!(
        "auto".parse::<BackendChoice>().unwrap(),
        BackendChoice::Auto
    );
    assert_eq!("tpm".parse::<BackendChoice>().unwrap(), BackendChoice::Tpm);
    assert_eq!(
        " KeyFile ".parse::<BackendChoice>().unwrap(),
        BackendChoice::KeyFile
    );
    let err = "tmp".parse::<BackendChoice>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown seal backend \"tmp\": use auto, tpm or keyfile"
    );
    for choice in [
        BackendChoice::Auto,
        BackendChoice::Tpm,
        BackendChoice::KeyFile,
    ] {
        assert_eq!(choice.to_string().parse::<BackendChoice>().unwrap(), choice);
    }
}

#[test]
fn backend_says_what_protects_the_key() {
    assert_eq!(Backend::Tpm.to_string(), "TPM 2.0");
    assert_eq!(
        Backend::KeyFile.to_string(),
        "key file (no TPM: the data key is protected only by file permissions)"
    );
    let status = SealStatus {
        backend: Backend::KeyFile,
        detail: "/data/data-key".into(),
        hwrng_used: None,
    };
    assert_eq!(
        serde_json::to_string(&status).unwrap(),
        r#"{"backend":"keyfile","detail":"/data/data-key","hwrng_used":null}"#
    );
}

#[test]
fn key_file_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (key, status) = open_on(dir.path(), &keyfile_options(), true, &no_tpm()).unwrap();
    let path = dir.path().join(KEY_FILE_NAME);
    assert_eq!(status.backend, Backend::KeyFile);
    assert_eq!(status.detail, path.display().to_string());
    assert!(status.hwrng_used.is_some());
    assert_eq!(mode(&path), 0o600);
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("coffer data key v1\n"));
    // Nothing else is left behind (no temporary file).
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);

    let blob = key.encrypt(b"ctx", b"seed").unwrap();
    for choice in [BackendChoice::Auto, BackendChoice::KeyFile] {
        let options = SealOptions {
            choice,
            ..SealOptions::default()
        };
        let (again, status) = open_on(dir.path(), &options, false, &no_tpm()).unwrap();
        assert_eq!(again.expose(), key.expose());
        assert_eq!(status.hwrng_used, None);
        assert_eq!(again.decrypt(b"ctx", &blob).unwrap().as_slice(), b"seed");
    }
}

#[test]
fn open_creates_a_missing_data_dir_privately() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("state/coffer");
    open_on(&dir, &keyfile_options(), true, &no_tpm()).unwrap();
    assert_eq!(mode(&dir), 0o700 & !umask_bits());
    assert!(dir.join(KEY_FILE_NAME).is_file());
}

fn umask_bits() -> u32 {
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("probe");
    DirBuilder::new().mode(0o777).create(&probe).unwrap();
    !mode(&probe) & 0o777
}

#[test]
fn key_file_readable_by_others_is_refused() {
    for loose in [0o644, 0o640, 0o604, 0o660, 0o700] {
        let dir = tempfile::tempdir().unwrap();
        open_on(dir.path(), &keyfile_options(), true, &no_tpm()).unwrap();
        let path = dir.path().join(KEY_FILE_NAME);
        fs::set_permissions(&path, fs::Permissions::from_mode(loose)).unwrap();
        let result = open_on(dir.path(), &keyfile_options(), false, &no_tpm());
        if loose & 0o077 == 0 {
            result.unwrap();
            continue;
        }
        let err = result.unwrap_err();
        assert!(
            matches!(err, SealError::LoosePermissions { mode, .. } if mode == loose),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("chmod 600"), "{message}");
    }
}

#[test]
fn symlinked_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    open_on(elsewhere.path(), &keyfile_options(), true, &no_tpm()).unwrap();
    let path = dir.path().join(KEY_FILE_NAME);
    std::os::unix::fs::symlink(elsewhere.path().join(KEY_FILE_NAME), &path).unwrap();
    let err = open_on(dir.path(), &keyfile_options(), false, &no_tpm()).unwrap_err();
    assert!(
        matches!(
            err,
            SealError::NotRegularFile {
                kind: "a symbolic link",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(&path.display().to_string()));

    // A dangling link counts as present too: no new key is made beside it.
    let dangling = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/nonexistent/data-key", dangling.path().join(KEY_FILE_NAME))
        .unwrap();
    let err = open_on(dangling.path(), &keyfile_options(), true, &no_tpm()).unwrap_err();
    assert!(matches!(err, SealError::NotRegularFile { .. }), "{err:?}");
}

#[test]
fn key_file_that_is_a_directory_or_fifo_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(KEY_FILE_NAME);
    fs::create_dir(&path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
    let err = open_on(dir.path(), &keyfile_options(), false, &no_tpm()).unwrap_err();
    assert!(
        matches!(
            err,
            SealError::NotRegularFile {
                kind: "a directory",
                ..
            }
        ),
        "{err:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(KEY_FILE_NAME);
    nix::unistd::mkfifo(
        &path,
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
    )
    .unwrap();
    let err = open_on(dir.path(), &keyfile_options(), false, &no_tpm()).unwrap_err();
    assert!(
        matches!(
            err,
            SealError::NotRegularFile {
                kind: "a named pipe",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn garbage_key_file_is_refused() {
    let cases: [&[u8]; 6] = [
        b"",
        b"hello\n",
        b"coffer data key v1\n0123\n",
        b"coffer data key v1\nzz23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
        &[0xff; 20],
        &[b'a'; 5000],
    ];
    for contents in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE_NAME);
        fs::write(&path, contents).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let err = open_on(dir.path(), &keyfile_options(), true, &no_tpm()).unwrap_err();
        assert!(matches!(err, SealError::Corrupt(_)), "{err:?}");
        assert!(err.to_string().contains(&path.display().to_string()));
        // The broken file is left alone for the operator to inspect.
        assert_eq!(fs::read(&path).unwrap(), contents);
    }
}

#[test]
fn missing_key_without_create_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let err = open_on(dir.path(), &SealOptions::default(), false, &no_tpm()).unwrap_err();
    assert!(matches!(err, SealError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains(&dir.path().display().to_string()));
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn both_files_are_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    open_on(dir.path(), &keyfile_options(), true, &no_tpm()).unwrap();
    fs::write(dir.path().join(TPM_BLOB_NAME), b"anything").unwrap();
    for choice in [
        BackendChoice::Auto,
        BackendChoice::Tpm,
        BackendChoice::KeyFile,
    ] {
        let options = SealOptions {
            choice,
            ..SealOptions::default()
        };
        let err = open_on(dir.path(), &options, true, &no_tpm()).unwrap_err();
        assert!(matches!(err, SealError::Conflict(_)), "{err:?}");
        assert!(err.to_string().contains("both"), "{err}");
    }
}

#[test]
fn key_file_with_tpm_demanded_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    open_on(dir.path(), &keyfile_options(), true, &no_tpm()).unwrap();
    let options = SealOptions {
        choice: BackendChoice::Tpm,
        tcti: Some("swtpm:host=127.0.0.1,port=1".into()),
        bind_pcr7: false,
    };
    let err = open_on(dir.path(), &options, true, &no_tpm()).unwrap_err();
    assert!(matches!(err, SealError::Conflict(_)), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("this data dir uses a key file, not a TPM"),
        "{err}"
    );
}

#[test]
fn tpm_blob_with_key_file_demanded_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(TPM_BLOB_NAME);
    fs::write(&path, b"a sealed object").unwrap();
    let err = open_on(dir.path(), &keyfile_options(), true, &no_tpm()).unwrap_err();
    assert!(matches!(err, SealError::Conflict(_)), "{err:?}");
    assert!(err.to_string().contains("sealed by the TPM"), "{err}");
    // No key file was created beside it.
    assert!(!dir.path().join(KEY_FILE_NAME).exists());
}

#[cfg(not(feature = "tpm"))]
#[test]
fn tpm_blob_without_tpm_support_is_unavailable_not_a_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(TPM_BLOB_NAME);
    fs::write(&path, b"a sealed object").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let err = open_on(dir.path(), &SealOptions::default(), true, &no_tpm()).unwrap_err();
    assert!(matches!(err, SealError::TpmUnavailable(_)), "{err:?}");
    assert!(err.to_string().contains("no TPM support"), "{err}");
    assert!(!dir.path().join(KEY_FILE_NAME).exists());
}

#[test]
fn auto_without_a_tpm_creates_a_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_, status) = open_on(dir.path(), &SealOptions::default(), true, &no_tpm()).unwrap();
    assert_eq!(status.backend, Backend::KeyFile);
    assert!(dir.path().join(KEY_FILE_NAME).is_file());
}

#[cfg(feature = "tpm")]
#[test]
fn tpm_demanded_without_a_tpm_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let options = SealOptions {
        choice: BackendChoice::Tpm,
        ..SealOptions::default()
    };
    let err = open_on(dir.path(), &options, true, &no_tpm()).unwrap_err();
    assert!(matches!(err, SealError::TpmUnavailable(_)), "{err:?}");
    assert!(err.to_string().contains("/dev/tpmrm0"), "{err}");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[cfg(not(feature = "tpm"))]
#[test]
fn tpm_demanded_without_tpm_support_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let options = SealOptions {
        choice: BackendChoice::Tpm,
        ..SealOptions::default()
    };
    let platform = Platform {
        env_tcti: None,
        tpm_device: true,
    };
    let err = open_on(dir.path(), &options, true, &platform).unwrap_err();
    assert!(matches!(err, SealError::TpmUnavailable(_)), "{err:?}");
    assert!(err.to_string().contains("no TPM support"), "{err}");
}

#[cfg(not(feature = "tpm"))]
#[test]
fn auto_without_tpm_support_creates_a_key_file_even_beside_a_tpm() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform {
        env_tcti: None,
        tpm_device: true,
    };
    let (_, status) = open_on(dir.path(), &SealOptions::default(), true, &platform).unwrap();
    assert_eq!(status.backend, Backend::KeyFile);
}

#[test]
fn tcti_comes_from_options_then_environment_then_device() {
    let configured = SealOptions {
        tcti: Some("mssim:host=localhost,port=2321".into()),
        ..SealOptions::default()
    };
    let blank = SealOptions {
        tcti: Some("  ".into()),
        ..SealOptions::default()
    };
    let everything = Platform {
        env_tcti: Some("swtpm:port=2321".into()),
        tpm_device: true,
    };
    let device_only = Platform {
        env_tcti: None,
        tpm_device: true,
    };
    assert_eq!(
        everything.tcti(&configured).as_deref(),
        Some("mssim:host=localhost,port=2321")
    );
    assert_eq!(everything.tcti(&blank).as_deref(), Some("swtpm:port=2321"));
    assert_eq!(
        device_only.tcti(&SealOptions::default()).as_deref(),
        Some("device:/dev/tpmrm0")
    );
    assert_eq!(no_tpm().tcti(&SealOptions::default()), None);
}

#[test]
fn private_file_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    private_file::create_new(dir.path(), "x", b"first").unwrap();
    let err = private_file::create_new(dir.path(), "x", b"second").unwrap_err();
    assert!(matches!(err, SealError::Conflict(_)), "{err:?}");
    assert_eq!(fs::read(dir.path().join("x")).unwrap(), b"first");
    assert_eq!(mode(&dir.path().join("x")), 0o600);
    // The temporary file is gone on the failure path too.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn blobs_sealed_by_another_implementation_open() {
    // Sealed by libsodium's XChaCha20-Poly1305 under HMAC-SHA256(data key,
    // AEAD label), data key 00..1f, nonce 64..7b: the format does not
    // depend on the crate that implements it.
    let key = DataKey::from_bytes(Zeroizing::new(std::array::from_fn(|i| i as u8)));
    let blob = data_encoding::HEXLOWER
        .decode(
            b"016465666768696a6b6c6d6e6f707172737475767778797a7b136c67b77abdbfb99baf2c\
              7a13a8e9cbf5545f40fb354e18c9e258e3fa6d6781742670ef38",
        )
        .unwrap();
    assert_eq!(
        key.decrypt(b"alice/1", &blob).unwrap().as_slice(),
        b"JBSWY3DPEHPK3PXP seed"
    );
    assert!(matches!(
        key.decrypt(b"alice/2", &blob),
        Err(SealError::Tampered)
    ));
}
