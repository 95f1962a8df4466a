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
//! - a read-only account ([`Permissions::write`] false) is refused every
//!   change with [`FsError::ReadOnly`] ("read-only account");
//! - an account without [`Permissions::delete`] (`no_delete`) keeps every
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

pub mod budget;
pub mod path;
pub mod rehome;
pub mod scp;
pub mod sftp;
pub mod stdio;

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cap_std::fs::{
    Dir, DirBuilder, DirBuilderExt as _, MetadataExt as _, OpenOptions, OpenOptionsExt as _,
    PermissionsExt as _,
};
use rustix::fs::{AtFlags, RenameFlags, Timespec, Timestamps};

use crate::auth::Permissions;
use crate::auth::accounts::HomeFolder;
use crate::clock::{Clock, SystemClock};

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

/// Bytes written to one file by a client, for [`Root::room_for_write`].
#[derive(Debug, Default)]
pub struct Growth(AtomicU64);

/// Why a file operation failed. The text is fit for the client: it names
/// only virtual paths and never the host's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FsError {
    /// The account may read but not change anything.
    #[error("read-only account")]
    ReadOnly,
    /// The account may not delete, change, replace or rename an existing
    /// file (see the module docs).
    #[error("deleting or changing existing files is not allowed for this account")]
    NoDelete,
    /// The path holds a NUL byte.
    #[error("path contains a NUL byte")]
    NulInPath,
    /// The path is longer than [`MAX_PATH`].
    #[error("path is longer than 4096 bytes")]
    PathTooLong,
    /// A symbolic link led outside the home folder.
    #[error("Permission denied (outside the home folder)")]
    Outside,
    /// Only regular files can be opened for reading or writing.
    #[error("not a regular file")]
    NotRegular,
    /// The request is refused by policy (e.g. removing the home itself).
    #[error("{0}")]
    Refused(&'static str),
    /// The request does not make sense.
    #[error("{0}")]
    Invalid(&'static str),
    /// The operation is not supported here.
    #[error("{0}")]
    Unsupported(&'static str),
    /// The file system said no.
    #[error("{}", os_text(.0))]
    Io(io::Error),
}

/// How a failure is classified for the wire (SFTP status codes, SCP texts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The file or a folder on the way does not exist.
    NoSuchFile,
    /// Not allowed: policy, file mode, or outside the home.
    PermissionDenied,
    /// Any other failure.
    Failure,
    /// The request was malformed (bad path, bad argument).
    BadMessage,
    /// Not supported.
    Unsupported,
}

impl FsError {
    /// The class of this failure.
    pub fn fault(&self) -> Fault {
        match self {
            FsError::ReadOnly | FsError::NoDelete | FsError::Outside | FsError::Refused(_) => {
                Fault::PermissionDenied
            }
            FsError::NulInPath | FsError::PathTooLong | FsError::Invalid(_) => Fault::BadMessage,
            FsError::NotRegular => Fault::Failure,
            FsError::Unsupported(_) => Fault::Unsupported,
            FsError::Io(e) => match e.raw_os_error() {
                Some(code) => errno_fault(code),
                None => match e.kind() {
                    io::ErrorKind::NotFound => Fault::NoSuchFile,
                    io::ErrorKind::PermissionDenied => Fault::PermissionDenied,
                    io::ErrorKind::InvalidInput => Fault::BadMessage,
                    io::ErrorKind::Unsupported => Fault::Unsupported,
                    _ => Fault::Failure,
                },
            },
        }
    }
}

impl From<io::Error> for FsError {
    fn from(e: io::Error) -> Self {
        // cap-std reports an escape (`..` above the capability, an absolute
        // symlink) as a PermissionDenied error of its own, without errno.
        if e.raw_os_error().is_none() && e.kind() == io::ErrorKind::PermissionDenied {
            return FsError::Outside;
        }
        // openat2 answers EXDEV when resolution would cross the capability.
        if e.raw_os_error() == Some(libc_errno::EXDEV) {
            return FsError::Outside;
        }
        FsError::Io(e)
    }
}

impl From<rustix::io::Errno> for FsError {
    fn from(e: rustix::io::Errno) -> Self {
        FsError::from(io::Error::from(e))
    }
}

/// errno values this module looks at (from rustix, which knows them).
mod libc_errno {
    pub const EXDEV: i32 = rustix::io::Errno::XDEV.raw_os_error();
}

/// Path resolution for the opens that must not wait: cap-std's
/// confinement (`openat2` beneath the home, no `/proc` magic links), and
/// only what the kernel's lookup cache already holds.
const CACHED: rustix::fs::ResolveFlags = rustix::fs::ResolveFlags::BENEATH
    .union(rustix::fs::ResolveFlags::NO_MAGICLINKS)
    .union(rustix::fs::ResolveFlags::CACHED);

fn is_regular(st: &rustix::fs::Stat) -> bool {
    st.st_mode & S_IFMT == S_IFREG
}

/// Whether `fd` lives on a file system held in memory (tmpfs, ramfs),
/// whose I/O never waits on a device.
pub fn in_memory<Fd: AsFd>(fd: Fd) -> bool {
    const TMPFS_MAGIC: u64 = 0x0102_1994;
    const RAMFS_MAGIC: u64 = 0x8584_58f6;
    rustix::fs::fstatfs(fd).is_ok_and(|st| matches!(st.f_type as u64, TMPFS_MAGIC | RAMFS_MAGIC))
}

fn errno_fault(code: i32) -> Fault {
    use rustix::io::Errno;
    let e = Errno::from_raw_os_error(code);
    if e == Errno::NOENT || e == Errno::NOTDIR || e == Errno::BADF || e == Errno::LOOP {
        Fault::NoSuchFile
    } else if e == Errno::PERM || e == Errno::ACCESS || e == Errno::FAULT || e == Errno::XDEV {
        Fault::PermissionDenied
    } else if e == Errno::NAMETOOLONG || e == Errno::INVAL {
        Fault::BadMessage
    } else if e == Errno::NOSYS || e == Errno::OPNOTSUPP {
        Fault::Unsupported
    } else {
        Fault::Failure
    }
}

/// The system's text for an error, without Rust's " (os error N)" suffix,
/// and never a custom message (which could carry a host path).
fn os_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let text = io::Error::from_raw_os_error(code).to_string();
            match text.find(" (os error") {
                Some(cut) => text.get(..cut).unwrap_or(&text).to_string(),
                None => text,
            }
        }
        None => match e.kind() {
            io::ErrorKind::NotFound => "No such file or directory".into(),
            io::ErrorKind::PermissionDenied => "Permission denied".into(),
            io::ErrorKind::InvalidInput => "Invalid argument".into(),
            io::ErrorKind::AlreadyExists => "File exists".into(),
            _ => "Input/output error".into(),
        },
    }
}

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

