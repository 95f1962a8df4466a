//! Moving a home folder when its account is renamed.
//!
//! A home derived from the account's name (the default `${USER}`, or a
//! group template such as `team/${USER}`) follows the name: the one part of
//! the path that holds the name is renamed within its parent folder. The
//! parent is reached with the same walk that opens homes (one part at a
//! time, `O_NOFOLLOW | O_DIRECTORY`, never following a link), and the move
//! is one `renameat2(RENAME_NOREPLACE)` inside that parent, so it is atomic,
//! never replaces anything and can be undone by the reverse rename
//! ([`HomeMove::undo`]) when the store refuses the account's rename.

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, RenameFlags};
use rustix::io::Errno;

use super::attrs::{S_IFDIR, S_IFLNK, S_IFMT};
use super::home::walk_home;
use super::{HomeError, HomeFolder};

/// Why a home folder was not moved. Nothing was changed in any case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MoveError {
    /// The folder the home would move to exists already.
    #[error("the folder {0:?} exists already; move or remove it first")]
    TargetExists(String),
    /// The two homes differ in more than one part (a template with
    /// `${USER}` in several parts): there is no single folder to rename.
    #[error(
        "the home folder {from:?} cannot follow the new name to {to:?}: they differ in more than one part; move the files by hand"
    )]
    NotOneFolder {
        /// The home under the old name.
        from: String,
        /// The home under the new name.
        to: String,
    },
    /// A link or a non-folder on the path, or a failing file system.
    #[error(transparent)]
    Home(#[from] HomeError),
}

/// A home folder that was moved: the parent folder (held open, so the
/// undo renames in the very same folder) and the two names in it.
#[derive(Debug)]
pub struct HomeMove {
    parent: OwnedFd,
    /// The moved part's old name.
    from: String,
    /// Its new name.
    to: String,
    /// The home under the new name, for messages.
    home: String,
}

impl HomeMove {
    /// The home folder under the new name (relative to the files root).
    pub fn home(&self) -> &str {
        &self.home
    }

    /// Moves the folder back to its old name.
    pub fn undo(self) -> io::Result<()> {
        rustix::fs::renameat_with(
            &self.parent,
            self.to.as_str(),
            &self.parent,
            self.from.as_str(),
            RenameFlags::NOREPLACE,
        )
        .map_err(io::Error::from)
    }
}

/// The parts `from` and `to` differ in: `None` when they are the same
/// folder, else the index of the one differing part.
fn differing_part(from: &HomeFolder, to: &HomeFolder) -> Result<Option<usize>, MoveError> {
    let a: Vec<&str> = from.parts().collect();
    let b: Vec<&str> = to.parts().collect();
    let differ: Vec<usize> = (0..a.len().max(b.len()))
        .filter(|&i| a.get(i) != b.get(i))
        .collect();
    match differ.as_slice() {
        [] => Ok(None),
        [i] if a.len() == b.len() => Ok(Some(*i)),
        _ => Err(MoveError::NotOneFolder {
            from: from.to_string(),
            to: to.to_string(),
        }),
    }
}

/// The folder that moves when the home `from` becomes `to` (relative to
/// the files root: `from` up to the part that differs), or `None` when
/// they are the same folder. Everything beneath it moves along.
pub fn moved_folder(from: &HomeFolder, to: &HomeFolder) -> Result<Option<String>, MoveError> {
    Ok(differing_part(from, to)?.map(|i| from.parts().take(i + 1).collect::<Vec<_>>().join("/")))
}

