//! The data path: open files, READ and WRITE, first without blocking and
//! then, for what would wait, on the blocking pool.

use std::io;
use std::os::unix::fs::FileExt as _;
use std::sync::atomic::{AtomicU8, Ordering};

use bytes::{Bytes, BytesMut};

use super::Ctx;
use super::wire::{self, fx};

/// An open file.
pub(super) struct OpenFile {
    pub(super) file: std::fs::File,
    pub(super) readable: bool,
    pub(super) writable: bool,
    pub(super) append: bool,
    /// How READs on it may run in the async task (see [`read_cached`]).
    pub(super) reads: AtomicU8,
    /// How WRITEs on it may run in the async task (see [`write_cached`]).
    pub(super) writes: AtomicU8,
    /// Bytes written to it, for the free-space reserve.
    pub(super) growth: super::super::Growth,
    /// Closing cannot wait on a device (a file in memory, or one opened
    /// for reading from a cached path, which has nothing to write back):
    /// CLOSE closes it in the async task instead of on the blocking pool.
    pub(super) close_now: bool,
}

/// [`OpenFile::reads`] and [`OpenFile::writes`]: in the async task
/// through the page cache only (`RWF_NOWAIT`), and on the blocking pool
/// when that would wait.
pub(super) const IO_NOWAIT: u8 = 0;
/// The file lives in memory (tmpfs): its I/O never waits for a disk.
pub(super) const IO_MEMORY: u8 = 1;
/// `RWF_NOWAIT` is not supported here: all I/O on the blocking pool.
pub(super) const IO_POOL: u8 = 2;

/// How I/O on `file` can avoid the blocking pool.
pub(super) fn io_mode(file: &std::fs::File) -> u8 {
    if super::super::in_memory(file) {
        IO_MEMORY
    } else {
        IO_NOWAIT
    }
}

/// A READ started in the async task.
pub(super) enum Partial {
    /// Answered.
    Done(Bytes),
    /// The reply buffer and how many bytes of data it holds (or, for a
    /// WRITE, how many are written); the rest must be done on the blocking
    /// pool.
    Pending(Vec<u8>, usize),
}

/// READ without blocking: as much as the page cache holds is read right
/// away (`RWF_NOWAIT`), straight into the reply; a read that would wait
/// for the disk goes on in the blocking pool ([`read_rest`]). A file that
/// is being downloaded is mostly in the cache (read-ahead), so most reads
/// cost no thread hand-off at all. Files in memory (tmpfs, where
/// `RWF_NOWAIT` is not supported) are read here directly: they never wait
/// for a disk.
pub(super) fn read_cached(ctx: &Ctx, id: u32, f: &OpenFile, offset: u64, len: usize) -> Partial {
    if !f.readable {
        return Partial::Done(
            ctx.failure(id, fx::PERMISSION_DENIED, "handle not open for reading")
                .freeze(),
        );
    }
    let mut buf = ctx.buffers.take(wire::DATA_HEADER + len);
    wire::start_data(&mut buf, id, len);
    let mode = f.reads.load(Ordering::Relaxed);
    if mode == IO_POOL {
        return Partial::Pending(buf, 0);
    }
    if mode == IO_MEMORY {
        return Partial::Done(read_rest(ctx, id, f, offset, buf, len));
    }
    // preadv2 reads into initialised memory only: zero the room first.
    buf.resize(wire::DATA_HEADER + len, 0);
    let mut n = 0;
    while n < len {
        let Some(dst) = buf.get_mut(wire::DATA_HEADER + n..) else {
            break;
        };
        match rustix::io::preadv2(
            &f.file,
            &mut [io::IoSliceMut::new(dst)],
            offset.saturating_add(n as u64),
            rustix::io::ReadWriteFlags::NOWAIT,
        ) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::OPNOTSUPP) => {
                f.reads.store(IO_POOL, Ordering::Relaxed);
                buf.truncate(wire::DATA_HEADER + n);
                return Partial::Pending(buf, n);
            }
            // Not cached (EAGAIN), or an error the blocking read will
            // meet and report.
            Err(_) => {
                buf.truncate(wire::DATA_HEADER + n);
                return Partial::Pending(buf, n);
            }
        }
    }
    buf.truncate(wire::DATA_HEADER + n);
    Partial::Done(finish_read(ctx, id, buf, len))
}

