//! An SFTP server: protocol version 3 (draft-ietf-secsh-filexfer-02, as
//! OpenSSH implements it) with OpenSSH's extensions, on any byte stream.
//!
//! The SSH front end hands [`serve`] the channel of an `sftp` subsystem
//! request; tests and benchmarks use `coffer sftp-server` on stdin/stdout.
//! Every file operation goes through the session's [`Root`], which holds
//! the policy (confinement, read-only, no-delete).
//!
//! # Concurrency
//!
//! One task reads and decodes packets; one task writes replies. READ, WRITE
//! and FSTAT on an open file handle are the data path and may run
//! concurrently (`pread`/`pwrite` need no shared file position):
//! - a READ the page cache can serve is done right in the protocol task
//!   (`preadv2(RWF_NOWAIT)`, straight into the reply buffer), and so is a
//!   WRITE where `pwritev2(RWF_NOWAIT)` is supported; files on tmpfs never
//!   wait for a disk and are always done there;
//! - what would wait for the disk goes to tokio's blocking pool; requests
//!   that arrive together (up to 8 or 1 MiB) go as one job, so a burst of
//!   64 requests costs a few thread hand-offs, not 64.
//!
//! Replies leave in request order all the same: the protocol would allow
//! any order, but OpenSSH's clients (9.2 at least) truncate an in-place
//! download (`scp` in SFTP mode) at the first reply that arrives out of
//! order. Replies that are ready are handed on together ([`Replies`]): on a
//! byte stream in one vectored write, on an SSH channel as whole packets
//! cut from the replies without copying them. DATA replies are read
//! straight into buffers that are reused while a file is open. Two data
//! requests on the same handle that conflict (a write overlapping another
//! write or a read, an FSTAT after a write, anything on an append-mode
//! handle) are kept in order: the later one waits. Every other request is
//! a barrier: it waits until all requests in flight are done and then runs
//! alone on the blocking pool, so metadata operations (open, close, rename,
//! setstat, ...) see the effects of everything sent before them. OPEN and
//! CLOSE skip the pool when they cannot wait on a device (a small file
//! costs two thread hand-offs less): a file to read whose path is in the
//! kernel's lookup cache, or any file in a folder on tmpfs, is opened in
//! the protocol task ([`Root::open_file_now`]), and such a file, or one on
//! tmpfs, is closed there too.
//!
//! # Extensions
//!
//! `posix-rename`, `statvfs`, `fstatvfs`, `hardlink`, `fsync`, `lsetstat`,
//! `limits`, `expand-path` (all `@openssh.com`), `copy-data` and
//! `home-directory`. `users-groups-by-id@openssh.com` is not offered: it
//! would tell clients the host's account names; without it OpenSSH's
//! `ls -l` shows the server's long names, which name the account.
//!
//! # Limits
//!
//! At most [`SftpLimits::max_outstanding`] batches of requests are in
//! flight, and READ replies being made or waiting to be sent hold at most
//! [`SftpLimits::max_read_queued`] bytes; beyond that the server waits for
//! the client to take its replies. Requests that come meanwhile wait in the
//! stream: on an SSH channel they are taken off the channel regardless (up
//! to 16 MiB ahead), because russh stalls the whole connection, replies
//! included, while a channel's queue is full. At most 65,536 replies wait
//! to be sent. At most [`SftpLimits::max_handles`] handles are open. READ
//! lengths are cut to [`SftpLimits::max_read`]. A packet longer than
//! [`SftpLimits::max_packet`] (but at most 64 MiB) is skipped without
//! being buffered and answered with a failure; a longer one, a malformed
//! one, or a stream that ends inside a packet ends the session with
//! [`SftpError::Protocol`].

mod wire;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::unix::fs::FileExt as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Buf as _, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;

use super::budget;
use super::{Counters, Fault, Follow, FsError, Listing, OpenHow, Root, Stat, Summary, VPath};
use wire::{Attrs, Extended, Frame, FrameError, FrameReader, Request, fx, msg, open_flags};

/// Bounds of one SFTP session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SftpLimits {
    /// Batches of requests in flight at once.
    pub max_outstanding: usize,
    /// Open file and folder handles at once.
    pub max_handles: usize,
    /// Longest READ answered; longer ones are cut (clients ask again).
    pub max_read: u32,
    /// Bytes of READ replies being made or waiting to be sent (at least
    /// `max_read`); further READs wait until the client takes replies.
    pub max_read_queued: usize,
    /// Longest packet accepted, advertised in `limits@openssh.com`.
    pub max_packet: u32,
}

impl Default for SftpLimits {
    /// 64 requests, 256 KiB reads and packets of 256 KiB + 1 KiB
    /// (advertised in `limits@openssh.com`, so OpenSSH's client reads
    /// 255 KiB at a time, as it does from its own server), 4 MiB of READ
    /// replies queued. Reads of 64 KiB cost the client three times the
    /// system calls per GiB, and the client shares the box's cores
    /// (benches/RESULTS.md); 4 MiB is twice what OpenSSH's client lets
    /// the server send before it acknowledges.
    fn default() -> Self {
        SftpLimits {
            max_outstanding: 64,
            max_handles: 256,
            max_read: 256 * 1024,
            max_read_queued: 4 * 1024 * 1024,
            max_packet: 256 * 1024 + 1024,
        }
    }
}

impl SftpLimits {
    /// The limits brought into workable ranges.
    fn sane(self) -> Self {
        let max_packet = self.max_packet.clamp(4096, wire::HARD_PACKET_LIMIT);
        // A DATA reply must fit in a packet the client accepts.
        let max_read = self.max_read.clamp(1, max_packet - 1024);
        SftpLimits {
            max_outstanding: self.max_outstanding.clamp(1, 4096),
            max_handles: self.max_handles.max(1),
            max_read,
            max_read_queued: self.max_read_queued.clamp(max_read as usize, 1 << 30),
            max_packet,
        }
    }
}

