//! SFTP version 3 on the wire: framing, request decoding, reply encoding.
//!
//! Sans-I/O apart from [`FrameReader`], which pulls bytes from the stream:
//! the decoder takes a complete packet body as [`Bytes`](bytes::Bytes) and hands out
//! slices of it (file data of a WRITE is never copied), and every reply is
//! built in one [`BytesMut`] with its length patched in at the end.

mod decode;
mod encode;
mod frame;

use bytes::{BufMut as _, BytesMut};

use crate::files::{SetAttrs, Stat};

use decode::Reader;
pub(crate) use decode::{EXTENSIONS, Extended, Request, decode};
pub(crate) use encode::{
    DATA_HEADER, attrs, extended_reply, finish_data, handle, names, one_name, start_data, status,
    statvfs, version,
};
pub(crate) use frame::{Frame, FrameError, FrameReader};

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

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::encode::put_string;
    use super::*;

    /// A small deterministic generator (xorshift64*), enough for fuzzing.
    pub(super) struct Rng(pub(super) u64);
    impl Rng {
        pub(super) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        pub(super) fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    pub(super) fn packet(ty: u8, body: &[u8]) -> Vec<u8> {
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
}
