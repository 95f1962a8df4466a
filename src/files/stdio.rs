//! `coffer sftp-server` and `coffer scp-server`: the file servers on
//! standard input and output, like OpenSSH's `sftp-server` and `scp -t/-f`.
//!
//! Hidden commands for tests and benchmarks: OpenSSH's own clients drive
//! them without an SSH server (`sftp -D`, `scp -S`). They serve one
//! directory with the same confinement and permissions as a real session.

use std::io;
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Root, scp, sftp};
use crate::auth::Permissions;

/// Where and as whom to serve.
#[derive(Debug, Args, Serialize, Deserialize)]
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
#[derive(Debug, Args, Serialize, Deserialize)]
pub struct ScpServerArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The command the SCP client asked to run, e.g. `scp -t -- dir`
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

impl ServerArgs {
    fn root(&self) -> anyhow::Result<Arc<Root>> {
        let permissions = Permissions {
            write: !self.read_only,
            delete: !self.no_delete && !self.read_only,
        };
        let root = Root::open(&self.root, &self.account, permissions)
            .with_context(|| format!("cannot open {}", self.root.display()))?;
        Ok(Arc::new(root))
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// `coffer sftp-server`: serves SFTP on stdin/stdout until the client ends.
pub fn sftp_server(args: ServerArgs) -> anyhow::Result<()> {
    let root = args.root()?;
    let rt = runtime()?;
    let summary = rt.block_on(async {
        let stream = stdio_stream()?;
        anyhow::Ok(sftp::serve(stream, root, sftp::SftpLimits::default()).await?)
    })?;
    tracing::info!(?summary, "sftp session ended");
    Ok(())
}

/// `coffer scp-server`: serves one legacy SCP command on stdin/stdout.
/// Exits with status 1 when a file failed (the client was told which).
pub fn scp_server(args: ScpServerArgs) -> anyhow::Result<()> {
    let root = args.server.root()?;
    let command = args.command.join(" ");
    let rt = runtime()?;
    let summary = rt.block_on(async {
        let stream = stdio_stream()?;
        anyhow::Ok(scp::serve_scp(&command, stream, root).await?)
    })?;
    drop(rt);
    tracing::info!(?summary, "scp session ended");
    if summary.failures > 0 {
        std::process::exit(1);
    }
    Ok(())
}

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Standard input and output as one async stream: non-blocking sockets or
/// pipes when they are (as `sftp -D` and `ssh` give them), else files
/// served by tokio's blocking pool.
fn stdio_stream() -> io::Result<tokio::io::Join<Reader, Writer>> {
    let input = io::stdin().as_fd().try_clone_to_owned()?;
    let output = io::stdout().as_fd().try_clone_to_owned()?;
    let reader: Reader = match kind(&input) {
        Kind::Socket => Box::new(socket(input)?),
        Kind::Fifo => Box::new(tokio::net::unix::pipe::Receiver::from_owned_fd(input)?),
        Kind::Other => Box::new(tokio::fs::File::from_std(input.into())),
    };
    let writer: Writer = match kind(&output) {
        Kind::Socket => Box::new(socket(output)?),
        Kind::Fifo => Box::new(tokio::net::unix::pipe::Sender::from_owned_fd(output)?),
        Kind::Other => Box::new(tokio::fs::File::from_std(output.into())),
    };
    Ok(tokio::io::join(reader, writer))
}

enum Kind {
    Socket,
    Fifo,
    Other,
}

fn kind(fd: &OwnedFd) -> Kind {
    match rustix::fs::fstat(fd).map(|st| rustix::fs::FileType::from_raw_mode(st.st_mode)) {
        Ok(rustix::fs::FileType::Socket) => Kind::Socket,
        Ok(rustix::fs::FileType::Fifo) => Kind::Fifo,
        _ => Kind::Other,
    }
}

fn socket(fd: OwnedFd) -> io::Result<tokio::net::UnixStream> {
    let stream = std::os::unix::net::UnixStream::from(fd);
    stream.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(stream)
}