/// The rest of a READ of `len` bytes (on the blocking pool, or in the
/// protocol task for a file in memory): `pread` into the reply's reserved
/// room after what `buf` already holds.
pub(super) fn read_rest(
    ctx: &Ctx,
    id: u32,
    f: &OpenFile,
    offset: u64,
    mut buf: Vec<u8>,
    len: usize,
) -> Bytes {
    let want = wire::DATA_HEADER + len;
    buf.reserve_exact(want.saturating_sub(buf.len()));
    loop {
        let n = buf.len().saturating_sub(wire::DATA_HEADER);
        if n >= len {
            break;
        }
        match rustix::io::pread(
            &f.file,
            rustix::buffer::spare_capacity(&mut buf),
            offset.saturating_add(n as u64),
        ) {
            Ok(0) => break,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                if n > 0 {
                    break;
                }
                return ctx.fail(id, &io::Error::from(e).into()).freeze();
            }
        }
    }
    // The room may be a little larger than asked for.
    buf.truncate(want);
    finish_read(ctx, id, buf, len)
}

/// A DATA reply of the bytes read into `buf`, or EOF when `len` were asked
/// for and there were none.
pub(super) fn finish_read(ctx: &Ctx, id: u32, mut buf: Vec<u8>, len: usize) -> Bytes {
    let n = buf.len().saturating_sub(wire::DATA_HEADER);
    if n == 0 && len > 0 {
        ctx.buffers.give_back(buf);
        return wire::status(id, fx::EOF, "End of file").freeze();
    }
    ctx.counters.read(n as u64);
    wire::finish_data(&mut buf, n);
    ctx.buffers.seal(buf)
}

/// WRITE without blocking, like [`read_cached`]: the packet's data goes
/// straight to `pwritev2(RWF_NOWAIT)` (or `pwrite` for a file in memory);
/// what would wait (dirty-page throttling, block allocation) goes on in
/// the blocking pool ([`write_rest`]). `Pending` carries how many bytes
/// are written.
pub(super) fn write_cached(ctx: &Ctx, id: u32, f: &OpenFile, offset: u64, data: &Bytes) -> Partial {
    if let Err(e) = ctx.root.require_write() {
        return Partial::Done(ctx.fail(id, &e).freeze());
    }
    if !f.writable {
        return Partial::Done(
            ctx.failure(id, fx::PERMISSION_DENIED, "handle not open for writing")
                .freeze(),
        );
    }
    if let Err(e) = ctx
        .root
        .room_for_write(&f.growth, &f.file, data.len() as u64)
    {
        return Partial::Done(ctx.fail(id, &e).freeze());
    }
    let mode = f.writes.load(Ordering::Relaxed);
    if mode == IO_POOL {
        return Partial::Pending(Vec::new(), 0);
    }
    if mode == IO_MEMORY {
        return Partial::Done(write_rest(ctx, id, f, offset, data, 0).freeze());
    }
    let mut n = 0;
    while let Some(rest) = data.get(n..).filter(|r| !r.is_empty()) {
        match rustix::io::pwritev2(
            &f.file,
            &[io::IoSlice::new(rest)],
            offset.saturating_add(n as u64),
            rustix::io::ReadWriteFlags::NOWAIT,
        ) {
            Ok(0) => return Partial::Pending(Vec::new(), n),
            Ok(k) => n += k,
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::OPNOTSUPP) => {
                f.writes.store(IO_POOL, Ordering::Relaxed);
                return Partial::Pending(Vec::new(), n);
            }
            Err(_) => return Partial::Pending(Vec::new(), n),
        }
    }
    ctx.counters.written(data.len() as u64);
    Partial::Done(wire::status(id, fx::OK, "Success").freeze())
}

/// The rest of a WRITE (from byte `n` of the data), on the blocking pool.
pub(super) fn write_rest(
    ctx: &Ctx,
    id: u32,
    f: &OpenFile,
    offset: u64,
    data: &Bytes,
    n: usize,
) -> BytesMut {
    let rest = data.get(n..).unwrap_or_default();
    match f.file.write_all_at(rest, offset.saturating_add(n as u64)) {
        Ok(()) => {
            ctx.counters.written(data.len() as u64);
            wire::status(id, fx::OK, "Success")
        }
        Err(e) => ctx.fail(id, &e.into()),
    }
}