/// Why an SFTP session ended abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SftpError {
    /// Reading from or writing to the client failed.
    #[error("connection failed: {0}")]
    Io(#[from] io::Error),
    /// The client broke the protocol (malformed, truncated or huge packet).
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl From<FrameError> for SftpError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Io(e) => SftpError::Io(e),
            FrameError::Wire(e) => SftpError::Protocol(e.to_string()),
        }
    }
}

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

/// The stream SFTP requests come on.
///
/// A stream whose bytes hold shares of a memory budget (an SSH channel's
/// requests, [`super::budget`]) keeps the shares of the bytes it handed
/// out until the server says they are no longer buffered: the server
/// calls [`Requests::retain`] before each read with the number of bytes
/// it still holds (an unfinished packet).
pub trait Requests: AsyncRead + Unpin {
    /// Only the last `n` bytes handed out are still held by the reader.
    fn retain(&mut self, n: usize) {
        let _ = n;
    }
}

impl<T: AsyncRead> Requests for tokio::io::ReadHalf<T> {}
impl Requests for &[u8] {}
impl Requests for tokio::io::DuplexStream {}

/// Serves SFTP on `stream` until the client closes it, confined to `root`.
pub async fn serve<S>(stream: S, root: Arc<Root>, limits: SftpLimits) -> Result<Summary, SftpError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (read_half, write_half) = tokio::io::split(stream);
    let purse = budget::Purse::own();
    serve_with(read_half, StreamReplies(write_half), root, limits, purse).await
}

/// Serves SFTP: requests from `requests` until it ends, replies to
/// `replies`, confined to `root`; replies and data on their way draw on
/// `purse`, the account's part of the work pool.
pub async fn serve_with<R, W>(
    requests: R,
    replies: W,
    root: Arc<Root>,
    limits: SftpLimits,
    purse: Arc<budget::Purse>,
) -> Result<Summary, SftpError>
where
    R: Requests,
    W: Replies,
{
    let limits = limits.sane();
    let (queue, rx) = mpsc::channel(REPLY_QUEUE);
    let writer = tokio::spawn(write_loop(replies, rx));
    let counters = Arc::new(Counters::default());
    let mut session = Session {
        ctx: Arc::new(Ctx {
            root,
            counters: counters.clone(),
            limits,
            buffers: Arc::new(Buffers::default()),
            purse,
        }),
        handles: HashMap::new(),
        next_handle: 1,
        queue,
        read_budget: Arc::new(Semaphore::new(limits.max_read_queued)),
        tasks: JoinSet::new(),
        in_flight: Vec::new(),
        next_seq: 0,
        batch: Vec::new(),
        batch_bytes: 0,
    };
    let mut frames = FrameReader::new(requests, limits.max_packet);
    let outcome = session.run(&mut frames).await;
    session.barrier().await;
    drop(session);
    let written = match writer.await {
        Ok(result) => result,
        Err(_) => Err(io::Error::other("the reply writer stopped")),
    };
    match (outcome, written) {
        (Err(e @ SftpError::Protocol(_)), _) => Err(e),
        (_, Err(e)) => Err(SftpError::Io(e)),
        (Err(e), Ok(())) => Err(e),
        (Ok(()), Ok(())) => Ok(counters.summary()),
    }
}

/// Most replies waiting to be sent. Replies wait only while the client does
/// not take them: the server does not stop reading requests for them (see
/// the module documentation).
const REPLY_QUEUE: usize = 65_536;

/// A reply in the queue, and the share of the read budget its data holds
/// until the writer takes it.
type Queued = (Pending, Option<Share>);

/// Bytes a reply costs in the queue besides its data (the queue's slot,
/// the shared bytes' header, the channel a reply being made comes on),
/// counted against the work pool with it.
const QUEUED_OVERHEAD: usize = 256;

/// What a reply's data holds until the writer takes it: a share of the
/// session's read budget (READ replies) and of the process's work pool
/// ([`super::budget::work`]; READ replies and WRITE data).
#[derive(Debug)]
struct Share {
    _session: Option<OwnedSemaphorePermit>,
    _work: Option<budget::Grant>,
}

/// The first reply in line whose work is not done yet, with its share of
/// the read budget.
type Head = (u32, oneshot::Receiver<Bytes>, Option<Share>);

