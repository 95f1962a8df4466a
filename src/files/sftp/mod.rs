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

mod data;
mod dispatch;
mod extensions;
mod reply;
mod wire;

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;

use super::budget;
use super::{Counters, Fault, FsError, Listing, Root, Summary, VPath};
use data::OpenFile;
use reply::{Buffers, Pending, QUEUED_OVERHEAD, Queued, REPLY_QUEUE, Share, write_loop};
pub use reply::{Replies, StreamReplies};
use wire::{Frame, FrameError, FrameReader, fx, msg};

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
    Io(io::Error),
    /// The client broke the protocol (malformed, truncated or huge packet).
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// Not `#[from]`: that would also make the cause the `source()`, and a
/// chain printed with `{:#}` would say it twice.
impl From<io::Error> for SftpError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<FrameError> for SftpError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Io(e) => SftpError::Io(e),
            FrameError::Wire(e) => SftpError::Protocol(e.to_string()),
        }
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
}
