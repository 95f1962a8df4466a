//! Why a file operation failed ([`FsError`]), in words fit for the client,
//! and how a failure is classified for the wire ([`Fault`]).

use std::io;

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
    /// The path is longer than [`MAX_PATH`](super::MAX_PATH).
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
pub(super) fn os_text(e: &io::Error) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