/// Whether a path operation follows a symbolic link in the last component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Follow {
    /// Act on what the link points to (stat, setstat, open).
    Yes,
    /// Act on the link itself (lstat, lsetstat, readlink).
    No,
}

/// File attributes as a client sees them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    /// Size in bytes.
    pub size: u64,
    /// Owner's user id.
    pub uid: u32,
    /// Owner's group id.
    pub gid: u32,
    /// `st_mode`: type and permission bits.
    pub mode: u32,
    /// Last access, seconds since the epoch.
    pub atime: i64,
    /// Last modification, seconds since the epoch.
    pub mtime: i64,
    /// Number of hard links.
    pub nlink: u64,
    /// The device holding it (with `ino`, its identity).
    pub dev: u64,
    /// Its inode number.
    pub ino: u64,
}

const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;

impl Stat {
    pub(crate) fn from_cap(m: &cap_std::fs::Metadata) -> Self {
        Stat {
            size: m.size(),
            uid: m.uid(),
            gid: m.gid(),
            mode: m.mode(),
            atime: m.atime(),
            mtime: m.mtime(),
            nlink: m.nlink(),
            dev: m.dev(),
            ino: m.ino(),
        }
    }

    /// Attributes of an open file.
    pub fn from_std(m: &std::fs::Metadata) -> Self {
        Stat {
            size: m.size(),
            uid: m.uid(),
            gid: m.gid(),
            mode: m.mode(),
            atime: m.atime(),
            mtime: m.mtime(),
            nlink: m.nlink(),
            dev: m.dev(),
            ino: m.ino(),
        }
    }

