//! Factory reset: the box goes back to unclaimed.
//!
//! Everything the data dir holds is appliance state and goes: the data key
//! (first, so an interrupted reset already leaves every sealed secret
//! unreadable), the store, the SSH host keys, TLS material and whatever else
//! lies there. The users' files (the files root) stay, unless the
//! technician asked twice for them to go too, and so do the network settings
//! an image with a read-only root keeps in the data dir ([`NETWORK_DIR`]).
//!
//! A reset that a power cut or a dropped line interrupts is finished on the
//! next start: the reset first writes a marker file (synced), deletes, then
//! removes the marker. `coffer serve` and `coffer console` call
//! [`finish_pending`] before they open anything, so a box is never left
//! half reset.

use std::path::{Path, PathBuf};

use super::SystemError;

/// The marker of a reset in progress, in the data dir.
pub const MARKER: &str = "factory-reset.pending";

/// The file system's own directory at the root of an ext4 partition: a data
/// dir that is a mount point has one, and a reset leaves it.
const LOST_AND_FOUND: &str = "lost+found";

/// Where an image with a read-only root keeps the console's network
/// settings (`[console] network_dir`, bind-mounted over
/// `/etc/systemd/network` for networkd). A reset leaves it, so the box stays
/// reachable at the address the technician gave it.
pub const NETWORK_DIR: &str = "network";

/// What a reset removed.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Wiped {
    /// Entries of the data dir removed.
    pub state: Vec<String>,
    /// Whether the users' files were removed too.
    pub user_files: bool,
}

/// Resets the box. The caller holds the store's writer lock (or is the
/// server that holds it and stops right after).
pub fn reset(data_dir: &Path, files_root: &Path, user_files: bool) -> Result<Wiped, SystemError> {
    if user_files {
        check_files_root(data_dir, files_root)?;
    }
    let marker = data_dir.join(MARKER);
    // The data dir belongs to the service account: the marker is made
    // afresh without following a link someone may have put in its place.
    let written = super::root_files::open_dir(data_dir, super::root_files::Owner::Service)
        .and_then(|dir| {
            super::root_files::create_new(
                &dir,
                MARKER,
                0o600,
                if user_files {
                    b"user_files=yes\n"
                } else {
                    b"user_files=no\n"
                },
            )?;
            rustix::fs::fsync(&dir).map_err(std::io::Error::from)
        });
    written.map_err(|e| {
        SystemError::os(
            format!("cannot start the factory reset: {}", marker.display()),
            e,
        )
    })?;
    tracing::warn!(
        event_id = crate::audit::Event::FactoryReset.id(),
        event = crate::audit::Event::FactoryReset.slug(),
        protocol = "console",
        user_files,
        "factory reset: wiping the store, keys and host keys"
    );
    finish(data_dir, files_root, user_files)
}

/// Finishes a reset that was interrupted (a marker is present).
pub fn finish_pending(data_dir: &Path, files_root: &Path) -> Result<(), SystemError> {
    let marker = data_dir.join(MARKER);
    let Ok(text) = std::fs::read_to_string(&marker) else {
        return Ok(());
    };
    let user_files = text.contains("user_files=yes");
    tracing::warn!(user_files, "finishing a factory reset that was interrupted");
    finish(data_dir, files_root, user_files).map(|_| ())
}

