//! Host keys: created on first start, kept in the data dir (mode 0600).
//! A key that cannot be used is a [`HostKeyError`] naming the file.

use getrandom::{SysRng, rand_core::UnwrapErr};
use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, HashAlg, PrivateKey};
use std::path::{Path, PathBuf};

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

/// Why a host key cannot be used. Each message names the file and carries
/// its cause in its own text (no `source()`, so `{:#}` says it once); none
/// shows key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostKeyError {
    /// Something other than a file (a folder, a link) is in the key's place.
    #[error("{} is not a regular file", .0.display())]
    NotAFile(PathBuf),
    /// The key file is open to other users.
    #[error("{} is readable by other users (mode {mode:o}): run `chmod 600 {}`", path.display(), path.display())]
    Exposed {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not an OpenSSH private key.
    #[error("cannot read the host key {}: {cause}", path.display())]
    Malformed {
        /// The key file.
        path: PathBuf,
        /// The parser's reason.
        cause: russh::keys::ssh_key::Error,
    },
    /// The key is protected by a passphrase.
    #[error("the host key {} is encrypted; Coffer needs it without a passphrase", .0.display())]
    Encrypted(PathBuf),
    /// A new key could not be made.
    #[error("cannot generate a host key for {}: {cause}", path.display())]
    Generate {
        /// Where it was to go.
        path: PathBuf,
        /// Why not.
        cause: russh::keys::ssh_key::Error,
    },
    /// The file could not be read, or a new key not written.
    #[error("cannot {doing} {}: {cause}", path.display())]
    Io {
        /// `read` or `write`.
        doing: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        cause: std::io::Error,
    },
}

fn io(doing: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> HostKeyError {
    let path = path.to_path_buf();
    move |cause| HostKeyError::Io { doing, path, cause }
}

fn load_or_generate(path: &Path, algorithm: Algorithm) -> Result<PrivateKey, HostKeyError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            if !meta.file_type().is_file() {
                return Err(HostKeyError::NotAFile(path.to_path_buf()));
            }
            if meta.mode() & 0o077 != 0 {
                return Err(HostKeyError::Exposed {
                    path: path.to_path_buf(),
                    mode: meta.mode() & 0o777,
                });
            }
            let key =
                PrivateKey::read_openssh_file(path).map_err(|cause| HostKeyError::Malformed {
                    path: path.to_path_buf(),
                    cause,
                })?;
            if key.is_encrypted() {
                return Err(HostKeyError::Encrypted(path.to_path_buf()));
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let generate = |cause| HostKeyError::Generate {
                path: path.to_path_buf(),
                cause,
            };
            let key = // UnwrapErr: the OS RNG failing is not an input error; there is no key without it.
            PrivateKey::random(&mut UnwrapErr(SysRng), algorithm).map_err(generate)?;
            let pem = key.to_openssh(LineEnding::LF).map_err(generate)?;
            let tmp = path.with_extension("tmp");
            let _ = std::fs::remove_file(&tmp);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io("write", &tmp))?;
            std::io::Write::write_all(&mut file, pem.as_bytes()).map_err(io("write", &tmp))?;
            file.sync_all().map_err(io("write", &tmp))?;
            std::fs::rename(&tmp, path).map_err(io("write", path))?;
            tracing::info!(path = %path.display(), "generated a new host key");
            Ok(key)
        }
        Err(e) => Err(io("read", path)(e)),
    }
}

/// Loads the host keys from `data_dir`, generating any that are missing.
pub fn load_or_create(data_dir: &Path, rsa: bool) -> Result<HostKeys, HostKeyError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn a_key_that_cannot_be_used_is_named_with_the_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let keys = load_or_create(tmp.path(), false).unwrap();
        assert_eq!(keys.keys.len(), 1);
        let path = tmp.path().join(ED25519_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create(tmp.path(), false).err().unwrap();
        assert!(
            matches!(err, HostKeyError::Exposed { mode: 0o644, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .ends_with(&format!("run `chmod 600 {}`", path.display()))
        );
        std::fs::write(&path, "not a key").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = load_or_create(tmp.path(), false).err().unwrap();
        assert!(matches!(err, HostKeyError::Malformed { .. }), "{err:?}");
        // The cause is in the text, and said once.
        assert!(std::error::Error::source(&err).is_none());
        let line = format!("{:#}", anyhow::Error::from(err));
        assert!(line.starts_with("cannot read the host key "), "{line}");
    }
}
