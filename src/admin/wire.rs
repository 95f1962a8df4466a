//! The control socket: how the command line and the console reach a
//! running server.
//!
//! A running `coffer serve` holds the store's writer lock, so the local
//! front ends cannot open the store themselves. They connect to
//! `coffer.sock` in the data dir (mode 0600 in a 0700 directory; the server
//! also checks that the peer runs as its own user or root), send one
//! request as one line of JSON and read one reply:
//!
//! ```text
//! → {"version":1,"caller":"cli","request":{"unlock":{"name":"alice"}}}
//! ← {"version":1,"reply":{"Ok":{"unlocked":{"cleared":2}}}}
//! ← {"version":1,"reply":{"Err":{"kind":"not_found","message":"…"}}}
//! ```
//!
//! Secrets travel already read (a password file is read by the command
//! line, never by the server). A request of another protocol version is
//! answered with a [`AdminError::Protocol`] naming both versions, so a
//! command line and a server of different releases say so plainly.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::{AdminError, Answer, Caller, Request};

/// The socket's file name in the data dir.
pub use crate::system::CONTROL_SOCKET as SOCKET_FILE;

/// The protocol version this coffer speaks.
pub const VERSION: u32 = 1;
/// Largest request line.
const MAX_REQUEST: u64 = 1024 * 1024;
/// Largest reply (an audit dump can be long).
const MAX_REPLY: u64 = 64 * 1024 * 1024;
/// How many requests run at once (a handful of administrators at most;
/// a local flood does not stack up work).
const CONCURRENT: usize = 4;

/// A request on the wire.
#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    version: u32,
    #[serde(default)]
    caller: Option<Caller>,
    request: T,
}

/// Just the version, read first, so a request of another version is
/// recognised even when its body is not.
#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

/// A reply on the wire.
#[derive(Serialize, Deserialize)]
struct ReplyEnvelope {
    version: u32,
    reply: Result<Answer, AdminError>,
}

/// Whether a server listens on `data_dir`'s socket.
pub fn server_listens(data_dir: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(data_dir.join(SOCKET_FILE)).is_ok()
}

/// Sends `request` to the server running on `data_dir`, if one listens.
/// `Ok(None)`: no server; the caller opens the store itself.
pub fn request(
    data_dir: &Path,
    caller: Caller,
    request: &Request,
) -> Result<Option<Result<Answer, AdminError>>, AdminError> {
    let path = data_dir.join(SOCKET_FILE);
    let unreachable = |what: &str, e: std::io::Error| {
        AdminError::Unavailable(format!(
            "{what} the running server at {}: {e}",
            path.display()
        ))
    };
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
        Err(e) => return Err(unreachable("cannot reach", e)),
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(300)))
        .map_err(|e| unreachable("cannot talk to", e))?;
    let mut line = serde_json::to_vec(&Envelope {
        version: VERSION,
        caller: Some(caller),
        request,
    })
    .map_err(|e| AdminError::Internal(format!("cannot encode the request: {e}")))?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .and_then(|()| stream.shutdown(std::net::Shutdown::Write))
        .map_err(|e| unreachable("cannot talk to", e))?;
    let mut raw = Vec::new();
    stream
        .take(MAX_REPLY)
        .read_to_end(&mut raw)
        .map_err(|e| unreachable("no answer from", e))?;
    let version = serde_json::from_slice::<VersionOnly>(&raw)
        .map_err(|_| {
            AdminError::Protocol("the running server sent an answer this coffer cannot read".into())
        })?
        .version;
    if version != VERSION {
        return Err(mismatch(version));
    }
    let reply: ReplyEnvelope = serde_json::from_slice(&raw).map_err(|e| {
        AdminError::Protocol(format!(
            "the running server sent an answer this coffer cannot read ({e})"
        ))
    })?;
    Ok(Some(reply.reply))
}

fn mismatch(theirs: u32) -> AdminError {
    AdminError::Protocol(format!(
        "the running server speaks control protocol version {theirs} and this coffer \
         version {VERSION}: use the coffer binary of the running server"
    ))
}

/// Binds the control socket in `data_dir` (replacing a stale one: the caller
/// holds the store lock, so no other server can be using it).
pub fn bind(data_dir: &Path) -> std::io::Result<(UnixListener, PathBuf)> {
    let path = data_dir.join(SOCKET_FILE);
    let context = |what: &str, e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("cannot {what} {}: {e}", path.display()))
    };
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(context("remove the stale socket", e)),
    }
    let listener = UnixListener::bind(&path).map_err(|e| context("listen on", e))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| context("restrict", e))?;
    Ok((listener, path))
}

