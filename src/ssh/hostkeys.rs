//! Host keys: created on first start, kept in the data dir (mode 0600).

use std::path::Path;

use anyhow::{Context as _, bail};
use getrandom::{SysRng, rand_core::UnwrapErr};
use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, HashAlg, PrivateKey};

/// The server's host keys and their fingerprints.
pub struct HostKeys {
    /// Ed25519 first, then RSA when enabled.
    pub keys: Vec<PrivateKey>,
    /// `(algorithm, SHA256 fingerprint)` of each key.
    pub fingerprints: Vec<(String, String)>,
}

/// Ed25519 host key file in the data dir.
pub const ED25519_FILE: &str = "ssh_host_ed25519_key";
/// RSA host key file in the data dir.
pub const RSA_FILE: &str = "ssh_host_rsa_key";

fn load_or_generate(path: &Path, algorithm: Algorithm) -> anyhow::Result<PrivateKey> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            if !meta.file_type().is_file() {
                bail!("{} is not a regular file", path.display());
            }
            if meta.mode() & 0o077 != 0 {
                bail!(
                    "{} is readable by other users (mode {:o}): run `chmod 600 {}`",
                    path.display(),
                    meta.mode() & 0o777,
                    path.display()
                );
            }
            let key = PrivateKey::read_openssh_file(path)
                .with_context(|| format!("cannot read the host key {}", path.display()))?;
            if key.is_encrypted() {
                bail!(
                    "the host key {} is encrypted; Coffer needs it without a passphrase",
                    path.display()
                );
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = // UnwrapErr: the OS RNG failing is not an input error; there is no key without it.
            PrivateKey::random(&mut UnwrapErr(SysRng), algorithm)
                .with_context(|| format!("cannot generate a host key for {}", path.display()))?;
            let pem = key.to_openssh(LineEnding::LF)?;
            let tmp = path.with_extension("tmp");
            let _ = std::fs::remove_file(&tmp);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            std::io::Write::write_all(&mut file, pem.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a new host key");
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Loads the host keys from `data_dir`, generating any that are missing.
pub fn load_or_create(data_dir: &Path, rsa: bool) -> anyhow::Result<HostKeys> {
    let mut keys = vec![load_or_generate(
        &data_dir.join(ED25519_FILE),
        Algorithm::Ed25519,
    )?];
    if rsa {
        keys.push(load_or_generate(
            &data_dir.join(RSA_FILE),
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            },
        )?);
    }
    let fingerprints = keys
        .iter()
        .map(|k| {
            (
                k.algorithm().to_string(),
                k.fingerprint(HashAlg::Sha256).to_string(),
            )
        })
        .collect();
    Ok(HostKeys { keys, fingerprints })
}
