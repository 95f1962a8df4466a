//! `coffer sftp-server` and `coffer scp-server`: the file servers on
//! standard input and output, like OpenSSH's `sftp-server` and `scp -t/-f`.
//!
//! Hidden commands for tests and benchmarks: OpenSSH's own clients drive
//! them without an SSH server (`sftp -D`, `scp -S`). They serve one
//! directory with the same confinement and permissions as a real session.
//! A failure is a [`StdioError`].

use std::collections::VecDeque;
use std::io::{self, Read as _, Write as _};
use std::os::fd::AsFd as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};

use clap::Args;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Access, Root, scp, sftp};

/// Why a file server on standard input and output failed. Each message
/// carries its cause (no `source()`, so `{:#}` says it once).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StdioError {
    /// The folder to serve cannot be opened or made.
    #[error("cannot open {}: {cause}", path.display())]
    Root {
        /// The folder.
        path: PathBuf,
        /// The operating system's reason.
        cause: io::Error,
    },
    /// Standard input and output cannot be set up for serving.
    #[error("cannot serve on standard input and output: {0}")]
    Stdio(io::Error),
    /// The async runtime did not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(io::Error),
    /// The SFTP session ended abnormally.
    #[error("{0}")]
    Sftp(sftp::SftpError),
    /// The SCP command failed.
    #[error("{0}")]
    Scp(scp::ScpError),
}

/// Where and as whom to serve.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The folder to serve as the home (created if missing)
    #[arg(long, value_name = "DIR")]
    root: PathBuf,
    /// Refuse every change
    #[arg(long)]
    read_only: bool,
    /// Refuse deleting (and replacing by rename)
    #[arg(long)]
    no_delete: bool,
    /// Account name shown as the owner in listings
    #[arg(long, value_name = "NAME", default_value = "user")]
    account: String,
}

/// Arguments of `coffer scp-server`.
#[derive(Debug, Args)]
pub struct ScpServerArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The command the SCP client asked to run, e.g. `scp -t -- dir`
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

impl ServerArgs {
    fn root(&self) -> Result<Arc<Root>, StdioError> {
        let permissions = Access {
            write: !self.read_only,
            delete: !self.no_delete && !self.read_only,
        };
        let root = Root::open(&self.root, &self.account, permissions).map_err(|cause| {
            StdioError::Root {
                path: self.root.clone(),
                cause,
            }
        })?;
        Ok(Arc::new(root))
    }
}

/// One session, one thread for the protocol (like OpenSSH's sftp-server);
/// file I/O that may wait still goes to the blocking pool.
fn runtime() -> Result<tokio::runtime::Runtime, StdioError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StdioError::Runtime)
}

/// `coffer sftp-server`: serves SFTP on stdin/stdout until the client ends.
pub fn sftp_server(args: ServerArgs) -> Result<(), StdioError> {
    let root = args.root()?;
    let rt = runtime()?;
    let summary = rt.block_on(async {
        let stream = stdio_stream().map_err(StdioError::Stdio)?;
        sftp::serve(stream, root, sftp::SftpLimits::default())
            .await
            .map_err(StdioError::Sftp)
    })?;
    tracing::info!(?summary, "sftp session ended");
    Ok(())
}

