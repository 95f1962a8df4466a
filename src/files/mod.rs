//! Files: a virtual tree confined to each user's home folder, served over
//! SFTP ([`sftp`]) and legacy SCP ([`scp`]).
//!
//! A [`Root`] is one account's home folder held as a directory capability
//! (`cap_std::fs::Dir`). Every path operation is relative to that
//! capability; on Linux cap-std resolves paths with `openat2` and
//! `RESOLVE_BENEATH`, so no path, no symbolic link made inside pointing
//! outside, and no race between a check and an open can reach a file
//! outside the home. Client paths are virtual ([`VPath`]): the home is `/`,
//! `.` and `..` are resolved lexically and clamped at `/`.
//!
//! Policy lives here, once, for both protocols:
//! - a read-only account ([`Access::write`] false) is refused every
//!   change with [`FsError::ReadOnly`] ("read-only account");
//! - an account without [`Access::delete`] (`no_delete`) keeps every
//!   file it has written ([`FsError::NoDelete`]): it may add files and
//!   folders, but a file, once written, can be neither removed, truncated,
//!   overwritten nor renamed. Precisely: a file may be written only through
//!   the handle that created it (an open that makes a new name, made
//!   exclusive so it can never open an existing file), and through that
//!   handle at any offset and to any size until it is closed; after that
//!   the file is immutable for the account. Opening an existing file for
//!   writing, appending or truncating, setting the size of a file by path
//!   or through a handle not open for writing, removing anything (files,
//!   links, folders, even empty ones) and renaming anything (a file or a
//!   folder, to a new name or onto an existing one) are refused. Creating
//!   folders, symbolic links and hard links to new names (which never
//!   replace a name), and setting modes and times, remain allowed;
//! - new files are 0644 and new folders 0755 unless the client asks for a
//!   mode; setuid, setgid and sticky bits are stripped from every mode a
//!   client sets;
//! - client requests to change a file's owner or group are accepted and
//!   ignored: every file belongs to the service account, and answering OK
//!   keeps clients that preserve attributes (`sftp -p`, WinSCP) working;
//! - symbolic links: a client may create them; following one never leaves
//!   the home (cap-std refuses, reported as permission denied). A link
//!   target given as an absolute virtual path (`ln -s /docs d`) is stored
//!   relative to the link's folder (`docs`, `../docs`, ...) so it resolves
//!   inside the home like the client meant; a relative target is stored as
//!   given, and READLINK returns what is stored;
//! - only regular files and folders are opened: a FIFO, socket or device
//!   planted in a home is refused, never opened for reading or writing.
//!
//! The operations here block (they are file-system calls); the protocol
//! servers run them on tokio's blocking pool. [`Root::open_file_now`] is
//! the exception: it opens a file only where that cannot wait on a device,
//! and otherwise leaves the open to [`Root::open_file`].

mod attrs;
pub mod budget;
mod error;
mod home;
mod listing;
mod open;
pub mod path;
pub mod rehome;
pub mod scp;
pub mod sftp;
pub mod stdio;

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cap_std::fs::{Dir, DirBuilder, DirBuilderExt as _};
use rustix::fs::{AtFlags, RenameFlags};

use crate::clock::{Clock, SystemClock};

use attrs::fs_stats;
pub use attrs::{Follow, FsStats, SetAttrs, Stat};
pub use error::{Fault, FsError};
use home::walk_home;
pub use home::{BadHome, HomeError, HomeFolder, MAX_HOME_BYTES, MAX_HOME_PART_BYTES, check_home};
pub(crate) use listing::civil_from_days;
pub use listing::{Entry, Listing, mode_string};
pub use open::{OpenHow, in_memory};
pub use path::{MAX_PATH, VPath};

/// Mode bits a client may set: permissions only, never setuid, setgid or
/// sticky.
const MODE_MASK: u32 = 0o777;
/// Mode of a new file when the client asks for none.
const DEFAULT_FILE_MODE: u32 = 0o644;
/// Mode of a new folder when the client asks for none.
const DEFAULT_DIR_MODE: u32 = 0o755;

/// Share of a file system a request that makes the server write many bytes
/// on its own (`copy-data`) leaves free: 1/20 (5 %), and at most
/// [`FREE_SPACE_RESERVE_MAX`].
const FREE_SPACE_RESERVE_DIVISOR: u64 = 20;
/// The reserve's upper bound: 1 GiB.
const FREE_SPACE_RESERVE_MAX: u64 = 1 << 30;

