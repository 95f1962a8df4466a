//! Files only the service may read: checked on the way in, written atomically.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use zeroize::Zeroizing;

use super::SealError;

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SealError + '_ {
    move |source| SealError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether anything (even a dangling symbolic link) is at `path`.
pub(super) fn exists(path: &Path) -> Result<bool, SealError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error(path)(e)),
    }
}

/// Creates the data dir (mode 0700) when it does not exist yet.
pub(super) fn ensure_dir(dir: &Path) -> Result<(), SealError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_error(dir))
}

/// Refuses anything but a regular file that only its owner may read or write.
fn check(path: &Path, metadata: &fs::Metadata) -> Result<(), SealError> {
    let file_type = metadata.file_type();
    if !file_type.is_file() {
        let kind = if file_type.is_symlink() {
            "a symbolic link"
        } else if file_type.is_dir() {
            "a directory"
        } else if file_type.is_fifo() {
            "a named pipe"
        } else if file_type.is_socket() {
            "a socket"
        } else {
            "a device"
        };
        return Err(SealError::NotRegularFile {
            path: path.to_path_buf(),
            kind,
        });
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SealError::LoosePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Reads a private file of at most `max_len` bytes.
///
/// The path is checked before opening (for a clear message about a symbolic
/// link) and the opened file again (so a file swapped in between is caught):
/// it must be a regular file with no group or other permission bits.
pub(super) fn read(path: &Path, max_len: usize) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let before = fs::symlink_metadata(path).map_err(io_error(path))?;
    check(path, &before)?;
    let file = OpenOptions::new()
        .read(true)
        // Never follow a link planted after the check, never hang on a FIFO.
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)
        .map_err(io_error(path))?;
    check(path, &file.metadata().map_err(io_error(path))?)?;

    let mut contents = Zeroizing::new(Vec::with_capacity(max_len.saturating_add(1)));
    let limit = u64::try_from(max_len).unwrap_or(u64::MAX).saturating_add(1);
    file.take(limit)
        .read_to_end(&mut contents)
        .map_err(io_error(path))?;
    if contents.len() > max_len {
        return Err(SealError::Corrupt(format!(
            "{} is larger than {max_len} bytes",
            path.display()
        )));
    }
    Ok(contents)
}

/// Writes `contents` to `dir/name` atomically, with mode 0600, and never over
/// an existing file.
///
/// The bytes go to a fresh temporary file (created 0600, written, synced), which
/// is then hard-linked to its final name: the link either appears complete or
/// not at all, and fails if the name is taken, so two processes creating a data
/// key at the same moment cannot overwrite each other. The directory is synced
/// last so the new name survives a power cut.
pub(super) fn create_new(dir: &Path, name: &str, contents: &[u8]) -> Result<PathBuf, SealError> {
    let target = dir.join(name);
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| SealError::Random(e.to_string()))?;
    let temp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        data_encoding::HEXLOWER.encode(&suffix)
    ));

    let written = write_synced(&temp, contents);
    let linked = written.and_then(|()| match fs::hard_link(&temp, &target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(SealError::Conflict(format!(
            "{} was created by another process at the same time; start again",
            target.display()
        ))),
        Err(e) => Err(io_error(&target)(e)),
    });
    // The temporary name goes whether or not the link was made.
    let removed = fs::remove_file(&temp);
    linked?;
    removed.map_err(io_error(&temp))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))?;
    Ok(target)
}

fn write_synced(path: &Path, contents: &[u8]) -> Result<(), SealError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(OFlag::O_NOFOLLOW.bits())
        .open(path)
        .map_err(io_error(path))?;
    file.write_all(contents).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}