/// `coffer scp-server`: serves one legacy SCP command on stdin/stdout.
/// Exits with status 1 when a file failed (the client was told which).
pub fn scp_server(args: ScpServerArgs) -> Result<(), StdioError> {
    let root = args.server.root()?;
    let command = args.command.join(" ");
    let rt = runtime()?;
    let summary = rt.block_on(async {
        let stream = stdio_stream().map_err(StdioError::Stdio)?;
        scp::serve_scp(&command, stream, root)
            .await
            .map_err(StdioError::Scp)
    })?;
    drop(rt);
    tracing::info!(?summary, "scp session ended");
    if summary.failures > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// Standard input and output as one async stream, served by two threads
/// with blocking I/O, the way OpenSSH's sftp-server uses them: a thread
/// reads standard input ahead (so the client is never stuck sending), and
/// a thread writes replies with blocking writes (the kernel refills the
/// socket as soon as the client drains it; non-blocking writes would wait
/// for it to be three quarters empty each time).
fn stdio_stream() -> io::Result<tokio::io::Join<StdinReader, StdoutWriter>> {
    let input = io::stdin().as_fd().try_clone_to_owned()?;
    let output = io::stdout().as_fd().try_clone_to_owned()?;
    // Both may be one socket (OpenSSH's clients hand over a socketpair):
    // blocking mode is a property of it, so set it once for both.
    for fd in [&input, &output] {
        let flags = rustix::fs::fcntl_getfl(fd)?;
        rustix::fs::fcntl_setfl(fd, flags - rustix::fs::OFlags::NONBLOCK)?;
    }
    Ok(tokio::io::join(
        StdinReader::spawn(input.into())?,
        StdoutWriter::spawn(output.into())?,
    ))
}

/// Most bytes read ahead from standard input. A client keeps at most 64
/// requests of 256 KiB outstanding, so this never stops an honest one.
const READ_AHEAD: usize = 32 * 1024 * 1024;

#[derive(Default)]
struct Inbox {
    chunks: VecDeque<Vec<u8>>,
    /// Bytes of `chunks` already handed out.
    taken: usize,
    bytes: usize,
    /// The reader thread is done (end of input or error).
    ended: Option<io::ErrorKind>,
    waker: Option<Waker>,
}

struct Shared {
    inbox: Mutex<Inbox>,
    room: Condvar,
}

/// Standard input read by a thread into a bounded queue.
struct StdinReader {
    shared: Arc<Shared>,
}

impl StdinReader {
    fn spawn(mut input: std::fs::File) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            inbox: Mutex::new(Inbox::default()),
            room: Condvar::new(),
        });
        let theirs = shared.clone();
        std::thread::Builder::new()
            .name("stdin".into())
            .spawn(move || {
                loop {
                    let mut chunk = vec![0u8; 256 * 1024];
                    let ended = match input.read(&mut chunk) {
                        Ok(0) => Some(io::ErrorKind::UnexpectedEof),
                        Ok(n) => {
                            chunk.truncate(n);
                            None
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => Some(e.kind()),
                    };
                    let Ok(mut inbox) = theirs.inbox.lock() else {
                        return;
                    };
                    while ended.is_none() && inbox.bytes >= READ_AHEAD {
                        inbox = match theirs.room.wait(inbox) {
                            Ok(inbox) => inbox,
                            Err(_) => return,
                        };
                    }
                    if ended.is_some() {
                        inbox.ended = ended;
                    } else {
                        inbox.bytes += chunk.len();
                        inbox.chunks.push_back(chunk);
                    }
                    if let Some(w) = inbox.waker.take() {
                        w.wake();
                    }
                    if inbox.ended.is_some() {
                        return;
                    }
                }
            })?;
        Ok(StdinReader { shared })
    }
}

