//! What the box knows about itself, for `coffer status` and the console's
//! status screen: one report, gathered in one place, printed by each.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::auth::accounts::Locks;
use crate::clock::Timestamp;
use crate::seal::SealStatus;
use crate::store::{STORE_FILE, Store};
use crate::web::tls::CertificateInfo;

use super::{AdminError, Core};

/// A running server, as the status shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Process id.
    pub pid: u32,
    /// When it started.
    pub started_at: Timestamp,
    /// Listening addresses, e.g. `sftp 0.0.0.0:2022`.
    pub listening: Vec<String>,
    /// The HTTPS port, for the setup URL.
    #[serde(default)]
    pub https_port: Option<u16>,
}

/// The store file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoreInfo {
    /// Its path.
    pub file: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The schema version it holds.
    pub schema_version: u32,
    /// The schema version this coffer writes.
    pub schema_version_supported: u32,
}

/// How the data key is protected, or why it cannot be opened.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sealing {
    /// The key is open.
    Sealed(SealStatus),
    /// The key cannot be opened (its data disk in another box, a cleared
    /// TPM), with the reason.
    Error(String),
    /// No store, so no key yet.
    NoKeyYet,
}

/// What the box knows about itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatusReport {
    /// The data dir.
    pub data_dir: PathBuf,
    /// The store; `None`: never set up (or reset).
    pub store: Option<StoreInfo>,
    /// The data key.
    pub sealing: Sealing,
    /// The owner, once claimed.
    pub owner: Option<String>,
    /// The claim code of an unclaimed box.
    pub claim_code: Option<String>,
    /// The HTTPS certificate, once made.
    pub certificate: Option<CertificateInfo>,
    /// Accounts, groups, enrolments, tokens (empty without the key).
    pub counts: BTreeMap<String, u64>,
    /// Locks wider than one account from one address.
    pub locks: Locks,
    /// The server, when the report came from it.
    pub server: Option<ServerInfo>,
    /// SSH host key fingerprints `(algorithm, SHA256:...)`.
    pub host_keys: Vec<(String, String)>,
}

impl StatusReport {
    /// Accounts in the store.
    pub fn accounts(&self) -> u64 {
        self.counts.get("accounts").copied().unwrap_or(0)
    }

    /// A report with nothing but the data dir's files.
    fn bare(data_dir: &Path, sealing: Sealing) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
            store: None,
            sealing,
            owner: None,
            claim_code: None,
            certificate: crate::web::tls::describe_file(data_dir),
            counts: BTreeMap::new(),
            locks: Locks::default(),
            server: None,
            host_keys: host_fingerprints(data_dir),
        }
    }
}

fn store_info(store: &Store, data_dir: &Path) -> Result<StoreInfo, AdminError> {
    Ok(StoreInfo {
        file: data_dir.join(STORE_FILE),
        bytes: std::fs::metadata(data_dir.join(STORE_FILE))
            .map(|m| m.len())
            .unwrap_or(0),
        schema_version: store.schema_version()?,
        schema_version_supported: crate::auth::SCHEMA.version(),
    })
}

/// The report of an open core.
pub(super) fn report(core: &Core<'_>) -> Result<StatusReport, AdminError> {
    let me = crate::auth::Actor::cli();
    let auth = core.auth;
    let owner = auth.owner(&me)?;
    let claim_code = match &owner {
        Some(_) => None,
        None => auth.claim_code(&me)?.map(|c| c.to_string()),
    };
    Ok(StatusReport {
        data_dir: core.data_dir.to_path_buf(),
        store: Some(store_info(auth.store(), core.data_dir)?),
        sealing: Sealing::Sealed(core.seal.clone()),
        owner,
        claim_code,
        certificate: crate::web::tls::in_use(core.certs, core.data_dir),
        counts: auth
            .counts(&me)?
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        locks: auth.locks(&me)?,
        server: core.server.clone(),
        host_keys: host_fingerprints(core.data_dir),
    })
}

/// The report when the data key cannot be opened: what the store tells
/// without it.
pub(super) fn without_key(
    store: &Store,
    data_dir: &Path,
    error: String,
) -> Result<StatusReport, AdminError> {
    Ok(StatusReport {
        store: Some(store_info(store, data_dir)?),
        owner: crate::auth::owner_of(store).ok().flatten(),
        ..StatusReport::bare(data_dir, Sealing::Error(error))
    })
}

/// The report of a data dir without a store.
pub(super) fn no_store(data_dir: &Path) -> StatusReport {
    StatusReport::bare(data_dir, Sealing::NoKeyYet)
}

/// The SSH host keys' fingerprints, read from the data dir.
pub fn host_fingerprints(data_dir: &Path) -> Vec<(String, String)> {
    use russh::keys::{HashAlg, PrivateKey};
    [crate::ssh::ED25519_FILE, crate::ssh::RSA_FILE]
        .iter()
        .filter_map(|f| PrivateKey::read_openssh_file(data_dir.join(f)).ok())
        .map(|k| {
            (
                k.algorithm().to_string(),
                k.fingerprint(HashAlg::Sha256).to_string(),
            )
        })
        .collect()
}
