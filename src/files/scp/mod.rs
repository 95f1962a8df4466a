//! Legacy SCP (`scp -O`): the remote end of `scp -t` (upload) and
//! `scp -f` (download), on any byte stream.
//!
//! OpenSSH's clients run `scp [-v] [-r] [-p] [-d] -t|-f [--] PATH...` as an
//! exec request and speak the old rcp protocol on the channel: `C` (file),
//! `D` (enter folder), `E` (leave folder) and `T` (times) records, each
//! acknowledged with a NUL byte or refused with `\x01` (error, go on) or
//! `\x02` (fatal) and a message line the client prints.
//!
//! There is no shell: the command is split into words like a POSIX shell
//! would (quotes and backslashes; `~` and `~/x` are the home), and shell
//! syntax (`;`, `|`, `$`, redirections, ...) is refused. `*` and `?` in the
//! last component of a `-f` source are expanded here, as OpenSSH's server
//! relies on a shell to do. Anything that is not such an `scp` command is
//! refused with [`ScpError::Command`].
//!
//! Confinement and permissions are the [`Root`]'s, as for SFTP. File data
//! is streamed in 256 KiB chunks between the channel and a blocking-pool
//! task (sizes up to `u64::MAX`; nothing is buffered whole).

mod command;
mod sink;
mod source;

use std::collections::HashSet;
use std::io;
use std::sync::Arc;

use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader,
    BufWriter, ReadHalf, WriteHalf,
};

use super::{Counters, FsError, Root, Summary};
use command::parse_command;

/// Why an SCP session failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScpError {
    /// Reading from or writing to the client failed.
    #[error("connection failed: {0}")]
    Io(io::Error),
    /// The exec command is not an `scp -t`/`scp -f` this server runs.
    #[error("{0}")]
    Command(String),
    /// The client broke the protocol (the client was told).
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// Not `#[from]`: that would also make the cause the `source()`, and a
/// chain printed with `{:#}` would say it twice.
impl From<io::Error> for ScpError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Chunk size of file data.
const CHUNK: usize = 256 * 1024;
/// Longest control record accepted.
const MAX_LINE: usize = 8 * 1024;
/// Deepest folder nesting in either direction.
const MAX_DEPTH: usize = 64;

/// Serves one legacy SCP exec `command` on `stream`, confined to `root`.
///
/// Returns when the transfer is over; files that failed are counted in
/// [`Summary::failures`] (the client was told about each one, and should
/// see exit status 1). An unsupported command is refused before anything
/// is written to the stream.
pub async fn serve_scp<S>(command: &str, stream: S, root: Arc<Root>) -> Result<Summary, ScpError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let cmd = parse_command(command, root.account())?;
    let (r, w) = tokio::io::split(stream);
    let mut session = Session {
        r: BufReader::with_capacity(64 * 1024, r),
        w: BufWriter::with_capacity(16 * 1024, w),
        root,
        counters: Arc::new(Counters::default()),
        recursive: cmd.recursive,
        preserve: cmd.preserve,
        sent_dirs: HashSet::new(),
    };
    let outcome = if cmd.to {
        session.receive(&cmd).await
    } else {
        session.send_all(&cmd).await
    };
    let flushed = session.w.flush().await;
    match outcome {
        Ok(()) | Err(Stop::Fatal) => {}
        Err(Stop::Error(e)) => return Err(e),
    }
    flushed?;
    Ok(session.counters.summary())
}

/// Why the protocol loop stopped early.
enum Stop {
    /// The client sent a fatal error (`\x02`): it has given up.
    Fatal,
    /// Our error.
    Error(ScpError),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop::Error(ScpError::Io(e))
    }
}

type Flow<T = ()> = Result<T, Stop>;

/// Times from a `T` record: (modified, accessed).
type Times = (i64, i64);

struct Session<S> {
    r: BufReader<ReadHalf<S>>,
    w: BufWriter<WriteHalf<S>>,
    root: Arc<Root>,
    counters: Arc<Counters>,
    recursive: bool,
    preserve: bool,
    /// Folders already sent by this command (device, inode): `scp -r`
    /// sends each folder once, however many symbolic links lead to it, so
    /// a lattice of links cannot make the walk exponential.
    sent_dirs: HashSet<(u64, u64)>,
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> Session<S> {
    /// Runs a file-system call on the blocking pool.
    async fn fs<T, F>(&self, f: F) -> Result<T, FsError>
    where
        T: Send + 'static,
        F: FnOnce(&Root) -> Result<T, FsError> + Send + 'static,
    {
        let root = self.root.clone();
        match tokio::task::spawn_blocking(move || f(&root)).await {
            Ok(result) => result,
            Err(_) => Err(FsError::Invalid("internal error")),
        }
    }

    async fn ack(&mut self) -> Flow {
        self.w.write_all(&[0]).await?;
        self.w.flush().await?;
        Ok(())
    }

    /// Tells the client about a failure it should print (`\x01`), and
    /// counts it.
    async fn complain(&mut self, message: &str) -> Flow {
        self.counters.failed();
        let line = format!("\x01scp: {}\n", message.replace('\n', " "));
        self.w.write_all(line.as_bytes()).await?;
        self.w.flush().await?;
        Ok(())
    }

    /// Tells the client about a protocol violation and ends.
    async fn protocol_error(&mut self, why: &str) -> Stop {
        let _ = self.complain(&format!("protocol error: {why}")).await;
        Stop::Error(ScpError::Protocol(why.to_string()))
    }

    /// Reads one line (without the newline); `None` at the end of the
    /// stream before any byte.
    async fn line(&mut self) -> Flow<Option<Vec<u8>>> {
        let mut line = Vec::new();
        let n = (&mut self.r)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(None);
        }
        if line.last() != Some(&b'\n') {
            if line.len() > MAX_LINE {
                return Err(self.protocol_error("record too long").await);
            }
            return Err(Stop::Error(ScpError::Protocol("lost connection".into())));
        }
        line.pop();
        Ok(Some(line))
    }

    /// Reads the client's answer to what was sent: true for OK, false for
    /// an error it reported (and printed itself).
    async fn response(&mut self) -> Flow<bool> {
        self.w.flush().await?;
        let mut first = [0u8; 1];
        if self.r.read(&mut first).await? == 0 {
            return Err(Stop::Error(ScpError::Protocol("lost connection".into())));
        }
        match first {
            [0] => Ok(true),
            [code] => {
                let mut rest = Vec::new();
                (&mut self.r)
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut rest)
                    .await?;
                self.counters.failed();
                if code == 2 {
                    Err(Stop::Fatal)
                } else {
                    Ok(false)
                }
            }
        }
    }
}
