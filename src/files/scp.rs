//! Legacy SCP.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Root, Summary};

/// Why an SCP session failed.
#[derive(Debug, thiserror::Error)]
pub enum ScpError {
    /// I/O.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Serves an SCP command.
pub async fn serve_scp<S>(_command: &str, _stream: S, _root: Arc<Root>) -> Result<Summary, ScpError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    Ok(Summary::default())
}
