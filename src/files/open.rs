//! Opening files: how a file is opened ([`OpenHow`]), with the rules of
//! the module docs, and the opens that never wait on a device
//! ([`Root::open_file_now`]).

use std::ffi::OsStr;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt as _;

use cap_std::fs::{OpenOptions, OpenOptionsExt as _};

use super::attrs::{S_IFMT, S_IFREG};
use super::{DEFAULT_FILE_MODE, Follow, FsError, MODE_MASK, Root, VPath};

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

/// Path resolution for the opens that must not wait: cap-std's
/// confinement (`openat2` beneath the home, no `/proc` magic links), and
/// only what the kernel's lookup cache already holds.
const CACHED: rustix::fs::ResolveFlags = rustix::fs::ResolveFlags::BENEATH
    .union(rustix::fs::ResolveFlags::NO_MAGICLINKS)
    .union(rustix::fs::ResolveFlags::CACHED);

pub(super) fn is_regular(st: &rustix::fs::Stat) -> bool {
    st.st_mode & S_IFMT == S_IFREG
}

/// Whether `fd` lives on a file system held in memory (tmpfs, ramfs),
/// whose I/O never waits on a device.
pub fn in_memory<Fd: AsFd>(fd: Fd) -> bool {
    const TMPFS_MAGIC: u64 = 0x0102_1994;
    const RAMFS_MAGIC: u64 = 0x8584_58f6;
    rustix::fs::fstatfs(fd).is_ok_and(|st| matches!(st.f_type as u64, TMPFS_MAGIC | RAMFS_MAGIC))
}

impl Root {
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
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;
    use std::path::Path;

    use super::*;
    use crate::files::Access;
    use crate::files::tests::FULL;

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
        // Looking each path up puts it in the kernel's cache. A loaded
        // machine may drop an entry between the look-up and the open (it
        // happened once in a chroot under two test runs): look up again, a
        // few times, before concluding that a cached path is not opened.
        let warm = || {
            for p in ["/file.txt", "/in_link", "/up", "/abs", "/fifo", "/docs"] {
                let _ = root.stat(&vp(p), Follow::Yes);
            }
        };
        let cached = |p: &str| {
            (0..5).find_map(|_| {
                warm();
                root.open_file_now(&vp(p), &read_how())
            })
        };
        let now = cached("/file.txt").unwrap();
        assert_eq!(contents(now), b"inside");
        let now = cached("/in_link").unwrap();
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
        let read_only = Access {
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