/// Replies ready to be sent, with the shares of the budget they hold until
/// they have gone.
#[derive(Default)]
struct Ready {
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
fn take(queued: Queued, ready: &mut Ready) -> Option<Head> {
    match queued {
        (Pending::Ready(frame), share) => {
            ready.push(frame, share);
            None
        }
        (Pending::Later(id, reply), budget) => Some((id, reply, budget)),
    }
}

/// A reply in the queue, in request order.
enum Pending {
    /// Already built.
    Ready(Bytes),
    /// Being worked on; the id answers with a failure if the work is lost.
    Later(u32, oneshot::Receiver<Bytes>),
}

/// Sends replies in the order the requests came (OpenSSH's clients up to
/// 9.x truncate an in-place download whose replies arrive out of order),
/// while the work behind them runs concurrently. Replies that are ready
/// are handed to `out` together.
async fn write_loop<W: Replies>(mut out: W, mut rx: mpsc::Receiver<Queued>) -> io::Result<()> {
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

/// What every request task needs.
struct Ctx {
    root: Arc<Root>,
    counters: Arc<Counters>,
    limits: SftpLimits,
    buffers: Arc<Buffers>,
    /// The account's part of the work pool.
    purse: Arc<budget::Purse>,
}

impl Ctx {
    fn fail(&self, id: u32, e: &FsError) -> BytesMut {
        let code = match e.fault() {
            Fault::NoSuchFile => fx::NO_SUCH_FILE,
            Fault::PermissionDenied => fx::PERMISSION_DENIED,
            Fault::Failure => fx::FAILURE,
            Fault::BadMessage => fx::BAD_MESSAGE,
            Fault::Unsupported => fx::OP_UNSUPPORTED,
        };
        self.counters.failed();
        wire::status(id, code, &e.to_string())
    }

    fn failure(&self, id: u32, code: u32, message: &str) -> BytesMut {
        self.counters.failed();
        wire::status(id, code, message)
    }

    fn done(&self, id: u32, result: Result<(), FsError>) -> BytesMut {
        match result {
            Ok(()) => wire::status(id, fx::OK, "Success"),
            Err(e) => self.fail(id, &e),
        }
    }

    /// A client path, normalised.
    fn path(&self, raw: &[u8]) -> Result<VPath, FsError> {
        VPath::parse(raw)
    }
}

/// An open file.
struct OpenFile {
    file: std::fs::File,
    readable: bool,
    writable: bool,
    append: bool,
    /// How READs on it may run in the async task (see [`read_cached`]).
    reads: AtomicU8,
    /// How WRITEs on it may run in the async task (see [`write_cached`]).
    writes: AtomicU8,
    /// Bytes written to it, for the free-space reserve.
    growth: super::Growth,
    /// Closing cannot wait on a device (a file in memory, or one opened
    /// for reading from a cached path, which has nothing to write back):
    /// CLOSE closes it in the async task instead of on the blocking pool.
    close_now: bool,
}

/// [`OpenFile::reads`] and [`OpenFile::writes`]: in the async task
/// through the page cache only (`RWF_NOWAIT`), and on the blocking pool
/// when that would wait.
const IO_NOWAIT: u8 = 0;
/// The file lives in memory (tmpfs): its I/O never waits for a disk.
const IO_MEMORY: u8 = 1;
/// `RWF_NOWAIT` is not supported here: all I/O on the blocking pool.
const IO_POOL: u8 = 2;

/// How I/O on `file` can avoid the blocking pool.
fn io_mode(file: &std::fs::File) -> u8 {
    if super::in_memory(file) {
        IO_MEMORY
    } else {
        IO_NOWAIT
    }
}

/// What a handle names.
#[derive(Clone)]
enum Handle {
    File(Arc<OpenFile>),
    Dir(Arc<Mutex<Listing>>),
}

/// How a concurrent request touches its handle.
#[derive(Clone, Copy, Debug)]
enum Access {
    Read { offset: u64, len: u64 },
    Write { offset: u64, len: u64 },
    Stat,
}

impl Access {
    fn conflicts(self, other: Access) -> bool {
        use Access::*;
        let overlap =
            |a: u64, al: u64, b: u64, bl: u64| a < b.saturating_add(bl) && b < a.saturating_add(al);
        match (self, other) {
            (Read { .. } | Stat, Read { .. } | Stat) => false,
            (Write { .. }, Stat) | (Stat, Write { .. }) => true,
            (Write { offset: a, len: al }, Write { offset: b, len: bl })
            | (Write { offset: a, len: al }, Read { offset: b, len: bl })
            | (Read { offset: a, len: al }, Write { offset: b, len: bl }) => overlap(a, al, b, bl),
        }
    }
}

/// A request running on the blocking pool.
struct InFlight {
    seq: u64,
    handle: u32,
    access: Access,
}

struct Session {
    ctx: Arc<Ctx>,
    handles: HashMap<u32, Handle>,
    next_handle: u32,
    queue: mpsc::Sender<Queued>,
    /// Bytes of READ replies being made or waiting to be sent, at most
    /// `max_read_queued`.
    read_budget: Arc<Semaphore>,
    tasks: JoinSet<u64>,
    in_flight: Vec<InFlight>,
    /// The sequence number of the next batch (and of the one being filled).
    next_seq: u64,
    /// Concurrent requests gathered while more packets are buffered; they
    /// go to the blocking pool as one job (fewer thread hand-offs).
    batch: Vec<(Job, oneshot::Sender<Bytes>)>,
    /// Bytes the gathered requests read or write.
    batch_bytes: u64,
}

/// Work for the blocking pool that answers one request.
type Job = Box<dyn FnOnce(&Ctx) -> Bytes + Send>;

/// Most requests in one batch job, and most bytes they move.
const BATCH_REQUESTS: usize = 8;
const BATCH_BYTES: u64 = 1024 * 1024;

impl Session {
    async fn run<R: Requests>(&mut self, frames: &mut FrameReader<R>) -> Result<(), SftpError> {
        match frames.next().await? {
            None => return Ok(()),
            Some(Frame::Packet { ty: msg::INIT, .. }) => {
                // Whatever version the client speaks, the answer is 3.
                if !self.send(wire::version(wire::EXTENSIONS)).await {
                    return Ok(());
                }
            }
            Some(_) => return Err(SftpError::Protocol("the first packet must be INIT".into())),
        }
        loop {
            self.reap();
            while self.tasks.len() >= self.ctx.limits.max_outstanding {
                self.join_one().await;
            }
            if self.queue.is_closed() {
                return Ok(());
            }
            if !frames.has_frame() {
                // Nothing more to gather without waiting: start the work.
                self.submit();
            }
            let Some(frame) = frames.next().await? else {
                return Ok(());
            };
            let sent = match frame {
                Frame::TooLarge { id, .. } => {
                    let reply = self.ctx.failure(id, fx::FAILURE, "packet too large");
                    self.send(reply).await
                }
                Frame::Packet { ty, body } => {
                    let (id, request) = wire::decode(ty, body).map_err(|e| {
                        SftpError::Protocol(format!("malformed packet of type {ty}: {e}"))
                    })?;
                    self.handle(id, request).await?
                }
            };
            if !sent {
                return Ok(());
            }
        }
    }

    /// Queues a reply; false when the writer is gone.
    async fn send(&mut self, reply: impl Into<Bytes>) -> bool {
        self.enqueue(Pending::Ready(reply.into()), None).await
    }

    /// A share of the read budget and of the work pool for a READ of
    /// `len` bytes; when either is spent, waits for the writer (after
    /// starting the gathered work, which the writer may wait for).
    async fn reserve(&mut self, len: u32) -> Option<Share> {
        let budget = self.read_budget.clone();
        let session = match budget.clone().try_acquire_many_owned(len) {
            Ok(share) => Some(share),
            Err(_) => {
                self.submit();
                budget.acquire_many_owned(len).await.ok()
            }
        };
        let work = self.work_share(len as usize + QUEUED_OVERHEAD).await;
        Some(Share {
            _session: session,
            _work: work,
        })
    }

    /// A share of the process's work pool for `len` bytes of data on their
    /// way (waiting, after starting the gathered work, while it is spent).
    async fn work_share(&mut self, len: usize) -> Option<budget::Grant> {
        let purse = self.ctx.purse.clone();
        match purse.try_take(budget::Pool::Work, len) {
            Some(share) => Some(share),
            None => {
                self.submit();
                purse.take(budget::Pool::Work, len).await
            }
        }
    }

    /// Puts a reply in line; when the line is full, waits for the writer
    /// (after starting the gathered work, which the writer may wait for).
    /// A reply without a share of its own (anything but READ and WRITE)
    /// takes its size from the work pool first, so replies a client does
    /// not read (listings, names) count against the process's budget too.
    async fn enqueue(&mut self, pending: Pending, budget: Option<Share>) -> bool {
        let budget = match budget {
            Some(share) => Some(share),
            None => {
                let len = match &pending {
                    Pending::Ready(frame) => frame.len(),
                    Pending::Later(..) => 0,
                };
                let work = self.work_share(len + QUEUED_OVERHEAD).await;
                Some(Share {
                    _session: None,
                    _work: work,
                })
            }
        };
        match self.queue.try_send((pending, budget)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
            Err(mpsc::error::TrySendError::Full(pending)) => {
                self.submit();
                self.queue.send(pending).await.is_ok()
            }
        }
    }

    /// Sends the gathered requests to the blocking pool as one job.
    fn submit(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let ctx = self.ctx.clone();
        self.tasks.spawn_blocking(move || {
            for (job, reply) in batch {
                let _ = reply.send(job(&ctx));
            }
            seq
        });
    }

    /// Forgets finished tasks.
    fn reap(&mut self) {
        while let Some(done) = self.tasks.try_join_next() {
            if let Ok(seq) = done {
                self.in_flight.retain(|t| t.seq != seq);
            }
        }
    }

    async fn join_one(&mut self) {
        if let Some(Ok(seq)) = self.tasks.join_next().await {
            self.in_flight.retain(|t| t.seq != seq);
        }
    }

    /// Waits for every request in flight.
    async fn barrier(&mut self) {
        self.submit();
        while self.tasks.join_next().await.is_some() {}
        self.in_flight.clear();
    }

    fn lookup(&self, raw: &[u8]) -> Option<(u32, Handle)> {
        let id = u32::from_be_bytes(<[u8; 4]>::try_from(raw).ok()?);
        self.handles.get(&id).map(|h| (id, h.clone()))
    }

    /// Gathers a job to run on the blocking pool alongside others; false
    /// when the client is gone.
    async fn spawn_io<F, R>(
        &mut self,
        id: u32,
        handle: u32,
        access: Access,
        budget: Option<Share>,
        job: F,
    ) -> bool
    where
        F: FnOnce(&Ctx) -> R + Send + 'static,
        R: Into<Bytes>,
    {
        let (reply_tx, reply_rx) = oneshot::channel();
        if !self.enqueue(Pending::Later(id, reply_rx), budget).await {
            return false;
        }
        self.in_flight.push(InFlight {
            seq: self.next_seq,
            handle,
            access,
        });
        self.batch
            .push((Box::new(move |ctx: &Ctx| job(ctx).into()), reply_tx));
        self.batch_bytes += match access {
            Access::Read { len, .. } | Access::Write { len, .. } => len,
            Access::Stat => 0,
        };
        if self.batch.len() >= BATCH_REQUESTS || self.batch_bytes >= BATCH_BYTES {
            self.submit();
        }
        true
    }

    /// Runs a job on the blocking pool after a barrier, alone.
    async fn alone<T, F>(&mut self, job: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce(&Ctx) -> T + Send + 'static,
    {
        self.barrier().await;
        self.on_pool(job).await
    }

    /// Runs a job on the blocking pool (the caller has had its barrier).
    async fn on_pool<T, F>(&mut self, job: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce(&Ctx) -> T + Send + 'static,
    {
        let ctx = self.ctx.clone();
        tokio::task::spawn_blocking(move || job(&ctx)).await.ok()
    }

    /// Runs a barrier job that answers with one reply.
    async fn reply_alone<F, R>(&mut self, id: u32, job: F) -> bool
    where
        F: FnOnce(&Ctx) -> R + Send + 'static,
        R: Into<Bytes> + Send + 'static,
    {
        let reply: Bytes = match self.alone(job).await {
            Some(reply) => reply.into(),
            None => self.ctx.failure(id, fx::FAILURE, "internal error").freeze(),
        };
        self.send(reply).await
    }

    /// Handles one request; false when the client is gone.
    async fn handle(&mut self, id: u32, request: Request) -> Result<bool, SftpError> {
        let ctx = self.ctx.clone();
        let sent = match request {
            Request::Init => {
                return Err(SftpError::Protocol("INIT sent twice".into()));
            }
            Request::Read {
                handle,
                offset,
                len,
            } => match self.lookup(&handle) {
                Some((h, Handle::File(f))) => {
                    let len = len.min(ctx.limits.max_read);
                    let access = Access::Read {
                        offset,
                        len: u64::from(len),
                    };
                    self.order(h, access).await;
                    let budget = self.reserve(len).await;
                    let len = len as usize;
                    match read_cached(&ctx, id, &f, offset, len) {
                        Partial::Done(reply) => self.enqueue(Pending::Ready(reply), budget).await,
                        Partial::Pending(buf, _) => {
                            self.spawn_io(id, h, access, budget, move |ctx| {
                                read_rest(ctx, id, &f, offset, buf, len)
                            })
                            .await
                        }
                    }
                }
                _ => self.send(bad_handle(&ctx, id)).await,
            },
            Request::Write {
                handle,
                offset,
                data,
            } => match self.lookup(&handle) {
                Some((h, Handle::File(f))) => {
                    let access = Access::Write {
                        offset,
                        len: data.len() as u64,
                    };
                    if f.append {
                        // Appends land in arrival order.
                        self.barrier().await;
                    } else {
                        self.order(h, access).await;
                    }
                    let work = self.work_share(data.len() + QUEUED_OVERHEAD).await;
                    match write_cached(&ctx, id, &f, offset, &data) {
                        Partial::Done(reply) => self.send(reply).await,
                        Partial::Pending(_, n) => {
                            let share = Share {
                                _session: None,
                                _work: work,
                            };
                            self.spawn_io(id, h, access, Some(share), move |ctx| {
                                write_rest(ctx, id, &f, offset, &data, n)
                            })
                            .await
                        }
                    }
                }
                _ => self.send(bad_handle(&ctx, id)).await,
            },
            Request::Fstat { handle } => match self.lookup(&handle) {
                Some((h, Handle::File(f))) => {
                    self.order(h, Access::Stat).await;
                    // The inode of an open file is in memory: fstat does
                    // not wait for a disk.
                    let reply = match f.file.metadata() {
                        Ok(m) => wire::attrs(id, &Stat::from_std(&m)),
                        Err(e) => ctx.fail(id, &e.into()),
                    };
                    self.send(reply).await
                }
                Some((_, Handle::Dir(d))) => {
                    self.reply_alone(id, move |ctx| {
                        let meta = d
                            .lock()
                            .map_err(|_| FsError::Invalid("handle unusable"))
                            .and_then(|l| Ok(l.dir().dir_metadata()?));
                        match meta {
                            Ok(m) => wire::attrs(id, &Stat::from_cap(&m)),
                            Err(e) => ctx.fail(id, &e),
                        }
                    })
                    .await
                }
                None => self.send(bad_handle(&ctx, id)).await,
            },
            Request::Open {
                path,
                pflags,
                attrs,
            } => self.open(id, path, pflags, attrs).await,
            Request::Close { handle } => {
                self.barrier().await;
                let removed = <[u8; 4]>::try_from(handle.as_ref())
                    .ok()
                    .and_then(|raw| self.handles.remove(&u32::from_be_bytes(raw)));
                let reply = match removed {
                    Some(Handle::File(f)) => {
                        // The last reference: closing happens here, on the
                        // blocking pool when close can wait on a slow disk.
                        if f.close_now {
                            drop(f);
                        } else {
                            let _ = tokio::task::spawn_blocking(move || drop(f)).await;
                        }
                        if !self.handles.values().any(|h| matches!(h, Handle::File(_))) {
                            self.ctx.buffers.release();
                        }
                        wire::status(id, fx::OK, "Success")
                    }
                    Some(Handle::Dir(_)) => wire::status(id, fx::OK, "Success"),
                    None => bad_handle(&ctx, id),
                };
                self.send(reply).await
            }
            Request::Opendir { path } => {
                if self.handles.len() >= ctx.limits.max_handles {
                    let reply = ctx.failure(id, fx::FAILURE, "too many open handles");
                    return Ok(self.send(reply).await);
                }
                let opened = self
                    .alone(move |ctx| ctx.path(&path).and_then(|p| ctx.root.open_dir(&p)))
                    .await;
                let reply = match opened {
                    Some(Ok(listing)) => {
                        match self.new_handle(Handle::Dir(Arc::new(Mutex::new(listing)))) {
                            Some(h) => wire::handle(id, h),
                            None => ctx.failure(id, fx::FAILURE, "too many open handles"),
                        }
                    }
                    Some(Err(e)) => ctx.fail(id, &e),
                    None => ctx.failure(id, fx::FAILURE, "internal error"),
                };
                self.send(reply).await
            }
            Request::Readdir { handle } => match self.lookup(&handle) {
                Some((_, Handle::Dir(d))) => {
                    self.reply_alone(id, move |ctx| readdir(ctx, id, &d)).await
                }
                _ => self.send(bad_handle(&ctx, id)).await,
            },
            Request::Fsetstat { handle, attrs } => match self.lookup(&handle) {
                Some((_, Handle::File(f))) => {
                    self.reply_alone(id, move |ctx| {
                        ctx.done(id, ctx.root.set_fd_attrs(&f.file, &attrs.to_set()))
                    })
                    .await
                }
                Some((_, Handle::Dir(d))) => {
                    self.reply_alone(id, move |ctx| {
                        let result = d
                            .lock()
                            .map_err(|_| FsError::Invalid("handle unusable"))
                            .and_then(|l| ctx.root.set_fd_attrs(l.dir(), &attrs.to_set()));
                        ctx.done(id, result)
                    })
                    .await
                }
                None => self.send(bad_handle(&ctx, id)).await,
            },
            Request::Lstat { path } => self.stat(id, path, Follow::No).await,
            Request::Stat { path } => self.stat(id, path, Follow::Yes).await,
            Request::Setstat { path, attrs } => self.setstat(id, path, attrs, Follow::Yes).await,
            Request::Remove { path } => {
                self.reply_alone(id, move |ctx| {
                    ctx.done(id, ctx.path(&path).and_then(|p| ctx.root.remove(&p)))
                })
                .await
            }
            Request::Mkdir { path, attrs } => {
                self.reply_alone(id, move |ctx| {
                    ctx.done(
                        id,
                        ctx.path(&path)
                            .and_then(|p| ctx.root.mkdir(&p, attrs.permissions)),
                    )
                })
                .await
            }
            Request::Rmdir { path } => {
                self.reply_alone(id, move |ctx| {
                    ctx.done(id, ctx.path(&path).and_then(|p| ctx.root.rmdir(&p)))
                })
                .await
            }
            Request::Realpath { path } => {
                self.reply_alone(id, move |ctx| {
                    match ctx.path(&path).and_then(|p| ctx.root.real_path(&p)) {
                        Ok(p) => wire::one_name(id, p.as_bytes()),
                        Err(e) => ctx.fail(id, &e),
                    }
                })
                .await
            }
            Request::Rename { from, to } => self.rename(id, from, to, false).await,
            Request::Readlink { path } => {
                self.reply_alone(id, move |ctx| {
                    match ctx.path(&path).and_then(|p| ctx.root.read_link(&p)) {
                        Ok(target) => wire::one_name(id, &target),
                        Err(e) => ctx.fail(id, &e),
                    }
                })
                .await
            }
            Request::Symlink { target, link } => {
                self.reply_alone(id, move |ctx| {
                    ctx.done(
                        id,
                        ctx.path(&link).and_then(|l| ctx.root.symlink(&target, &l)),
                    )
                })
                .await
            }
            Request::Extended(ext) => self.extended(id, ext).await,
            Request::Unknown(_) => {
                let reply = ctx.failure(id, fx::OP_UNSUPPORTED, "unsupported request");
                self.send(reply).await
            }
        };
        Ok(sent)
    }

    /// Waits for the requests in flight on `handle` that `access` must
    /// not overtake.
    async fn order(&mut self, handle: u32, access: Access) {
        self.reap();
        if self
            .in_flight
            .iter()
            .any(|t| t.handle == handle && t.access.conflicts(access))
        {
            self.barrier().await;
        }
    }

    fn new_handle(&mut self, handle: Handle) -> Option<u32> {
        if self.handles.len() >= self.ctx.limits.max_handles {
            return None;
        }
        let id = self.next_handle;
        self.next_handle = self.next_handle.checked_add(1)?;
        self.handles.insert(id, handle);
        Some(id)
    }

    async fn open(&mut self, id: u32, path: Bytes, pflags: u32, attrs: Attrs) -> bool {
        let ctx = self.ctx.clone();
        if self.handles.len() >= ctx.limits.max_handles {
            let reply = ctx.failure(id, fx::FAILURE, "too many open handles");
            return self.send(reply).await;
        }
        let how = OpenHow {
            read: pflags & open_flags::READ != 0,
            write: pflags & open_flags::WRITE != 0,
            append: pflags & open_flags::APPEND != 0,
            create: pflags & open_flags::CREAT != 0,
            truncate: pflags & open_flags::TRUNC != 0,
            exclusive: pflags & open_flags::EXCL != 0,
            mode: attrs.permissions,
        };
        // A file that can be opened without waiting on a device is opened
        // here; any other goes to the blocking pool.
        self.barrier().await;
        let now = ctx
            .path(&path)
            .ok()
            .and_then(|p| ctx.root.open_file_now(&p, &how));
        let opened_now = now.is_some();
        let opened = match now {
            Some(file) => Some(Ok(file)),
            None => {
                self.on_pool(move |ctx| ctx.path(&path).and_then(|p| ctx.root.open_file(&p, &how)))
                    .await
            }
        };
        let reply = match opened {
            Some(Ok(file)) => {
                let mode = io_mode(&file);
                let open = OpenFile {
                    reads: AtomicU8::new(mode),
                    writes: AtomicU8::new(mode),
                    growth: super::Growth::default(),
                    file,
                    readable: how.read || !how.modifies(),
                    writable: how.modifies(),
                    append: how.append,
                    close_now: mode == IO_MEMORY || (opened_now && !how.modifies()),
                };
                match self.new_handle(Handle::File(Arc::new(open))) {
                    Some(h) => {
                        ctx.counters.opened();
                        wire::handle(id, h)
                    }
                    None => ctx.failure(id, fx::FAILURE, "too many open handles"),
                }
            }
            Some(Err(e)) => ctx.fail(id, &e),
            None => ctx.failure(id, fx::FAILURE, "internal error"),
        };
        self.send(reply).await
    }

    async fn stat(&mut self, id: u32, path: Bytes, follow: Follow) -> bool {
        self.reply_alone(id, move |ctx| {
            match ctx.path(&path).and_then(|p| ctx.root.stat(&p, follow)) {
                Ok(st) => wire::attrs(id, &st),
                Err(e) => ctx.fail(id, &e),
            }
        })
        .await
    }

    async fn setstat(&mut self, id: u32, path: Bytes, attrs: Attrs, follow: Follow) -> bool {
        self.reply_alone(id, move |ctx| {
            ctx.done(
                id,
                ctx.path(&path)
                    .and_then(|p| ctx.root.set_attrs(&p, follow, &attrs.to_set())),
            )
        })
        .await
    }

    async fn rename(&mut self, id: u32, from: Bytes, to: Bytes, replace: bool) -> bool {
        self.reply_alone(id, move |ctx| {
            let result = ctx
                .path(&from)
                .and_then(|f| Ok((f, ctx.path(&to)?)))
                .and_then(|(f, t)| ctx.root.rename(&f, &t, replace));
            ctx.done(id, result)
        })
        .await
    }

    async fn extended(&mut self, id: u32, ext: Extended) -> bool {
        let ctx = self.ctx.clone();
        match ext {
            Extended::PosixRename { from, to } => self.rename(id, from, to, true).await,
            Extended::Lsetstat { path, attrs } => self.setstat(id, path, attrs, Follow::No).await,
            Extended::Hardlink { from, to } => {
                self.reply_alone(id, move |ctx| {
                    let result = ctx
                        .path(&from)
                        .and_then(|f| Ok((f, ctx.path(&to)?)))
                        .and_then(|(f, t)| ctx.root.hard_link(&f, &t));
                    ctx.done(id, result)
                })
                .await
            }
            Extended::Statvfs { path } => {
                self.reply_alone(id, move |ctx| {
                    match ctx.path(&path).and_then(|p| ctx.root.statvfs(&p)) {
                        Ok(st) => wire::statvfs(id, &st),
                        Err(e) => ctx.fail(id, &e),
                    }
                })
                .await
            }
            Extended::Fstatvfs { handle } => match self.lookup(&handle) {
                Some((_, Handle::File(f))) => {
                    self.reply_alone(id, move |ctx| match ctx.root.fstatvfs(&f.file) {
                        Ok(st) => wire::statvfs(id, &st),
                        Err(e) => ctx.fail(id, &e),
                    })
                    .await
                }
                Some((_, Handle::Dir(d))) => {
                    self.reply_alone(id, move |ctx| {
                        let result = d
                            .lock()
                            .map_err(|_| FsError::Invalid("handle unusable"))
                            .and_then(|l| ctx.root.fstatvfs(l.dir()));
                        match result {
                            Ok(st) => wire::statvfs(id, &st),
                            Err(e) => ctx.fail(id, &e),
                        }
                    })
                    .await
                }
                None => self.send(bad_handle(&ctx, id)).await,
            },
            Extended::Fsync { handle } => match self.lookup(&handle) {
                Some((_, Handle::File(f))) => {
                    self.reply_alone(id, move |ctx| {
                        let result = ctx
                            .root
                            .require_write()
                            .and_then(|()| Ok(f.file.sync_all()?));
                        ctx.done(id, result)
                    })
                    .await
                }
                Some((_, Handle::Dir(_))) => {
                    let reply = ctx.failure(id, fx::OP_UNSUPPORTED, "not a file handle");
                    self.send(reply).await
                }
                None => self.send(bad_handle(&ctx, id)).await,
            },
            Extended::Limits => {
                let l = ctx.limits;
                let reply = wire::extended_reply(
                    id,
                    &[
                        u64::from(l.max_packet),
                        u64::from(l.max_read),
                        u64::from(l.max_packet - 1024),
                        l.max_handles as u64,
                    ],
                );
                self.send(reply).await
            }
            Extended::ExpandPath { path } => {
                self.reply_alone(id, move |ctx| {
                    match expand_path(&ctx.root, &path).and_then(|p| ctx.root.real_path(&p)) {
                        Ok(p) => wire::one_name(id, p.as_bytes()),
                        Err(e) => ctx.fail(id, &e),
                    }
                })
                .await
            }
            Extended::HomeDirectory { user } => {
                let reply = if user.is_empty() || user.as_ref() == ctx.root.account().as_bytes() {
                    wire::one_name(id, b"/")
                } else {
                    ctx.failure(id, fx::FAILURE, "no such user")
                };
                self.send(reply).await
            }
            Extended::CopyData {
                read_handle,
                read_offset,
                read_len,
                write_handle,
                write_offset,
            } => {
                let from = self.lookup(&read_handle);
                let to = self.lookup(&write_handle);
                match (from, to) {
                    (Some((a, Handle::File(src))), Some((b, Handle::File(dst)))) if a != b => {
                        self.reply_alone(id, move |ctx| {
                            let result =
                                copy_data(ctx, &src, read_offset, read_len, &dst, write_offset);
                            ctx.done(id, result)
                        })
                        .await
                    }
                    _ => self.send(bad_handle(&ctx, id)).await,
                }
            }
            Extended::Unknown(_) => {
                let reply = ctx.failure(id, fx::OP_UNSUPPORTED, "unsupported extension");
                self.send(reply).await
            }
        }
    }
}

fn bad_handle(ctx: &Ctx, id: u32) -> BytesMut {
    ctx.failure(id, fx::FAILURE, "invalid handle")
}

/// A READ started in the async task.
enum Partial {
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
fn read_cached(ctx: &Ctx, id: u32, f: &OpenFile, offset: u64, len: usize) -> Partial {
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
fn read_rest(ctx: &Ctx, id: u32, f: &OpenFile, offset: u64, mut buf: Vec<u8>, len: usize) -> Bytes {
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
fn finish_read(ctx: &Ctx, id: u32, mut buf: Vec<u8>, len: usize) -> Bytes {
    let n = buf.len().saturating_sub(wire::DATA_HEADER);
    if n == 0 && len > 0 {
        ctx.buffers.give_back(buf);
        return wire::status(id, fx::EOF, "End of file").freeze();
    }
    ctx.counters.read(n as u64);
    wire::finish_data(&mut buf, n);
    ctx.buffers.seal(buf)
}

/// DATA reply buffers, reused while a session reads. Allocating a buffer for
/// each READ and freeing it on the thread that encrypted it costs page
/// faults: glibc hands freed memory of a thread's arena back to the
/// kernel, and the next READ faults it in again. At most one buffer per
/// request in flight is kept, and only while a file is open, and all
/// sessions together keep at most [`budget::KEPT_BYTES`].
#[derive(Default)]
struct Buffers {
    free: Mutex<Vec<Vec<u8>>>,
}

/// Buffers kept for reuse (one per request in flight, by default).
const BUFFERS_KEPT: usize = 64;
/// Larger buffers are not kept (the largest READ answered, plus header).
const BUFFER_KEPT_BYTES: usize = 1024 * 1024;

impl Buffers {
    /// A cleared buffer with room for `capacity` bytes.
    fn take(&self, capacity: usize) -> Vec<u8> {
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
    fn give_back(&self, buf: Vec<u8>) {
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
    fn release(&self) {
        if let Ok(mut free) = self.free.lock() {
            budget::unkeep(free.iter().map(Vec::capacity).sum());
            *free = Vec::new();
        }
    }

    /// The finished reply in `buf`, as shared bytes that come back here
    /// when the last reference is dropped (if the session still exists).
    fn seal(self: &Arc<Self>, buf: Vec<u8>) -> Bytes {
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
struct Loaned {
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

/// WRITE without blocking, like [`read_cached`]: the packet's data goes
/// straight to `pwritev2(RWF_NOWAIT)` (or `pwrite` for a file in memory);
/// what would wait (dirty-page throttling, block allocation) goes on in
/// the blocking pool ([`write_rest`]). `Pending` carries how many bytes
/// are written.
fn write_cached(ctx: &Ctx, id: u32, f: &OpenFile, offset: u64, data: &Bytes) -> Partial {
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
fn write_rest(ctx: &Ctx, id: u32, f: &OpenFile, offset: u64, data: &Bytes, n: usize) -> BytesMut {
    let rest = data.get(n..).unwrap_or_default();
    match f.file.write_all_at(rest, offset.saturating_add(n as u64)) {
        Ok(()) => {
            ctx.counters.written(data.len() as u64);
            wire::status(id, fx::OK, "Success")
        }
        Err(e) => ctx.fail(id, &e.into()),
    }
}

/// READDIR: up to 100 entries, `.` and `..` first, with `ls -l` lines.
fn readdir(ctx: &Ctx, id: u32, listing: &Mutex<Listing>) -> BytesMut {
    let Ok(mut listing) = listing.lock() else {
        return ctx.failure(id, fx::FAILURE, "handle unusable");
    };
    match listing.next_batch(&ctx.root, true, 100, 128 * 1024) {
        Ok(entries) if entries.is_empty() => wire::status(id, fx::EOF, "End of file"),
        Ok(entries) => {
            let named: Vec<_> = entries
                .into_iter()
                .map(|e| {
                    let long = ctx.root.long_name(&e.name, &e.stat);
                    (e.name, long, Attrs::from_stat(&e.stat))
                })
                .collect();
            wire::names(id, &named)
        }
        Err(e) => ctx.fail(id, &e),
    }
}

/// `expand-path@openssh.com`: `~` and `~/x` are the home, `~name` only
/// for the account's own name; everything else as any path.
fn expand_path(root: &Root, raw: &[u8]) -> Result<VPath, FsError> {
    let Some(rest) = raw.strip_prefix(b"~") else {
        return VPath::parse(raw);
    };
    let cut = rest.iter().position(|b| *b == b'/').unwrap_or(rest.len());
    let (user, tail) = rest.split_at_checked(cut).unwrap_or((rest, b""));
    if !user.is_empty() && user != root.account().as_bytes() {
        return Err(FsError::Refused(
            "other users' home folders are not reachable",
        ));
    }
    VPath::parse(tail)
}

/// `copy-data`: copies between two open files on the server.
///
/// One request copies a bounded number of bytes, known before the first
/// byte moves: `read_len`, or with 0 ("to the end") what the source holds
/// past `read_offset` when the request starts, so copying a file onto its
/// own end stops where the file ended. The bytes it adds to the
/// destination must fit in the free space above the file system's reserve
/// ([`Root::require_room`]); otherwise nothing is written.
fn copy_data(
    ctx: &Ctx,
    src: &OpenFile,
    mut read_offset: u64,
    read_len: u64,
    dst: &OpenFile,
    mut write_offset: u64,
) -> Result<(), FsError> {
    ctx.root.require_write()?;
    if !src.readable || !dst.writable {
        return Err(FsError::Invalid("handles not open for reading and writing"));
    }
    let until_eof = read_len == 0;
    let mut left = if until_eof {
        src.file.metadata()?.len().saturating_sub(read_offset)
    } else {
        read_len
    };
    let dst_size = dst.file.metadata()?.len();
    let growth = if dst.append {
        left
    } else {
        write_offset.saturating_add(left).saturating_sub(dst_size)
    };
    ctx.root.require_room(&dst.file, growth)?;
    let mut buf = vec![0u8; 256 * 1024];
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let chunk = buf.get_mut(..want).unwrap_or_default();
        let n = src.file.read_at(chunk, read_offset)?;
        if n == 0 {
            return if until_eof {
                Ok(())
            } else {
                Err(FsError::Invalid("end of file before the requested length"))
            };
        }
        let data = chunk.get(..n).unwrap_or_default();
        dst.file.write_all_at(data, write_offset)?;
        read_offset = read_offset.saturating_add(n as u64);
        write_offset = write_offset.saturating_add(n as u64);
        left = left.saturating_sub(n as u64);
    }
    Ok(())
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
