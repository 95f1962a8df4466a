//! File attributes: what a client sees ([`Stat`], [`FsStats`]) and what it
//! may change ([`SetAttrs`]).

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt as _;

use cap_std::fs::{MetadataExt as _, PermissionsExt as _};
use rustix::fs::{AtFlags, Timespec, Timestamps};

use super::{FsError, MODE_MASK, OpenHow, Root, VPath};

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

pub(super) const S_IFMT: u32 = 0o170_000;
pub(super) const S_IFDIR: u32 = 0o040_000;
pub(super) const S_IFREG: u32 = 0o100_000;
pub(super) const S_IFLNK: u32 = 0o120_000;

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

pub(super) fn timestamps(atime: i64, mtime: i64) -> Timestamps {
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

pub(super) fn fs_stats(st: &rustix::fs::StatVfs) -> FsStats {
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

impl Root {
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
}