/// Renames the home `from` to `to` beneath `files_root`, where the two
/// differ in exactly one part. `Ok(None)`: nothing to move (the same
/// folder, or the old one does not exist). Refused, with nothing changed,
/// when a link or a non-folder sits on the old path or the new folder
/// exists already (also when the old one does not: the account would
/// otherwise take over someone else's files).
pub fn move_home(
    files_root: &Path,
    from: &HomeFolder,
    to: &HomeFolder,
) -> Result<Option<HomeMove>, MoveError> {
    let Some(i) = differing_part(from, to)? else {
        return Ok(None);
    };
    if matches!(std::fs::symlink_metadata(files_root), Err(e) if e.kind() == io::ErrorKind::NotFound)
    {
        // No files root yet: no home was ever made.
        return Ok(None);
    }
    let parts: Vec<&str> = from.parts().collect();
    let (Some(&old), Some(new)) = (parts.get(i), to.parts().nth(i)) else {
        return Ok(None);
    };
    let parent = match parts.get(..i).filter(|p| !p.is_empty()) {
        Some(p) => {
            let folder = HomeFolder::parse(&p.join("/")).map_err(|_| HomeError::Io {
                folder: from.to_string(),
                source: io::Error::from(io::ErrorKind::InvalidInput),
            })?;
            walk_home(files_root, &folder, false)?
        }
        None => Some(open_root(files_root, from)?),
    };
    let io_err = |e: Errno| HomeError::Io {
        folder: from.to_string(),
        source: io::Error::from(e),
    };
    let target = to.parts().take(i + 1).collect::<Vec<_>>().join("/");
    let Some(parent) = parent else {
        return Ok(None);
    };
    match rustix::fs::statat(&parent, new, AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => {}
        Ok(_) => return Err(MoveError::TargetExists(target)),
        Err(e) => return Err(io_err(e).into()),
    }
    let walked = parts.get(..=i).unwrap_or_default().join("/");
    match rustix::fs::statat(&parent, old, AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(io_err(e).into()),
        Ok(st) if st.st_mode & S_IFMT == S_IFLNK => {
            return Err(HomeError::Link {
                folder: from.to_string(),
                part: walked,
            }
            .into());
        }
        Ok(st) if st.st_mode & S_IFMT != S_IFDIR => {
            return Err(HomeError::NotFolder {
                folder: from.to_string(),
                part: walked,
            }
            .into());
        }
        Ok(_) => {}
    }
    match rustix::fs::renameat_with(&parent, old, &parent, new, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(Some(HomeMove {
            parent,
            from: old.to_string(),
            to: new.to_string(),
            home: to.to_string(),
        })),
        Err(Errno::EXIST) => Err(MoveError::TargetExists(target)),
        Err(e) => Err(io_err(e).into()),
    }
}

fn open_root(files_root: &Path, folder: &HomeFolder) -> Result<OwnedFd, HomeError> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        files_root,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| HomeError::Io {
        folder: folder.to_string(),
        source: io::Error::from(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home(text: &str) -> HomeFolder {
        HomeFolder::parse(text).unwrap()
    }

    #[test]
    fn the_one_folder_holding_the_name_moves_and_can_move_back() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("team/bob/sub")).unwrap();
        std::fs::write(root.path().join("team/bob/sub/f"), b"x").unwrap();
        let moved = move_home(root.path(), &home("team/bob"), &home("team/rob"))
            .unwrap()
            .unwrap();
        assert_eq!(moved.home(), "team/rob");
        assert!(root.path().join("team/rob/sub/f").exists());
        assert!(!root.path().join("team/bob").exists());
        moved.undo().unwrap();
        assert!(root.path().join("team/bob/sub/f").exists());
        // A name in an upper part: that folder moves, with what is below.
        std::fs::create_dir_all(root.path().join("bob/files")).unwrap();
        move_home(root.path(), &home("bob/files"), &home("rob/files"))
            .unwrap()
            .unwrap();
        assert!(root.path().join("rob/files").is_dir());
    }

    #[test]
    fn nothing_to_move_when_the_folder_is_missing_or_the_same() {
        let root = tempfile::tempdir().unwrap();
        assert!(
            move_home(root.path(), &home("bob"), &home("rob"))
                .unwrap()
                .is_none()
        );
        assert!(
            move_home(root.path(), &home("team/bob"), &home("team/rob"))
                .unwrap()
                .is_none()
        );
        std::fs::create_dir(root.path().join("bob")).unwrap();
        assert!(
            move_home(root.path(), &home("bob"), &home("bob"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn refused_with_nothing_changed() {
        let root = tempfile::tempdir().unwrap();
        let p = root.path();
        std::fs::create_dir(p.join("bob")).unwrap();
        std::fs::create_dir(p.join("rob")).unwrap();
        assert!(matches!(
            move_home(p, &home("bob"), &home("rob")),
            Err(MoveError::TargetExists(t)) if t == "rob"
        ));
        // The target exists and the old folder does not.
        assert!(matches!(
            move_home(p, &home("nobody"), &home("rob")),
            Err(MoveError::TargetExists(_))
        ));
        // A link as the home, and a link on the path.
        std::os::unix::fs::symlink("/", p.join("eve")).unwrap();
        assert!(matches!(
            move_home(p, &home("eve"), &home("eva")),
            Err(MoveError::Home(HomeError::Link { .. }))
        ));
        std::fs::create_dir(p.join("real")).unwrap();
        std::fs::create_dir(p.join("real/bob")).unwrap();
        std::os::unix::fs::symlink("real", p.join("team")).unwrap();
        assert!(matches!(
            move_home(p, &home("team/bob"), &home("team/rob")),
            Err(MoveError::Home(HomeError::Link { .. }))
        ));
        assert!(p.join("real/bob").is_dir() && !p.join("real/rob").exists());
        assert!(!p.join("eva").exists());
        // Two parts differ: no single folder to rename.
        assert!(matches!(
            move_home(p, &home("bob/x/bob"), &home("rob/x/rob")),
            Err(MoveError::NotOneFolder { .. })
        ));
    }
}