    /// Whether this is a folder.
    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }

    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }

    /// Whether this is a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.mode & S_IFMT == S_IFLNK
    }
}

/// Attributes a client asks to change; `None` leaves one as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetAttrs {
    /// Truncate or extend to this size.
    pub size: Option<u64>,
    /// Permission bits (special bits are stripped).
    pub mode: Option<u32>,
    /// Access and modification times, seconds since the epoch.
    pub times: Option<(i64, i64)>,
    /// Owner and group: accepted and ignored (see the module docs).
    pub owner: Option<(u32, u32)>,
}

/// How to open a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenHow {
    /// For reading.
    pub read: bool,
    /// For writing.
    pub write: bool,
    /// Every write goes to the end.
    pub append: bool,
    /// Create it if missing.
    pub create: bool,
    /// Cut it to size 0.
    pub truncate: bool,
    /// Fail if it exists (with `create`).
    pub exclusive: bool,
    /// Permission bits of a new file (default 0644; special bits stripped).
    pub mode: Option<u32>,
}

impl OpenHow {
    /// Whether opening this way changes anything.
    pub fn modifies(&self) -> bool {
        self.write || self.append || self.create || self.truncate
    }
}

/// File-system figures of `statvfs`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsStats {
    /// File system block size.
    pub bsize: u64,
    /// Fundamental block size.
    pub frsize: u64,
    /// Size in `frsize` units.
    pub blocks: u64,
    /// Free blocks.
    pub bfree: u64,
    /// Free blocks for unprivileged users.
    pub bavail: u64,
    /// Inodes.
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// Free inodes for unprivileged users.
    pub favail: u64,
    /// Mount flags: 1 read-only, 2 no-setuid.
    pub flag: u64,
    /// Longest file name.
    pub namemax: u64,
}

/// One entry of a folder listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The file name (one component).
    pub name: Vec<u8>,
    /// Its attributes (of a link itself, not of its target).
    pub stat: Stat,
}

/// An open folder being listed in batches.
pub struct Listing {
    dir: Dir,
    path: VPath,
    entries: cap_std::fs::ReadDir,
    /// 0: `.` next, 1: `..` next, 2: the folder's own entries.
    dots: u8,
}

impl std::fmt::Debug for Listing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listing").field("path", &self.path).finish()
    }
}

impl Listing {
    /// The folder's virtual path.
    pub fn path(&self) -> &VPath {
        &self.path
    }

