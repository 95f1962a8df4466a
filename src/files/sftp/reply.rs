//! The reply writer: where a session's replies go ([`Replies`]), the queue
//! that keeps them in request order, and the reused DATA buffers.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};

use bytes::{Buf as _, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use super::super::budget;
use super::wire::{self, fx};

/// Where a session's replies go: whole frames, in order.
pub trait Replies: Send + 'static {
    /// Sends every frame in `frames`, in order, and empties it.
    fn send(&mut self, frames: &mut VecDeque<Bytes>)
    -> impl Future<Output = io::Result<()>> + Send;
    /// Called once after the last reply.
    fn finish(&mut self) -> impl Future<Output = io::Result<()>> + Send;
}

/// Replies written to a byte stream; those that are ready go out in one
/// vectored write (a DATA reply, built in place, is never copied again),
/// and a partly written reply is resumed where the stream stopped.
pub struct StreamReplies<W>(pub W);

impl<W: AsyncWrite + Unpin + Send + 'static> Replies for StreamReplies<W> {
    async fn send(&mut self, frames: &mut VecDeque<Bytes>) -> io::Result<()> {
        while !frames.is_empty() {
            let mut n = {
                let slices: Vec<io::IoSlice<'_>> =
                    frames.iter().map(|f| io::IoSlice::new(f)).collect();
                self.0.write_vectored(&slices).await?
            };
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            while n > 0 {
                let Some(front) = frames.front_mut() else {
                    break;
                };
                if n >= front.len() {
                    n -= front.len();
                    frames.pop_front();
                } else {
                    front.advance(n);
                    n = 0;
                }
            }
        }
        Ok(())
    }

    async fn finish(&mut self) -> io::Result<()> {
        self.0.flush().await
    }
}

/// Most replies waiting to be sent. Replies wait only while the client does
/// not take them: the server does not stop reading requests for them (see
/// the module documentation).
pub(super) const REPLY_QUEUE: usize = 65_536;

/// A reply in the queue, and the share of the read budget its data holds
/// until the writer takes it.
pub(super) type Queued = (Pending, Option<Share>);

/// Bytes a reply costs in the queue besides its data (the queue's slot,
/// the shared bytes' header, the channel a reply being made comes on),
/// counted against the work pool with it.
pub(super) const QUEUED_OVERHEAD: usize = 256;

/// What a reply's data holds until the writer takes it: a share of the
/// session's read budget (READ replies) and of the process's work pool
/// ([`super::budget::work`]; READ replies and WRITE data).
#[derive(Debug)]
pub(super) struct Share {
    pub(super) _session: Option<OwnedSemaphorePermit>,
    pub(super) _work: Option<budget::Grant>,
}

/// The first reply in line whose work is not done yet, with its share of
/// the read budget.
pub(super) type Head = (u32, oneshot::Receiver<Bytes>, Option<Share>);

/// Replies ready to be sent, with the shares of the budget they hold until
/// they have gone.
#[derive(Default)]
pub(super) struct Ready {
    frames: VecDeque<Bytes>,
    bytes: usize,
    shares: Vec<Share>,
}

impl Ready {
    fn push(&mut self, frame: Bytes, share: Option<Share>) {
        self.bytes += frame.len();
        self.frames.push_back(frame);
        self.shares.extend(share);
    }

    /// Sent: the replies and their shares go.
    fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
        self.shares.clear();
    }
}

/// Takes a reply off the queue: one that is built joins `ready`; one still
/// being worked on is returned, to become the head of the line.
pub(super) fn take(queued: Queued, ready: &mut Ready) -> Option<Head> {
    match queued {
        (Pending::Ready(frame), share) => {
            ready.push(frame, share);
            None
        }
        (Pending::Later(id, reply), budget) => Some((id, reply, budget)),
    }
}

/// A reply in the queue, in request order.
pub(super) enum Pending {
    /// Already built.
    Ready(Bytes),
    /// Being worked on; the id answers with a failure if the work is lost.
    Later(u32, oneshot::Receiver<Bytes>),
}

