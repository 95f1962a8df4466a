//! The control socket: how the command line reaches a running server.
//!
//! A running `coffer serve` holds the store's writer lock, so the command
//! line cannot open the store itself. Instead it connects to `coffer.sock` in
//! the data dir (mode 0600 in a 0700 directory; the server also checks the
//! peer's uid), sends the parsed command as one line of JSON, with password
//! files already read, and gets back what the command printed. The server
//! runs it through `crate::cli::execute`, the same function the command line
//! uses on its own, so the output is the same either way.
//!
//! The technician console shares the socket: its operations travel as
//! `{"console": ...}` (see [`crate::console::Request`]) and are answered
//! with a [`crate::console::Reply`]; a command line request is unchanged.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::cli::{Command, Output};

/// The socket's file name in the data dir.
pub const SOCKET_FILE: &str = "coffer.sock";
/// Largest request line.
const MAX_REQUEST: u64 = 1024 * 1024;
/// Largest reply (an audit dump can be long).
const MAX_REPLY: u64 = 64 * 1024 * 1024;

/// What the server answers.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Reply {
    /// What the command printed.
    pub output: Output,
    /// The error line, when the command failed.
    pub error: Option<String>,
}

/// Sends `command` to the server running on `data_dir`, if one listens.
/// `Ok(None)`: no server; the caller opens the store itself.
pub(crate) fn request(data_dir: &Path, command: &Command) -> anyhow::Result<Option<Reply>> {
    exchange(data_dir, command)
}

/// Sends a console operation to the server running on `data_dir`, if one
/// listens. `Ok(None)`: no server; the console opens the store itself.
pub(crate) fn request_console(
    data_dir: &Path,
    request: &crate::console::Request,
) -> anyhow::Result<Option<crate::console::Reply>> {
    exchange(data_dir, &ConsoleEnvelope { console: request })
}

/// A console operation on the wire: `{"console": ...}`, which no command of
/// the command line parses as, so both share the socket.
#[derive(Serialize, Deserialize)]
struct ConsoleEnvelope<T> {
    console: T,
}

fn exchange<Q: Serialize, A: serde::de::DeserializeOwned>(
    data_dir: &Path,
    request: &Q,
) -> anyhow::Result<Option<A>> {
    let path = data_dir.join(SOCKET_FILE);
    let mut stream = match std::os::unix::net::UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::InvalidInput
            ) =>
        {
            return Ok(None);
        }
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot reach the running server at {}", path.display()));
        }
    };
    stream.set_read_timeout(Some(Duration::from_secs(300)))?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .and_then(|()| stream.shutdown(std::net::Shutdown::Write))
        .with_context(|| format!("cannot talk to the running server at {}", path.display()))?;
    let mut raw = Vec::new();
    stream
        .take(MAX_REPLY)
        .read_to_end(&mut raw)
        .with_context(|| format!("no answer from the running server at {}", path.display()))?;
    let reply: A = serde_json::from_slice(&raw)
        .context("the running server sent an answer this coffer cannot read")?;
    Ok(Some(reply))
}

/// Runs a command for the control socket.
pub(crate) type Executor = Arc<dyn Fn(Command) -> Reply + Send + Sync>;

/// Runs a console operation for the control socket.
pub(crate) type ConsoleExecutor =
    Arc<dyn Fn(crate::console::Request) -> ConsoleOutcome + Send + Sync>;

/// A console operation's reply, and what the server does once the reply
/// has been sent (a factory reset stops the server only then).
pub(crate) struct ConsoleOutcome {
    /// The reply.
    pub reply: crate::console::Reply,
    /// Runs after the reply was written.
    pub after: Option<Box<dyn FnOnce() + Send>>,
}

/// Binds the control socket in `data_dir` (replacing a stale one: the caller
/// holds the store lock, so no other server can be using it).
pub fn bind(data_dir: &Path) -> anyhow::Result<(UnixListener, PathBuf)> {
    let path = data_dir.join(SOCKET_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot remove the stale socket {}", path.display()));
        }
    }
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))?;
    Ok((listener, path))
}

/// Serves the control socket until the listener fails or the task is dropped.
pub(crate) async fn serve(
    listener: UnixListener,
    execute: Executor,
    console: Option<ConsoleExecutor>,
) {
    let me = nix::unistd::geteuid().as_raw();
    // A handful of administrators at most: one command at a time is plenty and
    // keeps a local flood from stacking up work.
    let gate = Arc::new(tokio::sync::Semaphore::new(4));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "control socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let allowed = stream
            .peer_cred()
            .map(|c| c.uid() == me || c.uid() == 0)
            .unwrap_or(false);
        if !allowed {
            tracing::warn!("control socket: refused a client of another user");
            continue;
        }
        let execute = execute.clone();
        let console = console.clone();
        let gate = gate.clone();
        tokio::spawn(async move {
            let Ok(_permit) = gate.acquire_owned().await else {
                return;
            };
            if let Err(e) = answer(stream, execute, console).await {
                tracing::warn!(error = %e, "control socket: request failed");
            }
        });
    }
}

async fn answer(
    stream: UnixStream,
    execute: Executor,
    console: Option<ConsoleExecutor>,
) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read.take(MAX_REQUEST));
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).await?;
    if let Some(console) = console
        && let Ok(ConsoleEnvelope { console: request }) =
            serde_json::from_slice::<ConsoleEnvelope<crate::console::Request>>(&line)
    {
        let outcome = tokio::task::spawn_blocking(move || console(request)).await?;
        let written = async {
            write
                .write_all(&serde_json::to_vec(&outcome.reply)?)
                .await?;
            write.shutdown().await?;
            Ok::<_, anyhow::Error>(())
        }
        .await;
        if let Some(after) = outcome.after {
            after();
        }
        return written;
    }
    let reply = match serde_json::from_slice::<Command>(&line) {
        Ok(command) => tokio::task::spawn_blocking(move || execute(command)).await?,
        Err(e) => Reply {
            output: Output::default(),
            error: Some(format!(
                "the server could not read the command ({e}); are the coffer versions the same?"
            )),
        },
    };
    write.write_all(&serde_json::to_vec(&reply)?).await?;
    write.shutdown().await?;
    Ok(())
}
