//! Sealed secrets (interim key handling until the sealing backends land).
#![allow(missing_docs)]

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("sealed secret was altered or belongs elsewhere")]
    Tampered,
    #[error("{0}")]
    Other(String),
}

pub struct DataKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(***)")
    }
}

impl DataKey {
    pub fn generate() -> Result<(DataKey, bool), SealError> {
        let mut k = Zeroizing::new([0u8; 32]);
        getrandom::fill(k.as_mut()).map_err(|e| SealError::Other(e.to_string()))?;
        Ok((DataKey(k), false))
    }
    pub fn subkey(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_ref())
            .unwrap_or_else(|_| unreachable!());
        mac.update(label);
        Zeroizing::new(mac.finalize().into_bytes().into())
    }
    pub fn encrypt(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let cipher = XChaCha20Poly1305::new(self.0.as_ref().into());
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|e| SealError::Other(e.to_string()))?;
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .map_err(|_| SealError::Tampered)?;
        let mut out = vec![1u8];
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }
    pub fn decrypt(&self, context: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let (nonce, ct) = blob
            .get(1..)
            .filter(|b| b.len() >= 24)
            .map(|b| b.split_at(24))
            .ok_or(SealError::Tampered)?;
        let cipher = XChaCha20Poly1305::new(self.0.as_ref().into());
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: context,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Tampered)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Backend {
    Tpm,
    KeyFile,
}
impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Tpm => "TPM 2.0",
            Backend::KeyFile => {
                "key file (no TPM: the data key is protected only by file permissions)"
            }
        })
    }
}
#[derive(Clone, Copy, Debug, Default)]
pub enum BackendChoice {
    #[default]
    Auto,
    Tpm,
    KeyFile,
}
impl std::str::FromStr for BackendChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "tpm" => Ok(Self::Tpm),
            "keyfile" => Ok(Self::KeyFile),
            _ => Err(format!("{s:?} is not auto, tpm or keyfile")),
        }
    }
}
#[derive(Clone, Debug, Default)]
pub struct SealOptions {
    pub choice: BackendChoice,
    pub tcti: Option<String>,
    pub bind_pcr7: bool,
}
#[derive(Clone, Debug, serde::Serialize)]
pub struct SealStatus {
    pub backend: Backend,
    pub detail: String,
    pub hwrng_used: Option<bool>,
}
pub fn open(
    dir: &std::path::Path,
    _o: &SealOptions,
    create: bool,
) -> Result<(DataKey, SealStatus), SealError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("data-key");
    let status = SealStatus {
        backend: Backend::KeyFile,
        detail: path.display().to_string(),
        hwrng_used: None,
    };
    match std::fs::read(&path) {
        Ok(b) => {
            let k: [u8; 32] = b
                .try_into()
                .map_err(|_| SealError::Other("bad key file".into()))?;
            Ok((DataKey(Zeroizing::new(k)), status))
        }
        Err(_) if create => {
            let (k, _) = DataKey::generate()?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| SealError::Other(e.to_string()))?;
            f.write_all(k.0.as_ref())
                .and_then(|_| f.sync_all())
                .map_err(|e| SealError::Other(e.to_string()))?;
            Ok((k, status))
        }
        Err(e) => Err(SealError::Other(e.to_string())),
    }
}