/// Sends replies in the order the requests came (OpenSSH's clients up to
/// 9.x truncate an in-place download whose replies arrive out of order),
/// while the work behind them runs concurrently. Replies that are ready
/// are handed to `out` together.
pub(super) async fn write_loop<W: Replies>(
    mut out: W,
    mut rx: mpsc::Receiver<Queued>,
) -> io::Result<()> {
    /// Enough gathered for one send.
    const GATHER_BYTES: usize = 1024 * 1024;
    const GATHER_FRAMES: usize = 64;
    let lost = |id| wire::status(id, fx::FAILURE, "internal error").freeze();
    // Replies ready, gathered for one send; they keep their shares of the
    // budget until they have gone (the client may not be reading).
    let mut ready = Ready::default();
    // The first reply in line whose work is not done yet.
    let mut head: Option<Head> = None;
    let mut closed = false;
    loop {
        // Take everything that is ready, in order, up to the head.
        while ready.bytes < GATHER_BYTES && ready.frames.len() < GATHER_FRAMES {
            if let Some((id, reply, _)) = head.as_mut() {
                let frame = match reply.try_recv() {
                    Ok(frame) => frame,
                    Err(oneshot::error::TryRecvError::Empty) => break,
                    Err(oneshot::error::TryRecvError::Closed) => lost(*id),
                };
                let share = head.take().and_then(|(_, _, share)| share);
                ready.push(frame, share);
            }
            match rx.try_recv() {
                Ok(queued) => head = take(queued, &mut ready),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if ready.frames.is_empty() {
            // Nothing to send: wait for the head's work or the next reply.
            if let Some((id, reply, share)) = head.take() {
                let frame = reply.await.unwrap_or_else(|_| lost(id));
                ready.push(frame, share);
                continue;
            }
            if closed {
                break;
            }
            match rx.recv().await {
                Some(queued) => head = take(queued, &mut ready),
                None => break,
            }
            continue;
        }
        out.send(&mut ready.frames).await?;
        ready.clear();
    }
    out.finish().await
}

/// DATA reply buffers, reused while a session reads. Allocating a buffer for
/// each READ and freeing it on the thread that encrypted it costs page
/// faults: glibc hands freed memory of a thread's arena back to the
/// kernel, and the next READ faults it in again. At most one buffer per
/// request in flight is kept, and only while a file is open, and all
/// sessions together keep at most [`budget::KEPT_BYTES`].
#[derive(Default)]
pub(super) struct Buffers {
    free: Mutex<Vec<Vec<u8>>>,
}

/// Buffers kept for reuse (one per request in flight, by default).
pub(super) const BUFFERS_KEPT: usize = 64;
/// Larger buffers are not kept (the largest READ answered, plus header).
pub(super) const BUFFER_KEPT_BYTES: usize = 1024 * 1024;

impl Buffers {
    /// A cleared buffer with room for `capacity` bytes.
    pub(super) fn take(&self, capacity: usize) -> Vec<u8> {
        if let Ok(mut free) = self.free.lock()
            && let Some(at) = free.iter().rposition(|b| b.capacity() >= capacity)
        {
            let mut buf = free.swap_remove(at);
            budget::unkeep(buf.capacity());
            buf.clear();
            return buf;
        }
        Vec::with_capacity(capacity)
    }

    /// Keeps `buf` for a later READ, if there is room.
    pub(super) fn give_back(&self, buf: Vec<u8>) {
        if buf.capacity() > BUFFER_KEPT_BYTES {
            return;
        }
        if let Ok(mut free) = self.free.lock()
            && free.len() < BUFFERS_KEPT
            && budget::keep(buf.capacity())
        {
            free.push(buf);
        }
    }

    /// Frees every kept buffer (no file is open any more).
    pub(super) fn release(&self) {
        if let Ok(mut free) = self.free.lock() {
            budget::unkeep(free.iter().map(Vec::capacity).sum());
            *free = Vec::new();
        }
    }

    /// The finished reply in `buf`, as shared bytes that come back here
    /// when the last reference is dropped (if the session still exists).
    pub(super) fn seal(self: &Arc<Self>, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Loaned {
            buf,
            home: Arc::downgrade(self),
        })
    }
}

impl Drop for Buffers {
    fn drop(&mut self) {
        self.release();
    }
}

/// A reply buffer on its way to the client.
pub(super) struct Loaned {
    buf: Vec<u8>,
    home: std::sync::Weak<Buffers>,
}

impl AsRef<[u8]> for Loaned {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Loaned {
    fn drop(&mut self) {
        if let Some(home) = self.home.upgrade() {
            home.give_back(std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_buffers_come_back_while_the_session_lives() {
        let pool = Arc::new(Buffers::default());
        let mut buf = pool.take(1000);
        buf.extend_from_slice(b"reply");
        let first = buf.as_ptr();
        let reply = pool.seal(buf);
        let slice = reply.slice(1..3);
        drop(reply);
        assert_eq!(pool.free.lock().unwrap().len(), 0, "a slice still holds it");
        assert_eq!(&slice[..], b"ep");
        drop(slice);
        let again = pool.take(1000);
        assert_eq!(again.as_ptr(), first, "the same allocation, reused");
        assert!(again.is_empty());
        pool.give_back(again);
        pool.release();
        assert_eq!(pool.free.lock().unwrap().len(), 0);
        // A reply outliving its session is simply freed.
        let orphan = pool.seal(pool.take(10));
        drop(pool);
        drop(orphan);
    }
}