impl AsyncRead for StdinReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Ok(mut inbox) = self.shared.inbox.lock() else {
            return Poll::Ready(Err(io::Error::other("standard input reader failed")));
        };
        let inbox = &mut *inbox;
        let mut copied = false;
        while buf.remaining() > 0 {
            let Some(front) = inbox.chunks.front() else {
                break;
            };
            let rest = front.get(inbox.taken..).unwrap_or_default();
            let n = rest.len().min(buf.remaining());
            buf.put_slice(rest.get(..n).unwrap_or_default());
            copied = true;
            inbox.taken += n;
            inbox.bytes -= n;
            if inbox.taken >= front.len() {
                inbox.chunks.pop_front();
                inbox.taken = 0;
            }
        }
        if copied {
            self.shared.room.notify_one();
            return Poll::Ready(Ok(()));
        }
        match inbox.ended {
            Some(io::ErrorKind::UnexpectedEof) => Poll::Ready(Ok(())),
            Some(kind) => Poll::Ready(Err(kind.into())),
            None => {
                inbox.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Most bytes waiting for the writer thread.
const WRITE_BEHIND: usize = 2 * 1024 * 1024;

#[derive(Default)]
struct Outbox {
    chunks: VecDeque<Vec<u8>>,
    bytes: usize,
    /// No more chunks will come.
    closed: bool,
    /// The writer thread failed.
    failed: Option<io::ErrorKind>,
    waker: Option<Waker>,
    /// Written chunks kept for reuse (no allocation per reply).
    spare: Vec<Vec<u8>>,
}

struct OutShared {
    outbox: Mutex<Outbox>,
    work: Condvar,
}

/// Standard output written by a thread with blocking writes: the kernel
/// refills the socket as soon as the client drains it, without a
/// readiness round trip through the runtime per partial write.
struct StdoutWriter {
    shared: Arc<OutShared>,
}

impl StdoutWriter {
    fn spawn(mut output: std::fs::File) -> io::Result<Self> {
        let shared = Arc::new(OutShared {
            outbox: Mutex::new(Outbox::default()),
            work: Condvar::new(),
        });
        let theirs = shared.clone();
        std::thread::Builder::new()
            .name("stdout".into())
            .spawn(move || {
                loop {
                    let chunk = {
                        let Ok(mut outbox) = theirs.outbox.lock() else {
                            return;
                        };
                        loop {
                            if let Some(chunk) = outbox.chunks.pop_front() {
                                break chunk;
                            }
                            if outbox.closed {
                                return;
                            }
                            outbox = match theirs.work.wait(outbox) {
                                Ok(o) => o,
                                Err(_) => return,
                            };
                        }
                    };
                    let result = output.write_all(&chunk);
                    let Ok(mut outbox) = theirs.outbox.lock() else {
                        return;
                    };
                    outbox.bytes -= chunk.len();
                    if outbox.spare.len() < 8 {
                        let mut chunk = chunk;
                        chunk.clear();
                        outbox.spare.push(chunk);
                    }
                    if let Err(e) = result {
                        outbox.failed = Some(e.kind());
                    }
                    if let Some(w) = outbox.waker.take() {
                        w.wake();
                    }
                    if outbox.failed.is_some() {
                        return;
                    }
                }
            })?;
        Ok(StdoutWriter { shared })
    }

    fn push(&self, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let Ok(mut outbox) = self.shared.outbox.lock() else {
            return Poll::Ready(Err(io::Error::other("standard output writer failed")));
        };
        if let Some(kind) = outbox.failed {
            return Poll::Ready(Err(kind.into()));
        }
        if outbox.bytes >= WRITE_BEHIND {
            outbox.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut chunk = outbox.spare.pop().unwrap_or_default();
        chunk.reserve(total);
        for b in bufs {
            chunk.extend_from_slice(b);
        }
        outbox.bytes += total;
        outbox.chunks.push_back(chunk);
        self.shared.work.notify_one();
        Poll::Ready(Ok(total))
    }

    /// Ready once everything handed over is written.
    fn drained(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Ok(mut outbox) = self.shared.outbox.lock() else {
            return Poll::Ready(Err(io::Error::other("standard output writer failed")));
        };
        if let Some(kind) = outbox.failed {
            return Poll::Ready(Err(kind.into()));
        }
        if outbox.bytes == 0 {
            return Poll::Ready(Ok(()));
        }
        outbox.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for StdoutWriter {
    fn drop(&mut self) {
        if let Ok(mut outbox) = self.shared.outbox.lock() {
            outbox.closed = true;
        }
        self.shared.work.notify_one();
    }
}

impl AsyncWrite for StdoutWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.push(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.push(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.drained(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.drained(cx)
    }
}
