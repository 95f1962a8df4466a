//! SFTP version 3 on the wire: framing, request decoding, reply encoding.
//!
//! Sans-I/O apart from [`FrameReader`], which pulls bytes from the stream:
//! the decoder takes a complete packet body as [`Bytes`] and hands out
//! slices of it (file data of a WRITE is never copied), and every reply is
//! built in one [`BytesMut`] with its length patched in at the end.

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use tokio::io::AsyncReadExt as _;

use crate::files::{FsStats, SetAttrs, Stat};

/// Packet types.
pub(crate) mod msg {
    pub const INIT: u8 = 1;
    pub const VERSION: u8 = 2;
    pub const OPEN: u8 = 3;
    pub const CLOSE: u8 = 4;
    pub const READ: u8 = 5;
    pub const WRITE: u8 = 6;
    pub const LSTAT: u8 = 7;
    pub const FSTAT: u8 = 8;
    pub const SETSTAT: u8 = 9;
    pub const FSETSTAT: u8 = 10;
    pub const OPENDIR: u8 = 11;
    pub const READDIR: u8 = 12;
    pub const REMOVE: u8 = 13;
    pub const MKDIR: u8 = 14;
    pub const RMDIR: u8 = 15;
    pub const REALPATH: u8 = 16;
    pub const STAT: u8 = 17;
    pub const RENAME: u8 = 18;
    pub const READLINK: u8 = 19;
    pub const SYMLINK: u8 = 20;
    pub const STATUS: u8 = 101;
    pub const HANDLE: u8 = 102;
    pub const DATA: u8 = 103;
    pub const NAME: u8 = 104;
    pub const ATTRS: u8 = 105;
    pub const EXTENDED: u8 = 200;
    pub const EXTENDED_REPLY: u8 = 201;
}

/// Status codes.
pub(crate) mod fx {
    pub const OK: u32 = 0;
    pub const EOF: u32 = 1;
    pub const NO_SUCH_FILE: u32 = 2;
    pub const PERMISSION_DENIED: u32 = 3;
    pub const FAILURE: u32 = 4;
    pub const BAD_MESSAGE: u32 = 5;
    pub const OP_UNSUPPORTED: u32 = 8;
}

/// Attribute flags.
mod attr {
    pub const SIZE: u32 = 0x1;
    pub const UIDGID: u32 = 0x2;
    pub const PERMISSIONS: u32 = 0x4;
    pub const ACMODTIME: u32 = 0x8;
    pub const EXTENDED: u32 = 0x8000_0000;
}

/// Open flags.
pub(crate) mod open_flags {
    pub const READ: u32 = 0x1;
    pub const WRITE: u32 = 0x2;
    pub const APPEND: u32 = 0x4;
    pub const CREAT: u32 = 0x8;
    pub const TRUNC: u32 = 0x10;
    pub const EXCL: u32 = 0x20;
}

/// The largest packet length accepted at all: anything longer cannot be
/// an honest client and ends the session. Between the negotiated maximum
/// and this, a packet is skipped and answered with a failure.
pub(crate) const HARD_PACKET_LIMIT: u32 = 64 * 1024 * 1024;

/// A packet that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireError {
    /// A field runs past the end of the packet.
    #[error("truncated packet")]
    Truncated,
    /// The packet length field is zero.
    #[error("empty packet")]
    Empty,
    /// The packet length is beyond any sane limit.
    #[error("packet length {0} exceeds the 64 MiB limit")]
    Huge(u32),
    /// The stream ended inside a packet.
    #[error("stream ended inside a packet")]
    Eof,
}

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

/// File attributes on the wire (version 3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Attrs {
    pub size: Option<u64>,
    pub owner: Option<(u32, u32)>,
    pub permissions: Option<u32>,
    pub times: Option<(u32, u32)>,
}

