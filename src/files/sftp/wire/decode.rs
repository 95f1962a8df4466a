//! Decoding requests: a packet body in, a [`Request`] out, slices of the
//! body handed out without copying.

use bytes::{Buf as _, Bytes};

use super::{Attrs, WireError, msg};

/// A cursor over a packet body.
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Self {
        Reader { buf }
    }

    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        if self.buf.remaining() < 4 {
            return Err(WireError::Truncated);
        }
        Ok(self.buf.get_u32())
    }

    pub(crate) fn u64(&mut self) -> Result<u64, WireError> {
        if self.buf.remaining() < 8 {
            return Err(WireError::Truncated);
        }
        Ok(self.buf.get_u64())
    }

    /// A length-prefixed string, as a slice of the packet (no copy).
    pub(crate) fn string(&mut self) -> Result<Bytes, WireError> {
        let len = usize::try_from(self.u32()?).map_err(|_| WireError::Truncated)?;
        if self.buf.remaining() < len {
            return Err(WireError::Truncated);
        }
        Ok(self.buf.split_to(len))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// A decoded request (everything but INIT, which carries no id).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Request {
    Open {
        path: Bytes,
        pflags: u32,
        attrs: Attrs,
    },
    Close {
        handle: Bytes,
    },
    Read {
        handle: Bytes,
        offset: u64,
        len: u32,
    },
    Write {
        handle: Bytes,
        offset: u64,
        data: Bytes,
    },
    Lstat {
        path: Bytes,
    },
    Fstat {
        handle: Bytes,
    },
    Setstat {
        path: Bytes,
        attrs: Attrs,
    },
    Fsetstat {
        handle: Bytes,
        attrs: Attrs,
    },
    Opendir {
        path: Bytes,
    },
    Readdir {
        handle: Bytes,
    },
    Remove {
        path: Bytes,
    },
    Mkdir {
        path: Bytes,
        attrs: Attrs,
    },
    Rmdir {
        path: Bytes,
    },
    Realpath {
        path: Bytes,
    },
    Stat {
        path: Bytes,
    },
    Rename {
        from: Bytes,
        to: Bytes,
    },
    Readlink {
        path: Bytes,
    },
    /// OpenSSH's order: the link's target first, then the link's path
    /// (the draft says the opposite; every OpenSSH client sends this).
    Symlink {
        target: Bytes,
        link: Bytes,
    },
    Extended(Extended),
    /// A packet type this server does not know.
    Unknown(u8),
    /// INIT after the handshake.
    Init,
}

/// Extended requests (OpenSSH's and the filexfer drafts' names).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Extended {
    PosixRename {
        from: Bytes,
        to: Bytes,
    },
    Statvfs {
        path: Bytes,
    },
    Fstatvfs {
        handle: Bytes,
    },
    Hardlink {
        from: Bytes,
        to: Bytes,
    },
    Fsync {
        handle: Bytes,
    },
    Lsetstat {
        path: Bytes,
        attrs: Attrs,
    },
    Limits,
    ExpandPath {
        path: Bytes,
    },
    CopyData {
        read_handle: Bytes,
        read_offset: u64,
        read_len: u64,
        write_handle: Bytes,
        write_offset: u64,
    },
    HomeDirectory {
        user: Bytes,
    },
    Unknown(Bytes),
}

/// The extensions announced in VERSION, with their versions.
pub(crate) const EXTENSIONS: &[(&str, &str)] = &[
    ("posix-rename@openssh.com", "1"),
    ("statvfs@openssh.com", "2"),
    ("fstatvfs@openssh.com", "2"),
    ("hardlink@openssh.com", "1"),
    ("fsync@openssh.com", "1"),
    ("lsetstat@openssh.com", "1"),
    ("limits@openssh.com", "1"),
    ("expand-path@openssh.com", "1"),
    ("copy-data", "1"),
    ("home-directory", "1"),
];

/// Decodes a packet body (after the type byte) into its id and request.
/// Bytes after the last field are ignored, as OpenSSH does.
pub(crate) fn decode(ty: u8, body: Bytes) -> Result<(u32, Request), WireError> {
    let mut r = Reader::new(body);
    let id = r.u32()?;
    let req = match ty {
        msg::INIT => Request::Init,
        msg::OPEN => Request::Open {
            path: r.string()?,
            pflags: r.u32()?,
            attrs: Attrs::decode(&mut r)?,
        },
        msg::CLOSE => Request::Close {
            handle: r.string()?,
        },
        msg::READ => Request::Read {
            handle: r.string()?,
            offset: r.u64()?,
            len: r.u32()?,
        },
        msg::WRITE => Request::Write {
            handle: r.string()?,
            offset: r.u64()?,
            data: r.string()?,
        },
        msg::LSTAT => Request::Lstat { path: r.string()? },
        msg::FSTAT => Request::Fstat {
            handle: r.string()?,
        },
        msg::SETSTAT => Request::Setstat {
            path: r.string()?,
            attrs: Attrs::decode(&mut r)?,
        },
        msg::FSETSTAT => Request::Fsetstat {
            handle: r.string()?,
            attrs: Attrs::decode(&mut r)?,
        },
        msg::OPENDIR => Request::Opendir { path: r.string()? },
        msg::READDIR => Request::Readdir {
            handle: r.string()?,
        },
        msg::REMOVE => Request::Remove { path: r.string()? },
        msg::MKDIR => Request::Mkdir {
            path: r.string()?,
            // OpenSSH's client sends attributes; an old client may not.
            attrs: if r.is_empty() {
                Attrs::default()
            } else {
                Attrs::decode(&mut r)?
            },
        },
        msg::RMDIR => Request::Rmdir { path: r.string()? },
        msg::REALPATH => Request::Realpath { path: r.string()? },
        msg::STAT => Request::Stat { path: r.string()? },
        msg::RENAME => Request::Rename {
            from: r.string()?,
            to: r.string()?,
        },
        msg::READLINK => Request::Readlink { path: r.string()? },
        msg::SYMLINK => Request::Symlink {
            target: r.string()?,
            link: r.string()?,
        },
        msg::EXTENDED => Request::Extended(decode_extended(&mut r)?),
        other => Request::Unknown(other),
    };
    Ok((id, req))
}

pub(super) fn decode_extended(r: &mut Reader) -> Result<Extended, WireError> {
    let name = r.string()?;
    Ok(match name.as_ref() {
        b"posix-rename@openssh.com" => Extended::PosixRename {
            from: r.string()?,
            to: r.string()?,
        },
        b"statvfs@openssh.com" => Extended::Statvfs { path: r.string()? },
        b"fstatvfs@openssh.com" => Extended::Fstatvfs {
            handle: r.string()?,
        },
        b"hardlink@openssh.com" => Extended::Hardlink {
            from: r.string()?,
            to: r.string()?,
        },
        b"fsync@openssh.com" => Extended::Fsync {
            handle: r.string()?,
        },
        b"lsetstat@openssh.com" => Extended::Lsetstat {
            path: r.string()?,
            attrs: Attrs::decode(r)?,
        },
        b"limits@openssh.com" => Extended::Limits,
        b"expand-path@openssh.com" => Extended::ExpandPath { path: r.string()? },
        b"copy-data" => Extended::CopyData {
            read_handle: r.string()?,
            read_offset: r.u64()?,
            read_len: r.u64()?,
            write_handle: r.string()?,
            write_offset: r.u64()?,
        },
        b"home-directory" => Extended::HomeDirectory { user: r.string()? },
        _ => Extended::Unknown(name),
    })
}