    /// The open folder (for fstat, fchmod).
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// The next entries: at most `max` and about `max_bytes` of names; an
    /// empty batch means the end. `.` and `..` come first when `dots` is
    /// set (`..` of the home is the home itself: nothing above it shows).
    pub fn next_batch(
        &mut self,
        root: &Root,
        dots: bool,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<Entry>, FsError> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        if self.dots < 2 {
            if dots {
                let here = Stat::from_cap(&self.dir.dir_metadata()?);
                out.push(Entry {
                    name: b".".to_vec(),
                    stat: here,
                });
                let up = match self.path.parent() {
                    Some(parent) => root.stat(&parent, Follow::Yes).unwrap_or(here),
                    None => here,
                };
                out.push(Entry {
                    name: b"..".to_vec(),
                    stat: up,
                });
            }
            self.dots = 2;
        }
        while out.len() < max && bytes < max_bytes {
            let Some(entry) = self.entries.next() else {
                break;
            };
            let Ok(entry) = entry else { continue };
            let name = entry.file_name().into_vec();
            if !path::is_plain_name(&name) {
                continue;
            }
            // An entry that vanished since the listing began is skipped,
            // as OpenSSH does.
            let Ok(meta) = entry.metadata() else { continue };
            bytes += 2 * name.len() + 100;
            out.push(Entry {
                name,
                stat: Stat::from_cap(&meta),
            });
        }
        Ok(out)
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
fn walk_home(
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

/// One account's home folder: every file operation of a session goes
/// through it.
pub struct Root {
    /// The home folder capability: paths resolve beneath it only.
    dir: Dir,
    /// The account name (shown as the owner in listings).
    account: String,
    /// What the account may do.
    permissions: Permissions,
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
    pub fn open(home: &Path, account: &str, permissions: Permissions) -> io::Result<Root> {
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
        permissions: Permissions,
    ) -> Result<Root, HomeError> {
        let fd = walk_home(files_root, folder, true)?.ok_or_else(|| HomeError::Io {
            folder: folder.to_string(),
            source: io::Error::from(io::ErrorKind::NotFound),
        })?;
        Ok(Root::with_dir(Dir::from(fd), account, permissions))
    }

    fn with_dir(dir: Dir, account: &str, permissions: Permissions) -> Root {
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

    /// Uses `clock` for listing dates instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The account this home belongs to.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// What the account may do.
    pub fn permissions(&self) -> Permissions {
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

    /// Attributes of `p`.
    pub fn stat(&self, p: &VPath, follow: Follow) -> Result<Stat, FsError> {
        let meta = if p.is_root() {
            self.dir.dir_metadata()?
        } else {
            match follow {
                Follow::Yes => self.dir.metadata(p.relative())?,
                Follow::No => self.dir.symlink_metadata(p.relative())?,
            }
        };
        Ok(Stat::from_cap(&meta))
    }

    /// Opens a regular file.
    ///
    /// An account that keeps its files (no `delete` permission) opens only
    /// new files for writing: an existing file is refused with
    /// [`FsError::NoDelete`], and a new one is made exclusively, so a file
    /// appearing meanwhile is never opened for writing either.
    pub fn open_file(&self, p: &VPath, how: &OpenHow) -> Result<std::fs::File, FsError> {
        let keep = how.modifies() && self.keeps_files();
        if how.modifies() {
            self.require_write()?;
        }
        // Refuse anything but a regular file before opening it (opening a
        // FIFO or a device can block or have side effects) ...
        match self.stat(p, Follow::Yes) {
            Ok(st) if st.is_dir() => return Err(FsError::Io(rustix::io::Errno::ISDIR.into())),
            Ok(st) if !st.is_file() => return Err(FsError::NotRegular),
            Ok(_) if keep => return Err(FsError::NoDelete),
            Ok(_) => {}
            Err(FsError::Io(e)) if e.kind() == io::ErrorKind::NotFound && how.create => {}
            Err(e) => return Err(e),
        }
        let mut options = OpenOptions::new();
        let write = how.write || ((how.create || how.truncate) && !how.append);
        options
            .read(how.read || !(write || how.append))
            .write(write)
            .append(how.append)
            .truncate(how.truncate)
            .mode(how.mode.unwrap_or(DEFAULT_FILE_MODE) & MODE_MASK)
            // ... and open without blocking on a FIFO swapped in meanwhile.
            .custom_flags(
                (rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY).bits() as i32,
            );
        if how.create && (how.exclusive || keep) {
            options.create_new(true);
        } else if how.create {
            options.create(true);
        }
        let file = match self.dir.open_with(p.relative(), &options) {
            Ok(file) => file.into_std(),
            // A name that appeared since the check (or a link to a missing
            // file) is not this account's to write.
            Err(e) if keep && !how.exclusive && e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(FsError::NoDelete);
            }
            Err(e) => return Err(e.into()),
        };
        // ... and check again what was opened.
        if !file.metadata()?.is_file() {
            return Err(FsError::NotRegular);
        }
        // Regular files ignore O_NONBLOCK; clear it anyway for clarity.
        let flags = rustix::fs::fcntl_getfl(&file)?;
        rustix::fs::fcntl_setfl(&file, flags - rustix::fs::OFlags::NONBLOCK)?;
        Ok(file)
    }

    /// Opens a regular file at once when that cannot wait on a device, for
    /// a caller that must not block (the SFTP server's connection thread).
    ///
    /// `None` when the open might wait, and whenever anything is not as
    /// expected: the caller then runs [`Root::open_file`] on the blocking
    /// pool, which answers (or reports the error) as always. A `Some` is a
    /// file [`Root::open_file`] would have opened. Two cases qualify:
    /// - reading a file whose whole path is in the kernel's lookup cache:
    ///   `openat2` with `RESOLVE_CACHED` under cap-std's own confinement
    ///   (`RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`), first as `O_PATH` to
    ///   see a regular file without opening it, then for reading; the
    ///   kernel answers `EAGAIN` instead of reading a folder from a disk
    ///   (io_uring opens files inline the same way);
    /// - any open in a folder that is held in memory (tmpfs, ramfs) and
    ///   found from the cache, of a name that is not a symbolic link nor
    ///   a mount point: making or truncating a file there waits on no
    ///   device.
    pub fn open_file_now(&self, p: &VPath, how: &OpenHow) -> Option<std::fs::File> {
        if p.is_root() {
            return None;
        }
        if !how.modifies() {
            return self.open_cached_for_reading(p);
        }
        if self.require_write().is_err() || !self.in_memory_folder(p) {
            return None;
        }
        self.open_file(p, how).ok()
    }

    fn open_cached_for_reading(&self, p: &VPath) -> Option<std::fs::File> {
        use rustix::fs::{Mode, OFlags, fcntl_getfl, fcntl_setfl, fstat, openat2};
        let rel = p.relative();
        let probe = openat2(
            &self.dir,
            rel,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            CACHED,
        )
        .ok()?;
        let seen = fstat(&probe).ok()?;
        if !is_regular(&seen) {
            return None;
        }
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
        let fd = openat2(&self.dir, rel, flags, Mode::empty(), CACHED).ok()?;
        let opened = fstat(&fd).ok()?;
        // The same regular file as the probe saw, not one swapped in.
        if !is_regular(&opened) || (opened.st_dev, opened.st_ino) != (seen.st_dev, seen.st_ino) {
            return None;
        }
        let flags = fcntl_getfl(&fd).ok()?;
        fcntl_setfl(&fd, flags - OFlags::NONBLOCK).ok()?;
        Some(std::fs::File::from(fd))
    }

    /// Whether `p`'s folder is held in memory and found from the cache,
    /// and `p` is missing there or a regular file on the same file system.
    fn in_memory_folder(&self, p: &VPath) -> bool {
        use rustix::fs::{AtFlags, Mode, OFlags, fstat, openat2, statat};
        let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
            return false;
        };
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let Ok(folder) = openat2(&self.dir, parent.relative(), flags, Mode::empty(), CACHED) else {
            return false;
        };
        if !in_memory(&folder) {
            return false;
        }
        let Ok(dev) = fstat(&folder).map(|st| st.st_dev) else {
            return false;
        };
        match statat(&folder, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => is_regular(&st) && st.st_dev == dev,
            Err(e) => e == rustix::io::Errno::NOENT,
        }
    }

    /// Opens a folder for listing.
    pub fn open_dir(&self, p: &VPath) -> Result<Listing, FsError> {
        let dir = self.dir.open_dir(p.relative())?;
        let entries = dir.entries()?;
        Ok(Listing {
            dir,
            path: p.clone(),
            entries,
            dots: 0,
        })
    }

    /// Changes attributes of `p` (through a symbolic link when `follow`).
    pub fn set_attrs(&self, p: &VPath, follow: Follow, attrs: &SetAttrs) -> Result<(), FsError> {
        self.require_write()?;
        if let Some(size) = attrs.size {
            if follow == Follow::No && self.stat(p, Follow::No)?.is_symlink() {
                return Err(FsError::Unsupported("a symbolic link has no size to set"));
            }
            let file = self.open_file(
                p,
                &OpenHow {
                    write: true,
                    ..OpenHow::default()
                },
            )?;
            file.set_len(size)?;
        }
        if let Some(mode) = attrs.mode {
            if follow == Follow::No && self.stat(p, Follow::No)?.is_symlink() {
                return Err(FsError::Unsupported(
                    "a symbolic link has no mode of its own",
                ));
            }
            self.dir.set_permissions(
                p.relative(),
                cap_std::fs::Permissions::from_mode(mode & MODE_MASK),
            )?;
        }
        if let Some((atime, mtime)) = attrs.times {
            let times = timestamps(atime, mtime);
            // Resolve links inside the home first, then set the times of
            // the last component without following it: nothing on the way
            // is followed outside the capability.
            let target = match follow {
                Follow::Yes => self.real_path(p)?,
                Follow::No => p.clone(),
            };
            if target.is_root() {
                rustix::fs::futimens(&self.dir, &times)?;
            } else {
                let (parent, name) = self.parent(&target)?;
                rustix::fs::utimensat(&parent, name, &times, AtFlags::SYMLINK_NOFOLLOW)?;
            }
        }
        Ok(())
    }

    /// Changes attributes of an open file or folder.
    /// An account that keeps its files sets the size only through a
    /// handle open for writing (which it can hold only on a file it is
    /// making).
    pub fn set_fd_attrs<Fd: AsFd>(&self, fd: Fd, attrs: &SetAttrs) -> Result<(), FsError> {
        self.require_write()?;
        if let Some(size) = attrs.size {
            if self.keeps_files() {
                let mode = rustix::fs::fcntl_getfl(&fd)? & rustix::fs::OFlags::RWMODE;
                if mode == rustix::fs::OFlags::RDONLY {
                    return Err(FsError::NoDelete);
                }
            }
            rustix::fs::ftruncate(&fd, size)?;
        }
        if let Some(mode) = attrs.mode {
            rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(mode & MODE_MASK))?;
        }
        if let Some((atime, mtime)) = attrs.times {
            rustix::fs::futimens(&fd, &timestamps(atime, mtime))?;
        }
        Ok(())
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

    /// File-system figures for an open file or folder.
    pub fn fstatvfs<Fd: AsFd>(&self, fd: Fd) -> Result<FsStats, FsError> {
        Ok(fs_stats(&rustix::fs::fstatvfs(fd)?))
    }

    /// An `ls -l` line for a listing, as OpenSSH's sftp-server writes it:
    /// `-rw-r--r--    1 alice    alice        1234 Jan  5 12:00 name`.
    pub fn long_name(&self, name: &[u8], st: &Stat) -> Vec<u8> {
        let owner = if st.uid == self.service_ids.0 {
            self.account.clone()
        } else {
            st.uid.to_string()
        };
        let group = if st.gid == self.service_ids.1 {
            self.account.clone()
        } else {
            st.gid.to_string()
        };
        let now = i64::try_from(self.clock.now()).unwrap_or(i64::MAX);
        let date = ls_date(st.mtime, now);
        let mut line = format!(
            "{} {:>3} {:<8} {:<8} {:>8} {} ",
            mode_string(st.mode),
            st.nlink,
            owner,
            group,
            st.size,
            date
        )
        .into_bytes();
        line.extend_from_slice(name);
        line
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

fn timestamps(atime: i64, mtime: i64) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: atime,
            tv_nsec: 0,
        },
        last_modification: Timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        },
    }
}

fn fs_stats(st: &rustix::fs::StatVfs) -> FsStats {
    let mut flag = 0;
    if st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
        flag |= 1;
    }
    if st.f_flag.contains(rustix::fs::StatVfsMountFlags::NOSUID) {
        flag |= 2;
    }
    FsStats {
        bsize: st.f_bsize,
        frsize: st.f_frsize,
        blocks: st.f_blocks,
        bfree: st.f_bfree,
        bavail: st.f_bavail,
        files: st.f_files,
        ffree: st.f_ffree,
        favail: st.f_favail,
        flag,
        namemax: st.f_namemax,
    }
}