impl Attrs {
    pub(crate) fn decode(r: &mut Reader) -> Result<Self, WireError> {
        let flags = r.u32()?;
        let mut a = Attrs::default();
        if flags & attr::SIZE != 0 {
            a.size = Some(r.u64()?);
        }
        if flags & attr::UIDGID != 0 {
            a.owner = Some((r.u32()?, r.u32()?));
        }
        if flags & attr::PERMISSIONS != 0 {
            a.permissions = Some(r.u32()?);
        }
        if flags & attr::ACMODTIME != 0 {
            a.times = Some((r.u32()?, r.u32()?));
        }
        if flags & attr::EXTENDED != 0 {
            // Extended attributes are read and ignored; each pair takes at
            // least eight bytes, so a lying count runs out of packet fast.
            let count = r.u32()?;
            for _ in 0..count {
                r.string()?;
                r.string()?;
            }
        }
        Ok(a)
    }

    pub(crate) fn from_stat(st: &Stat) -> Self {
        Attrs {
            size: Some(st.size),
            owner: Some((st.uid, st.gid)),
            permissions: Some(st.mode),
            // Version 3 carries 32-bit times; clamp what does not fit.
            times: Some((clamp_time(st.atime), clamp_time(st.mtime))),
        }
    }

    pub(crate) fn encode(&self, out: &mut BytesMut) {
        let mut flags = 0;
        if self.size.is_some() {
            flags |= attr::SIZE;
        }
        if self.owner.is_some() {
            flags |= attr::UIDGID;
        }
        if self.permissions.is_some() {
            flags |= attr::PERMISSIONS;
        }
        if self.times.is_some() {
            flags |= attr::ACMODTIME;
        }
        out.put_u32(flags);
        if let Some(size) = self.size {
            out.put_u64(size);
        }
        if let Some((uid, gid)) = self.owner {
            out.put_u32(uid);
            out.put_u32(gid);
        }
        if let Some(p) = self.permissions {
            out.put_u32(p);
        }
        if let Some((atime, mtime)) = self.times {
            out.put_u32(atime);
            out.put_u32(mtime);
        }
    }

    pub(crate) fn to_set(self) -> SetAttrs {
        SetAttrs {
            size: self.size,
            mode: self.permissions,
            times: self
                .times
                .map(|(atime, mtime)| (i64::from(atime), i64::from(mtime))),
            owner: self.owner,
        }
    }
}

fn clamp_time(t: i64) -> u32 {
    u32::try_from(t.max(0)).unwrap_or(u32::MAX)
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

fn decode_extended(r: &mut Reader) -> Result<Extended, WireError> {
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

/// A packet off the stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A complete packet: its type and body (id included).
    Packet { ty: u8, body: Bytes },
    /// A packet over the negotiated size: skipped, only its type and id kept.
    TooLarge { ty: u8, id: u32 },
}

/// Reads packets from the stream without copying their bodies.
pub(crate) struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    max_packet: u32,
}

/// How much to ask the stream for at least, per read.
const READ_CHUNK: usize = 256 * 1024;

/// The buffer a reader waits with when nothing is pending.
const FIRST_READ: usize = 64;

impl<R: super::Requests> FrameReader<R> {
    pub(crate) fn new(inner: R, max_packet: u32) -> Self {
        FrameReader {
            inner,
            buf: BytesMut::with_capacity(FIRST_READ),
            max_packet,
        }
    }

    /// Whether a whole packet is buffered (the next call will not wait).
    pub(crate) fn has_frame(&self) -> bool {
        let Some(head) = self.buf.get(..4) else {
            return false;
        };
        let mut len = [0u8; 4];
        len.copy_from_slice(head);
        let len = u32::from_be_bytes(len);
        len <= self.max_packet && self.buf.len() >= 4 + len as usize
    }