/// Runs a request for the control socket: the reply, and what the server
/// does once the reply has been sent (a factory reset stops the server
/// only then).
pub type Executor = Arc<dyn Fn(Caller, Request) -> Outcome + Send + Sync>;

/// A reply, and what runs after it was written.
pub struct Outcome {
    /// The reply.
    pub reply: Result<Answer, AdminError>,
    /// Runs after the reply was written.
    pub after: Option<Box<dyn FnOnce() + Send>>,
}

/// Serves the control socket until the listener fails or the task is dropped.
pub async fn serve(listener: UnixListener, execute: Executor) {
    let me = nix::unistd::geteuid().as_raw();
    let gate = Arc::new(tokio::sync::Semaphore::new(CONCURRENT));
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
        let gate = gate.clone();
        tokio::spawn(async move {
            let Ok(_permit) = gate.acquire_owned().await else {
                return;
            };
            if let Err(e) = answer(stream, execute).await {
                tracing::warn!(error = %e, "control socket: request failed");
            }
        });
    }
}

async fn answer(stream: UnixStream, execute: Executor) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read.take(MAX_REQUEST));
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).await?;
    let parsed = if line.len() as u64 >= MAX_REQUEST && !line.ends_with(b"\n") {
        Err(AdminError::Protocol(format!(
            "the request is longer than {} KiB",
            MAX_REQUEST / 1024
        )))
    } else {
        parse(&line)
    };
    let outcome = match parsed {
        Ok((caller, request)) => tokio::task::spawn_blocking(move || execute(caller, request))
            .await
            .unwrap_or_else(|_| Outcome {
                reply: Err(AdminError::Internal(
                    "the request failed inside the server".into(),
                )),
                after: None,
            }),
        Err(e) => Outcome {
            reply: Err(e),
            after: None,
        },
    };
    let body = serde_json::to_vec(&ReplyEnvelope {
        version: VERSION,
        reply: outcome.reply,
    })
    .map_err(std::io::Error::other);
    let written = async {
        write.write_all(&body?).await?;
        write.shutdown().await
    }
    .await;
    if let Some(after) = outcome.after {
        after();
    }
    written
}

/// Reads a request line: its version first, then the request.
fn parse(line: &[u8]) -> Result<(Caller, Request), AdminError> {
    let unreadable = |e: serde_json::Error| {
        AdminError::Protocol(format!(
            "the server could not read the request ({e}); are the coffer versions the same?"
        ))
    };
    let version = serde_json::from_slice::<VersionOnly>(line)
        .map_err(unreadable)?
        .version;
    if version != VERSION {
        return Err(mismatch(version));
    }
    let envelope: Envelope<Request> = serde_json::from_slice(line).map_err(unreadable)?;
    Ok((envelope.caller.unwrap_or(Caller::Cli), envelope.request))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips_with_its_version_and_caller() {
        let line = serde_json::to_vec(&Envelope {
            version: VERSION,
            caller: Some(Caller::Console),
            request: &Request::Unlock {
                name: "alice".into(),
            },
        })
        .unwrap();
        let (caller, request) = parse(&line).unwrap();
        assert_eq!(caller, Caller::Console);
        assert!(matches!(request, Request::Unlock { name } if name == "alice"));
    }

    #[test]
    fn another_version_is_named_not_misread() {
        let line = br#"{"version":2,"caller":"cli","request":{"something_new":{}}}"#;
        match parse(line) {
            Err(AdminError::Protocol(m)) => {
                assert!(m.contains("version 2"), "{m}");
                assert!(m.contains(&format!("version {VERSION}")), "{m}");
            }
            other => panic!("expected a protocol error, got {other:?}"),
        }
    }

    #[test]
    fn garbage_gets_a_clear_error() {
        for line in [
            &b"not json"[..],
            b"{}",
            br#"{"version":1}"#,
            br#"{"version":1,"request":{"unlock":{}}}"#,
            br#"{"version":1,"request":"format_disk"}"#,
            b"\xff\xfe",
        ] {
            match parse(line) {
                Err(AdminError::Protocol(m)) => assert!(m.contains("could not read"), "{m}"),
                other => panic!("{line:?}: expected a protocol error, got {other:?}"),
            }
        }
    }

    #[test]
    fn errors_keep_their_kind_across_the_wire() {
        let reply = ReplyEnvelope {
            version: VERSION,
            reply: Err(AdminError::NotFound(
                "there is no account named \"x\"".into(),
            )),
        };
        let text = serde_json::to_string(&reply).unwrap();
        assert!(text.contains(r#""kind":"not_found""#), "{text}");
        let back: ReplyEnvelope = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back.reply.unwrap_err(),
            AdminError::NotFound("there is no account named \"x\"".into())
        );
    }
}
