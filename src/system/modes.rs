//! File modes of the data dir, checked before the server opens anything.
//!
//! The data dir holds the store (password hashes, sealed seeds, the audit
//! log), the data key or its sealed blob, and the SSH host keys. A data dir
//! other users can list or that the group can write, or any of those files
//! readable by group or others, is refused with an error that names the path
//! and the command that fixes it. Nothing is changed silently: a loose mode
//! is a sign of a mistake (a restored backup, a hand-made directory) that
//! the operator should see.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use super::SystemError;

/// Files in the data dir that must be private to the service (mode 0600).
pub const PRIVATE_FILES: &[&str] = &[
    crate::store::STORE_FILE,
    crate::store::LOCK_FILE,
    crate::seal::KEY_FILE_NAME,
    crate::seal::TPM_BLOB_NAME,
    crate::ssh::ED25519_FILE,
    crate::ssh::RSA_FILE,
];

/// Refuses a data dir with loose modes. A data dir that does not exist yet
/// is fine: it is created with mode 0700.
pub fn check_data_dir(dir: &Path) -> Result<(), SystemError> {
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(SystemError::os(
                format!("cannot inspect the data dir {}", dir.display()),
                e,
            ));
        }
    };
    if !meta.is_dir() {
        return Err(SystemError::UnsafeDataDir(format!(
            "the data dir {} is not a directory",
            dir.display()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o007 != 0 || mode & 0o020 != 0 {
        return Err(SystemError::UnsafeDataDir(format!(
            "the data dir {} has mode {mode:03o}: {}; run `chmod 700 {}`",
            dir.display(),
            if mode & 0o007 != 0 {
                "other users can reach the store and keys in it"
            } else {
                "its group can replace the store and keys in it"
            },
            dir.display()
        )));
    }
    for name in PRIVATE_FILES {
        let path = dir.join(name);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let mode = meta.mode() & 0o7777;
        if meta.file_type().is_file() && mode & 0o077 != 0 {
            return Err(SystemError::UnsafeDataDir(format!(
                "{} has mode {mode:03o}, so other users may read or change it; run `chmod 600 {}`",
                path.display(),
                path.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn loose_modes_are_refused_with_the_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        check_data_dir(&dir).unwrap();
        std::fs::create_dir(&dir).unwrap();
        chmod(&dir, 0o700);
        check_data_dir(&dir).unwrap();
        chmod(&dir, 0o750);
        check_data_dir(&dir).unwrap();
        chmod(&dir, 0o755);
        let err = check_data_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("chmod 700") && err.contains("755"), "{err}");
        chmod(&dir, 0o770);
        assert!(
            check_data_dir(&dir)
                .unwrap_err()
                .to_string()
                .contains("group")
        );
        chmod(&dir, 0o700);
        let store = dir.join(crate::store::STORE_FILE);
        std::fs::write(&store, b"").unwrap();
        chmod(&store, 0o644);
        let err = check_data_dir(&dir).unwrap_err().to_string();
        assert!(
            err.contains("chmod 600") && err.contains("coffer.redb"),
            "{err}"
        );
        chmod(&store, 0o600);
        let key = dir.join(crate::seal::KEY_FILE_NAME);
        std::fs::write(&key, b"").unwrap();
        chmod(&key, 0o640);
        assert!(
            check_data_dir(&dir)
                .unwrap_err()
                .to_string()
                .contains("data-key")
        );
    }
}