/// `ls`'s mode column, e.g. `drwxr-xr-x`.
pub fn mode_string(mode: u32) -> String {
    let kind = match mode & S_IFMT {
        S_IFDIR => 'd',
        S_IFLNK => 'l',
        0o010_000 => 'p',
        0o140_000 => 's',
        0o020_000 => 'c',
        0o060_000 => 'b',
        _ => '-',
    };
    let bit = |mask: u32, c: char| if mode & mask != 0 { c } else { '-' };
    let special = |exec: u32, special: u32, on: char, off: char| match (
        mode & exec != 0,
        mode & special != 0,
    ) {
        (true, true) => on,
        (false, true) => off,
        (true, false) => 'x',
        (false, false) => '-',
    };
    [
        kind,
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        special(0o100, 0o4000, 's', 'S'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        special(0o010, 0o2000, 's', 'S'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        special(0o001, 0o1000, 't', 'T'),
    ]
    .iter()
    .collect()
}

/// `ls`'s date column in UTC: `Jan  5 12:00` within the last six months,
/// else `Jan  5  2024`.
fn ls_date(mtime: i64, now: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = mtime.div_euclid(86_400);
    let secs = mtime.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let month = usize::try_from(m.saturating_sub(1))
        .ok()
        .and_then(|i| MONTHS.get(i))
        .copied()
        .unwrap_or("???");
    let recent = now.saturating_sub(365 * 86_400 / 2) < mtime && mtime <= now;
    if recent {
        format!("{month} {d:>2} {:02}:{:02}", secs / 3600, secs % 3600 / 60)
    } else {
        format!("{month} {d:>2}  {y}")
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_strings() {
        assert_eq!(mode_string(0o100_644), "-rw-r--r--");
        assert_eq!(mode_string(0o040_755), "drwxr-xr-x");
        assert_eq!(mode_string(0o120_777), "lrwxrwxrwx");
        assert_eq!(mode_string(0o104_755), "-rwsr-xr-x");
        assert_eq!(mode_string(0o041_777), "drwxrwxrwt");
        assert_eq!(mode_string(0o102_644), "-rw-r-Sr--");
    }

    #[test]
    fn dates() {
        // 2024-01-05 12:34:56 UTC
        let t = 1_704_458_096;
        assert_eq!(ls_date(t, t + 60), "Jan  5 12:34");
        assert_eq!(ls_date(t, t + 400 * 86_400), "Jan  5  2024");
        assert_eq!(ls_date(0, 10), "Jan  1 00:00");
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn errors_classify_and_hide_host_details() {
        let e = FsError::from(io::Error::from_raw_os_error(2));
        assert_eq!(e.fault(), Fault::NoSuchFile);
        assert_eq!(e.to_string(), "No such file or directory");
        let escape = FsError::from(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "a path led outside of the filesystem",
        ));
        assert!(matches!(escape, FsError::Outside));
        assert_eq!(escape.fault(), Fault::PermissionDenied);
        let custom = FsError::Io(io::Error::other("/srv/coffer/homes/alice/x"));
        assert!(!custom.to_string().contains("/srv"));
        assert_eq!(FsError::ReadOnly.to_string(), "read-only account");
    }

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

    const FULL: Permissions = Permissions {
        write: true,
        delete: true,
    };

    fn vp(s: &str) -> VPath {
        VPath::parse(s.as_bytes()).unwrap()
    }

    fn read_how() -> OpenHow {
        OpenHow {
            read: true,
            ..OpenHow::default()
        }
    }

    fn make_how(exclusive: bool) -> OpenHow {
        OpenHow {
            write: true,
            create: true,
            truncate: !exclusive,
            exclusive,
            ..OpenHow::default()
        }
    }

    /// A home with a file, a folder, links in and out, and a FIFO, under
    /// `base`; returns the temporary folder (home is its `home`).
    fn planted(base: &Path) -> tempfile::TempDir {
        let t = tempfile::tempdir_in(base).unwrap();
        let home = t.path().join("home");
        std::fs::create_dir_all(home.join("docs")).unwrap();
        std::fs::write(home.join("file.txt"), b"inside").unwrap();
        std::fs::write(t.path().join("outside.txt"), b"SECRET").unwrap();
        std::os::unix::fs::symlink("file.txt", home.join("in_link")).unwrap();
        std::os::unix::fs::symlink("../outside.txt", home.join("up")).unwrap();
        let abs = t.path().join("outside.txt");
        std::os::unix::fs::symlink(&abs, home.join("abs")).unwrap();
        nix::unistd::mkfifo(
            &home.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        t
    }

    fn contents(mut f: std::fs::File) -> Vec<u8> {
        let mut out = Vec::new();
        io::Read::read_to_end(&mut f, &mut out).unwrap();
        out
    }

    /// Only what `open_file` would open is opened at once; everything
    /// else is left to `open_file`, which refuses it as before. (A path
    /// the kernel has not cached cannot be made here without dropping
    /// every cache on the machine; the SFTP tests run both ways.)
    #[test]
    fn a_cached_file_opens_at_once_for_reading_and_nothing_else_does() {
        let tmp = std::env::temp_dir();
        assert!(
            !in_memory(std::fs::File::open(&tmp).unwrap()),
            "this test needs the temporary folder on a disk, not tmpfs"
        );
        let t = planted(&tmp);
        let root = Root::open(&t.path().join("home"), "alice", FULL).unwrap();
        // Looking each path up once puts it in the kernel's cache.
        for p in ["/file.txt", "/in_link", "/up", "/abs", "/fifo", "/docs"] {
            let _ = root.stat(&vp(p), Follow::Yes);
        }
        let now = root.open_file_now(&vp("/file.txt"), &read_how()).unwrap();
        assert_eq!(contents(now), b"inside");
        let now = root.open_file_now(&vp("/in_link"), &read_how()).unwrap();
        assert_eq!(contents(now), b"inside");
        for (p, refused) in [
            ("/up", "outside"),
            ("/abs", "outside"),
            ("/fifo", "not a regular file"),
            ("/docs", "Is a directory"),
            ("/missing", "No such file"),
        ] {
            assert!(root.open_file_now(&vp(p), &read_how()).is_none(), "{p}");
            let e = root.open_file(&vp(p), &read_how()).unwrap_err();
            assert!(e.to_string().contains(refused), "{p}: {e}");
        }
        assert!(root.open_file_now(&VPath::root(), &read_how()).is_none());
        // On a disk, making a file goes to the pool.
        assert!(
            root.open_file_now(&vp("/new.txt"), &make_how(false))
                .is_none()
        );
        assert!(!t.path().join("home/new.txt").exists());
        assert_eq!(
            std::fs::read(t.path().join("outside.txt")).unwrap(),
            b"SECRET"
        );
    }

    #[test]
    fn in_a_folder_held_in_memory_files_are_made_at_once() {
        let shm = Path::new("/dev/shm");
        assert!(
            in_memory(std::fs::File::open(shm).unwrap()),
            "/dev/shm is not tmpfs"
        );
        let t = planted(shm);
        let home = t.path().join("home");
        let root = Root::open(&home, "alice", FULL).unwrap();
        let _ = root.stat(&vp("/docs"), Follow::Yes);

        let mut how = make_how(false);
        how.mode = Some(0o4640);
        let f = root.open_file_now(&vp("/docs/new.txt"), &how).unwrap();
        io::Write::write_all(&mut &f, b"made").unwrap();
        let meta = std::fs::metadata(home.join("docs/new.txt")).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o640, "setuid stripped as always");
        // Truncating an existing file.
        assert!(
            root.open_file_now(&vp("/file.txt"), &make_how(false))
                .is_some()
        );
        assert_eq!(std::fs::read(home.join("file.txt")).unwrap(), b"");
        std::fs::write(home.join("file.txt"), b"inside").unwrap();

        // Left to open_file, which answers as before: an existing file
        // made exclusively, a name that is a link (in or out), a FIFO, a
        // folder, a missing folder on the way.
        for (p, refused) in [
            ("/file.txt", "exists"),
            ("/in_link", "exists"),
            ("/up", "outside"),
            ("/abs", "outside"),
            ("/fifo", "not a regular file"),
            ("/docs", "Is a directory"),
            ("/nowhere/new.txt", "No such file"),
        ] {
            assert!(root.open_file_now(&vp(p), &make_how(true)).is_none(), "{p}");
            let e = root.open_file(&vp(p), &make_how(true)).unwrap_err();
            assert!(e.to_string().contains(refused), "{p}: {e}");
        }
        assert_eq!(std::fs::read(home.join("file.txt")).unwrap(), b"inside");
        assert_eq!(
            std::fs::read(t.path().join("outside.txt")).unwrap(),
            b"SECRET"
        );

        // A read-only account makes nothing, here or on the pool.
        let read_only = Permissions {
            write: false,
            delete: false,
        };
        let ro = Root::open(&home, "alice", read_only).unwrap();
        assert!(ro.open_file_now(&vp("/ro.txt"), &make_how(false)).is_none());
        assert!(matches!(
            ro.open_file(&vp("/ro.txt"), &make_how(false)),
            Err(FsError::ReadOnly)
        ));
        assert!(!home.join("ro.txt").exists());
        // Reading in memory is the cached case.
        let f = ro.open_file_now(&vp("/file.txt"), &read_how()).unwrap();
        assert_eq!(contents(f), b"inside");
    }
}
