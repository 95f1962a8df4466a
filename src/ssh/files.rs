//! Runs the file side of a channel: SFTP or legacy SCP, confined to the home.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use russh::server::Msg;
use russh::{Channel, ChannelStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

use super::handler::FilesKind;
use crate::auth::flow::Session;
use crate::files::Root;

/// The channel's stream, lent to a file server. Dropping a russh stream
/// closes the channel; a lent stream instead goes back to its owner, who
/// sends the exit status first and closes after (otherwise the close can
/// overtake the status and `scp` reports a failure for a complete copy).
struct Lent {
    stream: Option<ChannelStream<Msg>>,
    back: Option<oneshot::Sender<ChannelStream<Msg>>>,
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let (Some(stream), Some(back)) = (self.stream.take(), self.back.take()) {
            let _ = back.send(stream);
        }
    }
}

fn gone() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "channel returned")
}

impl AsyncRead for Lent {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.stream.as_mut() {
            Some(s) => Pin::new(s).poll_read(cx, buf),
            None => Poll::Ready(Err(gone())),
        }
    }
}

impl AsyncWrite for Lent {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.stream.as_mut() {
            Some(s) => Pin::new(s).poll_write(cx, buf),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.stream.as_mut() {
            Some(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.stream.as_mut() {
            Some(s) => Pin::new(s).poll_flush(cx),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.stream.as_mut() {
            Some(s) => Pin::new(s).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

/// Serves one file channel to the end. Returns the exit status to report and
/// the channel's stream, to be dropped (closing the channel) only after the
/// status went out.
pub(super) async fn run(
    channel: Channel<Msg>,
    kind: FilesKind,
    login: &Session,
) -> (u32, Option<ChannelStream<Msg>>) {
    let home = login.home.clone();
    let account = login.account.clone();
    let permissions = login.permissions;
    let root = match tokio::task::spawn_blocking(move || Root::open(&home, &account, permissions))
        .await
    {
        Ok(Ok(root)) => Arc::new(root),
        Ok(Err(e)) => {
            tracing::error!(account = %login.account, error = %e, "cannot open the home folder");
            return (1, None);
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot open the home folder");
            return (1, None);
        }
    };
    let (back, returned) = oneshot::channel();
    let stream = Lent {
        stream: Some(channel.into_stream()),
        back: Some(back),
    };
    let code = match kind {
        FilesKind::Sftp => {
            match crate::files::sftp::serve(stream, root, crate::files::sftp::SftpLimits::default())
                .await
            {
                Ok(summary) => {
                    tracing::info!(account = %login.account, ?summary, "sftp session");
                    0
                }
                Err(e) => {
                    tracing::warn!(account = %login.account, error = %e, "sftp session failed");
                    1
                }
            }
        }
        FilesKind::Scp(command) => match crate::files::scp::serve_scp(&command, stream, root).await
        {
            Ok(summary) => {
                tracing::info!(account = %login.account, ?summary, "scp session");
                // Like OpenSSH's scp: a file that could not be copied fails the command.
                u32::from(summary.failures > 0)
            }
            Err(e) => {
                tracing::warn!(account = %login.account, error = %e, "scp session failed");
                1
            }
        },
    };
    (code, returned.await.ok())
}