    /// The next packet; `None` at a clean end of the stream.
    pub(crate) async fn next(&mut self) -> Result<Option<Frame>, FrameError> {
        loop {
            if let Some(head) = self.buf.get(..4) {
                let len = u32::from_be_bytes([
                    head.first().copied().unwrap_or(0),
                    head.get(1).copied().unwrap_or(0),
                    head.get(2).copied().unwrap_or(0),
                    head.get(3).copied().unwrap_or(0),
                ]);
                if len == 0 {
                    return Err(WireError::Empty.into());
                }
                if len > HARD_PACKET_LIMIT {
                    return Err(WireError::Huge(len).into());
                }
                let total = 4 + len as usize;
                if len > self.max_packet {
                    if self.buf.len() >= 9 {
                        self.buf.advance(4);
                        let ty = self.buf.get_u8();
                        let id = self.buf.get_u32();
                        self.discard(total.saturating_sub(9)).await?;
                        return Ok(Some(Frame::TooLarge { ty, id }));
                    }
                } else if self.buf.len() >= total {
                    let mut frame = self.buf.split_to(total);
                    frame.advance(4);
                    let ty = frame.get_u8();
                    return Ok(Some(Frame::Packet {
                        ty,
                        body: frame.freeze(),
                    }));
                } else {
                    // Make room for the whole packet at once.
                    self.buf.reserve(total - self.buf.len());
                }
            }
            let read = if self.buf.is_empty() {
                self.wait().await?
            } else {
                self.fill().await?
            };
            if read == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(WireError::Eof.into());
            }
        }
    }

    /// Waits for the next packet with a small buffer of its own, so that an
    /// idle session holds none of the large one (the frames already handed
    /// out keep it until they are done). An empty view of the large buffer
    /// would not do: once the frames are gone, growing it takes the whole
    /// buffer back.
    async fn wait(&mut self) -> Result<usize, FrameError> {
        self.inner.retain(0);
        self.buf = BytesMut::with_capacity(FIRST_READ);
        Ok(self.inner.read_buf(&mut self.buf).await?)
    }

    async fn fill(&mut self) -> Result<usize, FrameError> {
        self.inner.retain(self.buf.len());
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(READ_CHUNK);
        }
        Ok(self.inner.read_buf(&mut self.buf).await?)
    }

    /// Drops `n` bytes of the stream without keeping them.
    async fn discard(&mut self, mut n: usize) -> Result<(), FrameError> {
        loop {
            if self.buf.len() >= n {
                self.buf.advance(n);
                return Ok(());
            }
            n -= self.buf.len();
            self.buf.clear();
            if self.fill().await? == 0 {
                return Err(WireError::Eof.into());
            }
        }
    }
}

/// Why reading a packet failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// Starts a reply: room for the length, then type and id.
pub(crate) fn start(capacity: usize, ty: u8, id: u32) -> BytesMut {
    let mut b = BytesMut::with_capacity(capacity + 9);
    b.put_u32(0);
    b.put_u8(ty);
    b.put_u32(id);
    b
}

/// Writes the length field of a finished reply.
pub(crate) fn finish(mut b: BytesMut) -> BytesMut {
    put_length(&mut b);
    b
}

/// Fills in the length field at the start of a whole packet.
fn put_length(packet: &mut [u8]) {
    let len = u32::try_from(packet.len().saturating_sub(4)).unwrap_or(u32::MAX);
    if let Some(head) = packet.get_mut(..4) {
        head.copy_from_slice(&len.to_be_bytes());
    }
}

pub(crate) fn put_string(b: &mut BytesMut, s: &[u8]) {
    b.put_u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
    b.put_slice(s);
}

pub(crate) fn version(extensions: &[(&str, &str)]) -> BytesMut {
    let mut b = BytesMut::with_capacity(512);
    b.put_u32(0);
    b.put_u8(msg::VERSION);
    b.put_u32(3);
    for (name, value) in extensions {
        put_string(&mut b, name.as_bytes());
        put_string(&mut b, value.as_bytes());
    }
    finish(b)
}

pub(crate) fn status(id: u32, code: u32, message: &str) -> BytesMut {
    let mut b = start(16 + message.len(), msg::STATUS, id);
    b.put_u32(code);
    put_string(&mut b, message.as_bytes());
    put_string(&mut b, b"en");
    finish(b)
}

