//! Runs the file side of a channel: SFTP or legacy SCP, confined to the home.

use std::sync::Arc;

use russh::Channel;
use russh::server::Msg;

use super::handler::FilesKind;
use crate::auth::flow::Session;
use crate::files::Root;

/// Serves one file channel to the end; returns the exit status to report.
pub(super) async fn run(channel: Channel<Msg>, kind: FilesKind, login: &Session) -> u32 {
    let home = login.home.clone();
    let account = login.account.clone();
    let permissions = login.permissions;
    let root = match tokio::task::spawn_blocking(move || Root::open(&home, &account, permissions))
        .await
    {
        Ok(Ok(root)) => Arc::new(root),
        Ok(Err(e)) => {
            tracing::error!(account = %login.account, error = %e, "cannot open the home folder");
            return 1;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot open the home folder");
            return 1;
        }
    };
    let stream = channel.into_stream();
    match kind {
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
                0
            }
            Err(e) => {
                tracing::warn!(account = %login.account, error = %e, "scp session failed");
                1
            }
        },
    }
}
