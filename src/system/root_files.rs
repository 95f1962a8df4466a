//! Files root writes (the console, a factory reset), possibly as root, in folders another account
//! may be able to write (the data dir belongs to the service account).
//!
//! Nothing here follows a symbolic link: a folder is opened with
//! `O_NOFOLLOW`, an old entry is unlinked (which removes a link, not its
//! target) and the new file is created with `O_CREAT | O_EXCL | O_NOFOLLOW`
//! relative to the folder's descriptor, its mode set on the descriptor. A
//! link planted where the console writes can neither redirect the write nor
//! the mode change to a file elsewhere.

use std::io::{self, Write as _};
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags};

/// Whether a folder must belong to root when the console runs as root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// System configuration (network files): root writes it only into
    /// folders root owns, so no other account can swap what is inside.
    Root,
    /// The data dir, which belongs to the service account by design.
    Service,
}

/// Opens the folder `dir` (its last part may not be a link).
pub fn open_dir(dir: &Path, owner: Owner) -> io::Result<OwnedFd> {
    let fd = rustix::fs::open(
        dir,
        OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    if owner == Owner::Root && nix::unistd::geteuid().is_root() {
        let st = rustix::fs::fstat(&fd)?;
        if st.st_uid != 0 || st.st_mode & 0o022 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} must belong to root and be writable by root only before the console writes there as root",
                    dir.display()
                ),
            ));
        }
    }
    Ok(fd)
}

/// Writes `bytes` to a new file `name` in `dir` with `mode`, replacing any
/// old entry of that name (removed, not followed), and syncs it.
pub fn create_new(dir: &OwnedFd, name: &str, mode: u32, bytes: &[u8]) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(e.into()),
    }
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )?;
    // The mode is set on the descriptor: the umask cannot narrow it and a
    // link cannot redirect it.
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes)?;
    file.sync_all()
}

/// Renames `from` to `to` within `dir` (a link at `to` is replaced, not
/// followed) and syncs the folder.
pub fn replace(dir: &OwnedFd, from: &str, to: &str) -> io::Result<()> {
    rustix::fs::renameat(dir, from, dir, to)?;
    rustix::fs::fsync(dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    #[test]
    fn a_planted_link_is_replaced_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("marker")).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("final")).unwrap();
        let fd = open_dir(dir.path(), Owner::Service).unwrap();
        create_new(&fd, "marker", 0o644, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(std::fs::metadata(&victim).unwrap().mode() & 0o777, 0o600);
        let marker = std::fs::symlink_metadata(dir.path().join("marker")).unwrap();
        assert!(marker.is_file());
        assert_eq!(marker.mode() & 0o777, 0o644);
        replace(&fd, "marker", "final").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("final")).unwrap(),
            "new"
        );
    }

    #[test]
    fn a_folder_that_is_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("link")).unwrap();
        assert!(open_dir(&dir.path().join("link"), Owner::Service).is_err());
        open_dir(&dir.path().join("real"), Owner::Service).unwrap();
    }

    #[test]
    fn root_writes_system_files_only_into_folders_root_owns() {
        if !nix::unistd::geteuid().is_root() {
            return; // the check applies to root only
        }
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = open_dir(&shared, Owner::Root).unwrap_err();
        assert!(err.to_string().contains("must belong to root"), "{err}");
        std::os::unix::fs::chown(&shared, Some(65534), None).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(open_dir(&shared, Owner::Root).is_err());
        assert!(open_dir(&shared, Owner::Service).is_ok());
        std::os::unix::fs::chown(&shared, Some(0), None).unwrap();
        open_dir(&shared, Owner::Root).unwrap();
    }
}
