//! Encoding replies: each built in one buffer, its length patched in at
//! the end; DATA replies built in place around the file data.

use bytes::{BufMut as _, BytesMut};

use super::{Attrs, msg};
use crate::files::{FsStats, Stat};

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
pub(super) fn put_length(packet: &mut [u8]) {
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
