//! Accounts' home folders: checked and opened beneath the files root,
//! never through a symbolic link.

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::AtFlags;

use super::attrs::{S_IFDIR, S_IFLNK, S_IFMT};
use super::error::os_text;

/// Why a home folder path was refused; the message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadHome(pub String);

/// Longest home folder path, in bytes.
pub const MAX_HOME_BYTES: usize = 1024;
/// Longest part of a home folder path, in bytes (the file system's limit).
pub const MAX_HOME_PART_BYTES: usize = 255;

/// A home folder relative to the files root that passed [`HomeFolder::parse`]:
/// relative, every part neither empty nor `.` nor `..`, no backslash and no
/// control character. The only way to a session's home.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct HomeFolder(String);

impl HomeFolder {
    /// Checks a home path, after `${USER}` was substituted (or a template
    /// as written: `${USER}` passes as an ordinary part).
    pub fn parse(text: &str) -> Result<HomeFolder, BadHome> {
        let bad = |why: &str| BadHome(format!("home {text:?}: {why}"));
        if text.is_empty() || text.len() > MAX_HOME_BYTES {
            return Err(bad("must be 1 to 1024 bytes"));
        }
        if text.starts_with('/') {
            return Err(bad("must be relative to the files root"));
        }
        if text.chars().any(|c| c.is_control() || c == '\\') {
            return Err(bad("may not contain control characters or backslashes"));
        }
        for part in text.split('/') {
            if part.is_empty() || part == "." || part == ".." {
                return Err(bad("may not contain empty, '.' or '..' parts"));
            }
            if part.len() > MAX_HOME_PART_BYTES {
                return Err(bad("a part is longer than 255 bytes"));
            }
        }
        Ok(HomeFolder(text.to_string()))
    }

    /// The path, parts joined by `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The parts, from the files root down.
    pub fn parts(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl std::fmt::Display for HomeFolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an account's home folder was not opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HomeError {
    /// A symbolic link sits on the home's path (or is the home).
    #[error(
        "the home folder {folder:?} is refused: {part:?} on its path is a symbolic link; an administrator must remove it"
    )]
    Link {
        /// The home folder, relative to the files root.
        folder: String,
        /// The path up to the link, relative to the files root.
        part: String,
    },
    /// Something other than a folder sits on the home's path.
    #[error("the home folder {folder:?} is refused: {part:?} on its path is not a folder")]
    NotFolder {
        /// The home folder, relative to the files root.
        folder: String,
        /// The path up to the offending entry, relative to the files root.
        part: String,
    },
    /// The file system failed.
    #[error("cannot open the home folder {folder:?}: {}", os_text(source))]
    Io {
        /// The home folder, relative to the files root.
        folder: String,
        /// The error.
        source: io::Error,
    },
}

impl HomeError {
    /// Whether the home was refused for what is on its path (a link or a
    /// non-folder), as opposed to a failing file system.
    pub fn is_refusal(&self) -> bool {
        matches!(self, HomeError::Link { .. } | HomeError::NotFolder { .. })
    }
}

/// Checks an account's home `folder` beneath `files_root` without creating
/// anything: the parts that exist must be folders, not symbolic links.
pub fn check_home(files_root: &Path, folder: &HomeFolder) -> Result<(), HomeError> {
    walk_home(files_root, folder, false).map(|_| ())
}

/// Walks `folder` beneath `files_root` one part at a time, each opened
/// relative to its parent's descriptor with `O_NOFOLLOW | O_DIRECTORY`, so
/// no symbolic link is followed anywhere and a rename on the way cannot
/// redirect the walk. Missing parts are created (mode 0700) when `create`,
/// else the walk ends with `None`.
pub(super) fn walk_home(
    files_root: &Path,
    folder: &HomeFolder,
    create: bool,
) -> Result<Option<OwnedFd>, HomeError> {
    use rustix::fs::{Mode, OFlags};
    use rustix::io::Errno;
    let io_err = |e: Errno| HomeError::Io {
        folder: folder.to_string(),
        source: io::Error::from(e),
    };
    let mut dir = rustix::fs::open(
        files_root,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err)?;
    let mut walked = String::new();
    for part in folder.parts() {
        if !walked.is_empty() {
            walked.push('/');
        }
        walked.push_str(part);
        let opened = match open_part(&dir, part) {
            Err(Errno::NOENT) if create => {
                match rustix::fs::mkdirat(&dir, part, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(io_err(e)),
                }
                open_part(&dir, part)
            }
            Err(Errno::NOENT) => return Ok(None),
            other => other,
        };
        dir = match opened {
            Ok(fd) => fd,
            Err(e) => {
                return Err(
                    match rustix::fs::statat(&dir, part, AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) if st.st_mode & S_IFMT == S_IFLNK => HomeError::Link {
                            folder: folder.to_string(),
                            part: walked,
                        },
                        Ok(st) if st.st_mode & S_IFMT != S_IFDIR => HomeError::NotFolder {
                            folder: folder.to_string(),
                            part: walked,
                        },
                        _ => io_err(e),
                    },
                );
            }
        };
    }
    Ok(Some(dir))
}

/// Opens one part (no `/` in it) beneath `dir`, never following a link.
fn open_part(dir: &OwnedFd, part: &str) -> rustix::io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::openat(
        dir,
        part,
        OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}