/// Bytes a file written by a client may take between two looks at the
/// file system's free space ([`Root::room_for_write`]): 4 MiB.
pub const ROOM_STEP: u64 = 4 * 1024 * 1024;

/// Room on a home's file system ([`Root::room`]), in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Room {
    /// The file system's size.
    pub size: u64,
    /// Free for the service.
    pub free: u64,
    /// Free for uploads: `free` less the reserve kept for the store.
    pub usable: u64,
}

/// Bytes written to one file by a client, for [`Root::room_for_write`].
#[derive(Debug, Default)]
pub struct Growth(AtomicU64);

/// What a session did, for the log line at its end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Bytes read from files (sent to the client).
    pub bytes_read: u64,
    /// Bytes written to files (received from the client).
    pub bytes_written: u64,
    /// Files opened (for reading or writing; folders not counted).
    pub files_opened: u64,
    /// Requests answered with an error.
    pub failures: u64,
}

/// Counters shared by the tasks of one session.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    files_opened: AtomicU64,
    failures: AtomicU64,
}

impl Counters {
    pub(crate) fn read(&self, n: u64) {
        self.bytes_read.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn written(&self, n: u64) {
        self.bytes_written.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn opened(&self) {
        self.files_opened.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn summary(&self) -> Summary {
        Summary {
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            files_opened: self.files_opened.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }
}

/// A parent folder for an `*at` call: the home itself or one opened in it.
enum Parent<'a> {
    Home(&'a Dir),
    Sub(Dir),
}

impl AsFd for Parent<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Parent::Home(d) => d.as_fd(),
            Parent::Sub(d) => d.as_fd(),
        }
    }
}

/// What an account may do to its files, as this layer enforces it (see
/// the module docs). The caller derives it from its own policy: `auth`
/// from the account and its group, `coffer sftp-server` from its flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// May create, write and rename files.
    pub write: bool,
    /// May delete files and folders, and change or replace a file once
    /// written.
    pub delete: bool,
}

/// One account's home folder: every file operation of a session goes
/// through it.
pub struct Root {
    /// The home folder capability: paths resolve beneath it only.
    dir: Dir,
    /// The account name (shown as the owner in listings).
    account: String,
    /// What the account may do.
    permissions: Access,
    /// For listing dates ("recent" files show the time, older the year).
    clock: Arc<dyn Clock>,
    /// The service's user and group ids: files owned by them are shown
    /// as owned by the account.
    service_ids: (u32, u32),
}

impl std::fmt::Debug for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Root")
            .field("account", &self.account)
            .field("permissions", &self.permissions)
            .finish_non_exhaustive()
    }
}