pub(crate) fn handle(id: u32, handle: u32) -> BytesMut {
    let mut b = start(8, msg::HANDLE, id);
    put_string(&mut b, &handle.to_be_bytes());
    finish(b)
}

pub(crate) fn attrs(id: u32, st: &Stat) -> BytesMut {
    let mut b = start(40, msg::ATTRS, id);
    Attrs::from_stat(st).encode(&mut b);
    finish(b)
}

/// A NAME reply; each entry is (name, long name, attributes).
pub(crate) fn names(id: u32, entries: &[(Vec<u8>, Vec<u8>, Attrs)]) -> BytesMut {
    let size: usize = entries.iter().map(|(n, l, _)| n.len() + l.len() + 48).sum();
    let mut b = start(size + 4, msg::NAME, id);
    b.put_u32(u32::try_from(entries.len()).unwrap_or(u32::MAX));
    for (name, long, a) in entries {
        put_string(&mut b, name);
        put_string(&mut b, long);
        a.encode(&mut b);
    }
    finish(b)
}

/// A NAME reply with one path and no attributes (REALPATH, READLINK).
pub(crate) fn one_name(id: u32, name: &[u8]) -> BytesMut {
    names(id, &[(name.to_vec(), name.to_vec(), Attrs::default())])
}

pub(crate) fn extended_reply(id: u32, values: &[u64]) -> BytesMut {
    let mut b = start(values.len() * 8, msg::EXTENDED_REPLY, id);
    for v in values {
        b.put_u64(*v);
    }
    finish(b)
}

pub(crate) fn statvfs(id: u32, st: &FsStats) -> BytesMut {
    // The file-system id is not sent: it says nothing a client needs and
    // something about the host.
    extended_reply(
        id,
        &[
            st.bsize, st.frsize, st.blocks, st.bfree, st.bavail, st.files, st.ffree, st.favail, 0,
            st.flag, st.namemax,
        ],
    )
}

/// Size of a DATA reply's header: length, type, id, data length.
pub(crate) const DATA_HEADER: usize = 13;

/// Starts a DATA reply in `b` (emptied first): its header, with the data
/// to follow. File data is read straight into the room after it (left
/// uninitialised: no byte is written twice) and [`finish_data`] fills in
/// the lengths.
pub(crate) fn start_data(b: &mut Vec<u8>, id: u32, len: usize) {
    b.clear();
    b.reserve_exact(DATA_HEADER + len);
    b.extend_from_slice(&[0; 4]);
    b.push(msg::DATA);
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&[0; 4]);
}