fn finish(data_dir: &Path, files_root: &Path, user_files: bool) -> Result<Wiped, SystemError> {
    let mut wiped = Wiped {
        state: Vec::new(),
        user_files,
    };
    // Keys first: once they are gone, nothing sealed can be read.
    let first = [crate::seal::KEY_FILE_NAME, crate::seal::TPM_BLOB_NAME];
    let mut rest: Vec<PathBuf> = Vec::new();
    let unreadable = |e: std::io::Error| {
        SystemError::os(
            format!("cannot read the data dir {}", data_dir.display()),
            e,
        )
    };
    for entry in std::fs::read_dir(data_dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // lost+found belongs to the file system when the data dir is a
        // partition of its own (the image's data partition); Coffer never
        // writes there. The network settings are the box's place on the LAN,
        // not its ownership.
        if [MARKER, LOST_AND_FOUND, NETWORK_DIR, super::CONTROL_SOCKET].contains(&name.as_str())
            || same(&path, files_root)
            || first.contains(&name.as_str())
        {
            continue;
        }
        rest.push(path);
    }
    for name in first {
        if remove(&data_dir.join(name))? {
            wiped.state.push(name.to_string());
        }
    }
    rest.sort();
    for path in rest {
        if remove(&path)? {
            wiped.state.push(
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
        }
    }
    if user_files && files_root.is_dir() {
        check_files_root(data_dir, files_root)?;
        let unreadable =
            |e: std::io::Error| SystemError::os(format!("cannot read {}", files_root.display()), e);
        for entry in std::fs::read_dir(files_root).map_err(unreadable)? {
            let path = entry.map_err(unreadable)?.path();
            if same(&path, data_dir) {
                continue;
            }
            remove(&path)?;
        }
    }
    sync_dir(data_dir);
    let marker = data_dir.join(MARKER);
    std::fs::remove_file(&marker)
        .map_err(|e| SystemError::os(format!("cannot remove {}", marker.display()), e))?;
    sync_dir(data_dir);
    Ok(wiped)
}

/// Refuses to wipe a files root that is not a dedicated directory.
fn check_files_root(data_dir: &Path, files_root: &Path) -> Result<(), SystemError> {
    let depth = files_root.components().count();
    if !files_root.is_absolute() && !files_root.starts_with(data_dir) {
        return Err(SystemError::Refused(format!(
            "the files root {} is not an absolute path; refusing to delete user files",
            files_root.display()
        )));
    }
    if files_root.is_absolute() && depth < 3 {
        return Err(SystemError::Refused(format!(
            "the files root {} is too close to / to be wiped; delete the user files by hand",
            files_root.display()
        )));
    }
    Ok(())
}

fn same(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Removes a file, link or directory tree (links are not followed). Says
/// whether something was there.
fn remove(path: &Path) -> Result<bool, SystemError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(SystemError::os(
                format!("cannot inspect {}", path.display()),
                e,
            ));
        }
    };
    let removed = if meta.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match removed {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(SystemError::os(
            format!("cannot remove {}", path.display()),
            e,
        )),
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let files = data.join("files");
        std::fs::create_dir_all(files.join("alice")).unwrap();
        std::fs::write(files.join("alice/report.txt"), b"x").unwrap();
        for f in [
            "coffer.redb",
            "coffer.lock",
            "data-key",
            "ssh_host_ed25519_key",
            "tls-key.pem",
        ] {
            std::fs::write(data.join(f), b"x").unwrap();
        }
        (tmp, data, files)
    }

    #[test]
    fn state_goes_files_stay_unless_asked() {
        let (_t, data, files) = setup();
        let wiped = reset(&data, &files, false).unwrap();
        assert_eq!(wiped.state.first().map(String::as_str), Some("data-key"));
        let left: Vec<_> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, vec!["files".to_string()]);
        assert!(files.join("alice/report.txt").exists());
        reset(&data, &files, true).unwrap();
        assert!(files.exists());
        assert_eq!(std::fs::read_dir(&files).unwrap().count(), 0);
    }

    #[test]
    fn a_partitions_lost_and_found_and_the_network_settings_stay() {
        let (_t, data, files) = setup();
        std::fs::create_dir(data.join(LOST_AND_FOUND)).unwrap();
        std::fs::create_dir(data.join(NETWORK_DIR)).unwrap();
        let file = data.join(NETWORK_DIR).join("50-coffer-eth0.network");
        std::fs::write(&file, "[Match]\nName=eth0\n").unwrap();
        let wiped = reset(&data, &files, true).unwrap();
        assert!(
            !wiped
                .state
                .iter()
                .any(|s| s == LOST_AND_FOUND || s == NETWORK_DIR)
        );
        assert!(data.join(LOST_AND_FOUND).is_dir());
        assert!(file.is_file());
        assert!(!data.join("coffer.redb").exists());
    }

    #[test]
    fn user_files_in_an_unsafe_place_are_refused() {
        let (_t, data, _files) = setup();
        for root in ["elsewhere/files", "/srv"] {
            let err = reset(&data, Path::new(root), true).unwrap_err();
            assert!(matches!(err, SystemError::Refused(_)), "{err:?}");
            assert!(err.to_string().contains(root), "{err}");
        }
        // Refused before anything was removed.
        assert!(data.join("data-key").exists());
    }

    #[test]
    fn an_interrupted_reset_is_finished_on_the_next_start() {
        let (_t, data, files) = setup();
        std::fs::write(data.join(MARKER), "user_files=no\n").unwrap();
        finish_pending(&data, &files).unwrap();
        assert!(!data.join("coffer.redb").exists());
        assert!(!data.join(MARKER).exists());
        assert!(files.join("alice/report.txt").exists());
        // Nothing pending: nothing happens.
        std::fs::write(data.join("coffer.redb"), b"x").unwrap();
        finish_pending(&data, &files).unwrap();
        assert!(data.join("coffer.redb").exists());
    }
}