impl Root {
    /// Opens the folder `home` as given by the operator (`coffer
    /// sftp-server --root`, tests), creating it (and missing parents, mode
    /// 0700) if it does not exist. Accounts' homes open with
    /// [`Root::open_home`].
    pub fn open(home: &Path, account: &str, permissions: Access) -> io::Result<Root> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(home)?;
        let dir = Dir::open_ambient_dir(home, cap_std::ambient_authority())?;
        Ok(Root::with_dir(dir, account, permissions))
    }

    /// Opens an account's home `folder` beneath `files_root`, creating
    /// missing folders (mode 0700) on the way. No symbolic link is followed
    /// at any part: a link (or anything not a folder) on the path refuses
    /// the home with [`HomeError::Link`] ([`HomeError::NotFolder`]).
    pub fn open_home(
        files_root: &Path,
        folder: &HomeFolder,
        account: &str,
        permissions: Access,
    ) -> Result<Root, HomeError> {
        let fd = walk_home(files_root, folder, true)?.ok_or_else(|| HomeError::Io {
            folder: folder.to_string(),
            source: io::Error::from(io::ErrorKind::NotFound),
        })?;
        Ok(Root::with_dir(Dir::from(fd), account, permissions))
    }

    fn with_dir(dir: Dir, account: &str, permissions: Access) -> Root {
        Root {
            dir,
            account: account.to_string(),
            permissions,
            clock: Arc::new(SystemClock),
            service_ids: (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            ),
        }
    }

    /// The account this home belongs to.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// What the account may do.
    pub fn permissions(&self) -> Access {
        self.permissions
    }

    /// Fails with [`FsError::ReadOnly`] unless the account may write.
    pub fn require_write(&self) -> Result<(), FsError> {
        if self.permissions.write {
            Ok(())
        } else {
            Err(FsError::ReadOnly)
        }
    }

    /// Whether the account may write but keeps what it has written (a
    /// `no_delete` account; see the module docs).
    pub fn keeps_files(&self) -> bool {
        self.permissions.write && !self.permissions.delete
    }

    /// Fails unless the account may write and delete.
    pub fn require_delete(&self) -> Result<(), FsError> {
        self.require_write()?;
        if self.permissions.delete {
            Ok(())
        } else {
            Err(FsError::NoDelete)
        }
    }

    /// Creates a folder (mode 0755 unless given).
    pub fn mkdir(&self, p: &VPath, mode: Option<u32>) -> Result<(), FsError> {
        self.require_write()?;
        if p.is_root() {
            return Err(FsError::Io(rustix::io::Errno::EXIST.into()));
        }
        let mut builder = DirBuilder::new();
        builder.mode(mode.unwrap_or(DEFAULT_DIR_MODE) & MODE_MASK);
        self.dir.create_dir_with(p.relative(), &builder)?;
        Ok(())
    }

    /// Removes an empty folder.
    pub fn rmdir(&self, p: &VPath) -> Result<(), FsError> {
        self.require_delete()?;
        if p.is_root() {
            return Err(FsError::Refused("the home folder cannot be removed"));
        }
        self.dir.remove_dir(p.relative())?;
        Ok(())
    }

    /// Removes a file or a symbolic link.
    pub fn remove(&self, p: &VPath) -> Result<(), FsError> {
        self.require_delete()?;
        if p.is_root() {
            return Err(FsError::Refused("the home folder cannot be removed"));
        }
        self.dir.remove_file(p.relative())?;
        Ok(())
    }

    /// Renames `from` to `to`. Without `replace` an existing `to` makes it
    /// fail (SFTP's RENAME); with it `to` is replaced atomically
    /// (posix-rename). Renaming needs the right to delete: an account that
    /// keeps its files renames nothing.
    pub fn rename(&self, from: &VPath, to: &VPath, replace: bool) -> Result<(), FsError> {
        self.require_delete()?;
        self.rename_unchecked(from, to, replace)
    }

    /// Puts a file this caller has just made (`made`, open, at `temp`) in
    /// place at `target`, as an upload's last step; replacing an existing
    /// `target` (only with `replace`) needs the right to delete. The file at `temp` must be
    /// `made` itself, so this never moves another file.
    pub fn place_made(
        &self,
        made: &std::fs::File,
        temp: &VPath,
        target: &VPath,
        replace: bool,
    ) -> Result<(), FsError> {
        self.require_write()?;
        self.require_same(made, temp)?;
        self.rename_unchecked(temp, target, replace)
    }

    /// Removes a file this caller has just made (`made`, open, at `temp`)
    /// and not put in place, e.g. an upload that failed half way. Allowed
    /// to an account that keeps its files: this file was never written.
    pub fn discard_made(&self, made: &std::fs::File, temp: &VPath) -> Result<(), FsError> {
        self.require_write()?;
        self.require_same(made, temp)?;
        let (parent, name) = self.parent(temp)?;
        rustix::fs::unlinkat(&parent, name, AtFlags::empty())?;
        Ok(())
    }

    /// Fails unless `p` (not followed) is the open file `file`.
    fn require_same(&self, file: &std::fs::File, p: &VPath) -> Result<(), FsError> {
        let st = self.stat(p, Follow::No)?;
        let meta = file.metadata()?;
        if st.is_file() && (st.dev, st.ino) == (meta.dev(), meta.ino()) {
            Ok(())
        } else {
            Err(FsError::Refused("the file changed while it was uploaded"))
        }
    }

    fn rename_unchecked(&self, from: &VPath, to: &VPath, replace: bool) -> Result<(), FsError> {
        if from.is_root() || to.is_root() {
            return Err(FsError::Refused("the home folder cannot be renamed"));
        }
        let (from_parent, from_name) = self.parent(from)?;
        let (to_parent, to_name) = self.parent(to)?;
        match rustix::fs::renameat_with(
            &from_parent,
            from_name,
            &to_parent,
            to_name,
            RenameFlags::NOREPLACE,
        ) {
            Ok(()) => Ok(()),
            Err(e) if e == rustix::io::Errno::EXIST => {
                if !replace {
                    return Err(FsError::Io(e.into()));
                }
                self.require_delete()?;
                rustix::fs::renameat(&from_parent, from_name, &to_parent, to_name)?;
                Ok(())
            }
            // A file system without RENAME_NOREPLACE: check, then rename
            // (a race here can only replace a file inside the same home).
            Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
                let exists =
                    rustix::fs::statat(&to_parent, to_name, AtFlags::SYMLINK_NOFOLLOW).is_ok();
                if exists {
                    if !replace {
                        return Err(FsError::Io(rustix::io::Errno::EXIST.into()));
                    }
                    self.require_delete()?;
                }
                rustix::fs::renameat(&from_parent, from_name, &to_parent, to_name)?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a symbolic link at `link` pointing to `target` (see the
    /// module docs for absolute targets).
    pub fn symlink(&self, target: &[u8], link: &VPath) -> Result<(), FsError> {
        self.require_write()?;
        path::check_raw(target)?;
        if target.is_empty() {
            return Err(FsError::Invalid("empty link target"));
        }
        if link.is_root() {
            return Err(FsError::Io(rustix::io::Errno::EXIST.into()));
        }
        let stored = if target.first() == Some(&b'/') {
            let absolute = VPath::parse(target)?;
            let from = link.parent().unwrap_or_else(VPath::root);
            absolute.relative_from(&from)
        } else {
            target.to_vec()
        };
        self.dir
            .symlink(OsStr::from_bytes(&stored), link.relative())?;
        Ok(())
    }

    /// The stored target of a symbolic link.
    pub fn read_link(&self, p: &VPath) -> Result<Vec<u8>, FsError> {
        if p.is_root() {
            return Err(FsError::Io(rustix::io::Errno::INVAL.into()));
        }
        let target = self.dir.read_link_contents(p.relative())?;
        Ok(target.into_os_string().into_vec())
    }

    /// Creates a hard link `to` for the file `from`. A link never replaces
    /// a name, so an account that keeps its files may make one (the file
    /// stays as immutable under its new name as under its old one).
    pub fn hard_link(&self, from: &VPath, to: &VPath) -> Result<(), FsError> {
        self.require_write()?;
        if from.is_root() || to.is_root() {
            return Err(FsError::Refused("the home folder cannot be linked"));
        }
        self.dir
            .hard_link(from.relative(), &self.dir, to.relative())?;
        Ok(())
    }

    /// The canonical virtual path of `p`: symbolic links inside the home
    /// resolved; the last component may be missing.
    pub fn real_path(&self, p: &VPath) -> Result<VPath, FsError> {
        if p.is_root() {
            return Ok(VPath::root());
        }
        match self.dir.canonicalize(p.relative()) {
            Ok(canonical) => from_canonical(&canonical),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Only the last component may be missing (as in OpenSSH).
                let parent = p.parent().unwrap_or_else(VPath::root);
                let name = p.file_name().unwrap_or_default();
                let parent = if parent.is_root() {
                    parent
                } else {
                    from_canonical(&self.dir.canonicalize(parent.relative())?)?
                };
                // The parent must be a folder.
                if !self.stat(&parent, Follow::Yes)?.is_dir() {
                    return Err(FsError::Io(rustix::io::Errno::NOTDIR.into()));
                }
                parent.child(name)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// File-system figures for the file system holding `p`.
    pub fn statvfs(&self, p: &VPath) -> Result<FsStats, FsError> {
        let st = if self.stat(p, Follow::Yes)?.is_dir() {
            rustix::fs::fstatvfs(&self.dir.open_dir(p.relative())?)?
        } else {
            rustix::fs::fstatvfs(&self.open_file(p, &OpenHow::default())?)?
        };
        Ok(fs_stats(&st))
    }

    /// Fails with "No space left on device" unless `growth` more bytes
    /// fit on the file system holding `fd` and still leave its reserve
    /// free (5 % of its size, at most 1 GiB). For the requests where one
    /// message makes the server write many bytes (`copy-data`): they are
    /// refused before anything is written, and never fill the disk.
    pub fn require_room<Fd: AsFd>(&self, fd: Fd, growth: u64) -> Result<(), FsError> {
        if growth == 0 {
            return Ok(());
        }
        let st = rustix::fs::fstatvfs(fd)?;
        let size = st.f_blocks.saturating_mul(st.f_frsize);
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        let reserve = (size / FREE_SPACE_RESERVE_DIVISOR).min(FREE_SPACE_RESERVE_MAX);
        if growth > free.saturating_sub(reserve) {
            return Err(FsError::Io(rustix::io::Errno::NOSPC.into()));
        }
        Ok(())
    }

    /// Fails with "No space left on device" when `n` more bytes written
    /// by a client to `fd` could eat into the file system's reserve (see
    /// [`Root::require_room`]): uploads over SFTP, SCP and HTTPS fill a
    /// disk up to the reserve and no further, so the store and the audit
    /// trail on it keep room. The file system is asked on a file's first
    /// write and then once per [`ROOM_STEP`] bytes, for room for a whole
    /// step, so each writer stays within one step of its last answer.
    /// Overwritten bytes count as growth: near the reserve, editing a file
    /// in place is refused too.
    pub fn room_for_write<Fd: AsFd>(&self, growth: &Growth, fd: Fd, n: u64) -> Result<(), FsError> {
        let before = growth.0.fetch_add(n, Ordering::Relaxed);
        let after = before.saturating_add(n);
        if (before == 0 || before / ROOM_STEP != after / ROOM_STEP)
            && let Err(e) = self.require_room(fd, ROOM_STEP.max(n))
        {
            // Not written: the next write asks again.
            growth.0.fetch_sub(n, Ordering::Relaxed);
            return Err(e);
        }
        Ok(())
    }

    /// Room on the file system holding the home: its size, its free
    /// bytes, and what uploads may still fill (free less the reserve of
    /// [`Root::require_room`]).
    pub fn room(&self) -> Result<Room, FsError> {
        let st = rustix::fs::fstatvfs(&self.dir)?;
        let size = st.f_blocks.saturating_mul(st.f_frsize);
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        let reserve = (size / FREE_SPACE_RESERVE_DIVISOR).min(FREE_SPACE_RESERVE_MAX);
        Ok(Room {
            size,
            free,
            usable: free.saturating_sub(reserve),
        })
    }

    /// File-system figures for an open file or folder.
    pub fn fstatvfs<Fd: AsFd>(&self, fd: Fd) -> Result<FsStats, FsError> {
        Ok(fs_stats(&rustix::fs::fstatvfs(fd)?))
    }

    /// The parent folder of `p` opened inside the home, and `p`'s name.
    fn parent<'a>(&self, p: &'a VPath) -> Result<(Parent<'_>, &'a OsStr), FsError> {
        let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
            return Err(FsError::Refused("the home folder itself"));
        };
        let dir = if parent.is_root() {
            Parent::Home(&self.dir)
        } else {
            Parent::Sub(self.dir.open_dir(parent.relative())?)
        };
        Ok((dir, OsStr::from_bytes(name)))
    }
}

fn from_canonical(canonical: &Path) -> Result<VPath, FsError> {
    let bytes = canonical.as_os_str().as_bytes();
    let mut raw = Vec::with_capacity(bytes.len() + 1);
    raw.push(b'/');
    raw.extend_from_slice(bytes);
    VPath::parse(&raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homes_open_beneath_the_files_root_and_never_through_a_link() {
        let t = tempfile::tempdir().unwrap();
        let files = t.path().join("files");
        std::fs::create_dir(&files).unwrap();
        let home = |s: &str| HomeFolder::parse(s).unwrap();

        // Checking creates nothing; opening creates every part, mode 0700.
        check_home(&files, &home("a/b/c")).unwrap();
        assert!(!files.join("a").exists());
        let root = Root::open_home(&files, &home("a/b/c"), "c", FULL).unwrap();
        assert_eq!(root.account(), "c");
        let mode = std::fs::metadata(files.join("a/b/c")).unwrap().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");

        // A link at any part, even one pointing inside the files root.
        std::os::unix::fs::symlink("a", files.join("l")).unwrap();
        std::os::unix::fs::symlink("../..", files.join("a/b/up")).unwrap();
        std::os::unix::fs::symlink("/nowhere", files.join("a/dangling")).unwrap();
        for (folder, part) in [
            ("l", "l"),
            ("l/b", "l"),
            ("a/b/up", "a/b/up"),
            ("a/b/up/x", "a/b/up"),
            ("a/dangling/x", "a/dangling"),
        ] {
            for err in [
                check_home(&files, &home(folder)).unwrap_err(),
                Root::open_home(&files, &home(folder), "x", FULL).unwrap_err(),
            ] {
                assert!(err.is_refusal(), "{folder}: {err}");
                assert!(
                    matches!(&err, HomeError::Link { part: p, .. } if p == part),
                    "{folder}: {err}"
                );
                assert!(err.to_string().contains("symbolic link"), "{err}");
            }
        }
        assert!(!t.path().join("x").exists() && !files.join("nowhere").exists());

        // A file where a folder should be.
        std::fs::write(files.join("a/f"), b"x").unwrap();
        let err = Root::open_home(&files, &home("a/f/g"), "g", FULL).unwrap_err();
        assert!(matches!(err, HomeError::NotFolder { .. }), "{err}");
        assert!(err.is_refusal());
    }

    pub(super) const FULL: Access = Access {
        write: true,
        delete: true,
    };
}