/// Cuts a DATA reply to the `n` bytes read and fills in the lengths.
pub(crate) fn finish_data(b: &mut Vec<u8>, n: usize) {
    b.truncate(DATA_HEADER + n);
    let n32 = u32::try_from(n).unwrap_or(u32::MAX);
    if let Some(field) = b.get_mut(9..DATA_HEADER) {
        field.copy_from_slice(&n32.to_be_bytes());
    }
    put_length(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift64*), enough for fuzzing.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    fn packet(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        v.push(ty);
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn decodes_an_open() {
        let mut body = BytesMut::new();
        body.put_u32(7);
        put_string(&mut body, b"/a/b");
        body.put_u32(open_flags::WRITE | open_flags::CREAT);
        body.put_u32(attr::PERMISSIONS);
        body.put_u32(0o600);
        let (id, req) = decode(msg::OPEN, body.freeze()).unwrap();
        assert_eq!(id, 7);
        assert_eq!(
            req,
            Request::Open {
                path: Bytes::from_static(b"/a/b"),
                pflags: 0xa,
                attrs: Attrs {
                    permissions: Some(0o600),
                    ..Attrs::default()
                }
            }
        );
    }

    #[test]
    fn random_bodies_never_panic() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for round in 0..20_000 {
            let n = (rng.next() % 64) as usize;
            let body = rng.bytes(n);
            let ty = if round % 2 == 0 {
                (rng.next() % 24) as u8
            } else {
                rng.next() as u8
            };
            let _ = decode(ty, Bytes::from(body.clone()));
            let _ = decode(msg::EXTENDED, Bytes::from(body));
        }
    }

    #[test]
    fn every_truncation_of_valid_packets_is_an_error_not_a_panic() {
        let mut body = BytesMut::new();
        body.put_u32(1);
        put_string(&mut body, b"copy-data");
        put_string(&mut body, &[0, 0, 0, 1]);
        body.put_u64(0);
        body.put_u64(0);
        put_string(&mut body, &[0, 0, 0, 2]);
        body.put_u64(0);
        let full = body.freeze();
        assert!(decode(msg::EXTENDED, full.clone()).is_ok());
        for cut in 0..full.len() {
            assert!(decode(msg::EXTENDED, full.slice(..cut)).is_err());
        }
        // Attributes claiming four billion extended pairs.
        let mut body = BytesMut::new();
        body.put_u32(1);
        put_string(&mut body, b"x");
        body.put_u32(attr::EXTENDED);
        body.put_u32(u32::MAX);
        assert_eq!(
            decode(msg::SETSTAT, body.freeze()),
            Err(WireError::Truncated)
        );
    }

    async fn frames(input: Vec<u8>, max: u32) -> (Vec<Frame>, Option<String>) {
        let mut reader = FrameReader::new(&input[..], max);
        let mut out = Vec::new();
        loop {
            match reader.next().await {
                Ok(Some(f)) => out.push(f),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e.to_string())),
            }
        }
    }

    #[tokio::test]
    async fn frames_split_and_oversized_skipped_in_sync() {
        let mut input = packet(msg::STAT, &[0, 0, 0, 1, 0, 0, 0, 1, b'/']);
        // 100 bytes over a 64-byte limit: skipped, the next packet still read.
        let mut big = vec![0, 0, 0, 9];
        big.extend(std::iter::repeat_n(0xaa, 100));
        input.extend(packet(msg::WRITE, &big));
        input.extend(packet(msg::STAT, &[0, 0, 0, 2, 0, 0, 0, 1, b'/']));
        let (f, err) = frames(input, 64).await;
        assert_eq!(err, None);
        assert_eq!(f.len(), 3);
        assert_eq!(
            f[1],
            Frame::TooLarge {
                ty: msg::WRITE,
                id: 9
            }
        );
        assert!(matches!(f[2], Frame::Packet { ty: msg::STAT, .. }));
    }

    /// Hands out `data` a few bytes at a time and records what the reader
    /// says it still holds.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        retained: Vec<usize>,
    }

    impl tokio::io::AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let at = self.at;
            let n = buf.remaining().min(100).min(self.data.len() - at);
            buf.put_slice(&self.data[at..at + n]);
            self.at += n;
            std::task::Poll::Ready(Ok(()))
        }
    }

    impl super::super::Requests for Trickle {
        fn retain(&mut self, n: usize) {
            self.retained.push(n);
        }
    }

    #[tokio::test]
    async fn the_reader_says_how_much_of_an_unfinished_packet_it_holds() {
        // A 1,005-byte WRITE packet, then a short one.
        let mut data = vec![0, 0, 3, 0xe9, msg::WRITE];
        data.extend(std::iter::repeat_n(7, 1000));
        data.extend([0, 0, 0, 5, msg::CLOSE, 0, 0, 0, 1]);
        let trickle = Trickle {
            data,
            at: 0,
            retained: Vec::new(),
        };
        let mut reader = FrameReader::new(trickle, 4096);
        assert!(matches!(
            reader.next().await.unwrap(),
            Some(Frame::Packet { ty: msg::WRITE, .. })
        ));
        let held = reader.inner.retained.clone();
        // It held ever more of the packet while it came, never more than
        // it had been given ...
        assert!(held.windows(2).all(|w| w[0] <= w[1]), "{held:?}");
        assert!(held.iter().any(|&n| n >= 900), "{held:?}");
        assert!(held.iter().all(|&n| n < 1005), "{held:?}");
        // ... and, the packet taken, holds only what follows it.
        assert!(matches!(
            reader.next().await.unwrap(),
            Some(Frame::Packet { ty: msg::CLOSE, .. })
        ));
        assert!(reader.next().await.unwrap().is_none());
        assert_eq!(reader.inner.retained.last(), Some(&0));
    }

    #[tokio::test]
    async fn an_idle_reader_keeps_only_a_small_buffer() {
        use tokio::io::AsyncWriteExt as _;
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut reader = FrameReader::new(server, 1 << 20);
        // A large WRITE makes the reader take a large buffer.
        let mut write = vec![0, 0, 0, 3];
        write.extend(std::iter::repeat_n(0x5a, 200_000));
        let is_the_write = |frame: Option<Frame>| match frame {
            Some(Frame::Packet { ty, body }) => {
                assert_eq!((ty, &body[..]), (msg::WRITE, &write[..]))
            }
            other => panic!("{other:?}"),
        };
        client.write_all(&packet(msg::WRITE, &write)).await.unwrap();
        is_the_write(reader.next().await.unwrap());
        // Nothing more has come: waiting for it holds a small buffer only.
        let waited = tokio::time::timeout(std::time::Duration::from_millis(5), reader.next()).await;
        assert!(waited.is_err(), "no request was sent");
        assert!(
            reader.buf.capacity() <= FIRST_READ,
            "{} bytes held while idle",
            reader.buf.capacity()
        );
        // What arrives next is read whole, small or large.
        let stat = packet(msg::STAT, &[0, 0, 0, 4, 0, 0, 0, 1, b'/']);
        client.write_all(&stat).await.unwrap();
        client.write_all(&packet(msg::WRITE, &write)).await.unwrap();
        assert!(matches!(
            reader.next().await.unwrap(),
            Some(Frame::Packet { ty: msg::STAT, .. })
        ));
        is_the_write(reader.next().await.unwrap());
    }

    #[tokio::test]
    async fn bad_lengths_end_the_stream_with_an_error() {
        let (_, err) = frames(vec![0, 0, 0, 0], 1024).await;
        assert_eq!(err.as_deref(), Some("empty packet"));
        let (_, err) = frames(vec![0xff, 0xff, 0xff, 0xff, 1], 1024).await;
        assert!(err.unwrap().contains("64 MiB"));
        let (_, err) = frames(vec![0, 0, 0, 10, 1, 2], 1024).await;
        assert_eq!(err.as_deref(), Some("stream ended inside a packet"));
        // Oversized but truncated while skipping.
        let (_, err) = frames(vec![0, 0, 4, 0, 6, 0, 0, 0, 1, 2, 3], 64).await;
        assert_eq!(err.as_deref(), Some("stream ended inside a packet"));
    }

    #[tokio::test]
    async fn random_streams_never_panic() {
        let mut rng = Rng(42);
        for _ in 0..2_000 {
            let n = (rng.next() % 300) as usize;
            let mut input = rng.bytes(n);
            // Bias towards plausible lengths so bodies get decoded too.
            if input.len() > 4 && rng.next().is_multiple_of(2) {
                let len = (input.len() - 4) as u32;
                input[..4].copy_from_slice(&len.to_be_bytes());
            }
            let (frames, _) = frames(input, 128).await;
            for f in frames {
                if let Frame::Packet { ty, body } = f {
                    let _ = decode(ty, body);
                }
            }
        }
    }

    #[test]
    fn data_reply_is_built_in_place() {
        let mut b = b"stale".to_vec();
        start_data(&mut b, 5, 10);
        assert_eq!(b.len(), DATA_HEADER);
        b.extend_from_slice(b"abc");
        finish_data(&mut b, 3);
        assert_eq!(
            &b[..],
            &[
                0,
                0,
                0,
                12,
                msg::DATA,
                0,
                0,
                0,
                5,
                0,
                0,
                0,
                3,
                b'a',
                b'b',
                b'c'
            ]
        );
    }
}
