//! Interim placeholder for the confined file tree (replaced by the files module).
#![allow(
    missing_docs,
    clippy::unused_async,
    clippy::default_constructed_unit_structs
)]
use std::path::Path;

use crate::auth::Permissions;

pub struct Root;
impl Root {
    pub fn open(_home: &Path, _account: &str, _p: Permissions) -> std::io::Result<Root> {
        Err(std::io::Error::other("file serving is not built yet"))
    }
}
pub mod sftp {
    use std::sync::Arc;
    #[derive(Default)]
    pub struct SftpLimits {
        pub max_read: u32,
    }
    #[derive(Debug)]
    pub struct Summary;
    pub async fn serve<S>(
        _s: S,
        _r: Arc<super::Root>,
        _l: SftpLimits,
    ) -> Result<Summary, std::io::Error> {
        Err(std::io::Error::other("not built"))
    }
}
pub mod scp {
    use std::sync::Arc;
    pub async fn serve_scp<S>(
        _c: &str,
        _s: S,
        _r: Arc<super::Root>,
    ) -> Result<super::sftp::Summary, std::io::Error> {
        Err(std::io::Error::other("not built"))
    }
}
