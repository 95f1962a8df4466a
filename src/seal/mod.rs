//! Sealed secrets: one data key per data dir, and the secrets it protects.
//!
//! Coffer keeps no reversible secret at rest in clear. A TOTP seed (or any other
//! secret the service must read back) is encrypted with [`DataKey::encrypt`]; the
//! 32-byte [`DataKey`] itself is stored in the data dir by one of two backends:
//!
//! - **TPM 2.0** (`data-key.tpm`): the key is sealed into a TPM object under the
//!   owner hierarchy's storage primary key. The file is useless on any other TPM
//!   and, when [`SealOptions::bind_pcr7`] is set, on the same TPM after the secure
//!   boot state (PCR 7) changed.
//! - **Key file** (`data-key`): the key is kept in a 0600 file. Anyone who can read
//!   the file can read every sealed secret; [`Backend`]'s `Display` says so plainly
//!   so the UI can show it.
//!
//! The TPM operations themselves run in a helper process, `coffer-tpm`
//! (`helper` module): the `coffer` executable does not link the TPM libraries,
//! so the serving process never has them in memory.
//!
//! [`open`] decides which backend a data dir uses. The rule is that what is on
//! disk wins: a data dir sealed by the TPM never silently falls back to a key file.
//!
//! | on disk            | `auto`          | `tpm`           | `keyfile`       |
//! |--------------------|-----------------|-----------------|-----------------|
//! | `data-key.tpm`     | TPM             | TPM             | error: conflict |
//! | `data-key`         | key file        | error: conflict | key file        |
//! | both               | error: conflict | error: conflict | error: conflict |
//! | neither (`create`) | TPM if one is configured or `/dev/tpmrm0` exists, else key file | TPM | key file |
//!
//! A data dir sealed by the TPM and opened with `keyfile` is refused rather than
//! used: the operator asked for something the data dir cannot honour, and
//! quietly ignoring the request would hide a configuration mistake.
//!
//! Randomness: a new data key (mixed with the hardware generator when there
//! is one), the encryption nonces and the names of temporary key files come
//! straight from the operating system's source (`getrandom`), never from the
//! core's injected [`crate::random::Rng`]: no configuration and no test seam
//! can make the key that protects every secret predictable.

#[cfg(feature = "tpm")]
mod helper;
mod keyfile;
mod private_file;
/// Starts software TPMs for the TPM tests; test code, kept with the tests
/// (`tests/support/swtpm.rs`) and compiled into the library's own tests only.
#[cfg(all(test, feature = "tpm"))]
#[path = "../../tests/support/swtpm.rs"]
pub(crate) mod swtpm_process;
#[cfg(feature = "tpm")]
mod tpm;

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::mpsc;
use std::time::Duration;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Name of the key-file backend's file in the data dir.
pub const KEY_FILE_NAME: &str = "data-key";

/// Name of the TPM backend's file (the sealed object) in the data dir.
pub const TPM_BLOB_NAME: &str = "data-key.tpm";

/// The hardware random number generator mixed into fresh keys when present.
const HWRNG_PATH: &str = "/dev/hwrng";

/// How long key generation waits for the hardware RNG before going on without it.
const HWRNG_TIMEOUT: Duration = Duration::from_secs(1);

/// The TPM device (through the kernel's resource manager) used when nothing else
/// is configured.
const DEFAULT_TPM_DEVICE: &str = "/dev/tpmrm0";

/// Environment variables naming a TCTI, in the order they are consulted.
const TCTI_ENV_VARS: [&str; 3] = ["COFFER_TCTI", "TPM2TOOLS_TCTI", "TCTI"];

/// Version byte that starts every blob made by [`DataKey::encrypt`].
const BLOB_VERSION: u8 = 1;
/// XChaCha20-Poly1305 nonce length.
const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
const TAG_LEN: usize = 16;

/// Domain label hashed into every freshly generated key.
const GENERATE_LABEL: &[u8] = b"coffer/data-key/generate/v1";
/// Purpose label of the subkey that [`DataKey::encrypt`] uses, so the AEAD key is
/// never the data key itself nor equal to any other subkey.
const AEAD_LABEL: &[u8] = b"coffer/aead/xchacha20poly1305/v1";

/// The 32-byte data key that encrypts every reversible secret of one data dir.
///
/// `Debug` prints `DataKey(***)`; the bytes are wiped when the key is dropped.
/// The type is deliberately not `Clone`: there is one copy, owned by whoever
/// opened the data dir.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(***)")
    }
}

impl DataKey {
    /// Fresh key: 32 bytes from the operating system's random source, mixed
    /// (SHA-256 with a domain label) with up to 32 bytes read from `/dev/hwrng`
    /// when that device exists and answers within about a second. The device is
    /// read on a helper thread, so a hung device never blocks start-up.
    ///
    /// Returns whether the hardware RNG contributed.
    pub fn generate() -> Result<(DataKey, bool), SealError> {
        Self::generate_with(Path::new(HWRNG_PATH), HWRNG_TIMEOUT)
    }

    /// [`DataKey::generate`] with the hardware RNG's path and patience as
    /// parameters, so tests can hand it a file or a device that never answers.
    fn generate_with(hwrng: &Path, timeout: Duration) -> Result<(DataKey, bool), SealError> {
        let mut os = Zeroizing::new([0u8; 32]);
        getrandom::fill(os.as_mut_slice()).map_err(|e| SealError::Random(e.to_string()))?;
        let hw = read_hwrng(hwrng, timeout);
        let hw_bytes: &[u8] = hw.as_ref().map_or(&[], |bytes| bytes.as_slice());

        let mut hasher = Sha256::new();
        hasher.update(GENERATE_LABEL);
        hasher.update(os.as_slice());
        // The length keeps "no hardware bytes" and "some" apart in the hash input.
        hasher.update([u8::try_from(hw_bytes.len()).unwrap_or(u8::MAX)]);
        hasher.update(hw_bytes);
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&hasher.finalize());
        Ok((DataKey(key), !hw_bytes.is_empty()))
    }

    /// Wraps key bytes read back from a backend.
    pub(crate) fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> DataKey {
        DataKey(bytes)
    }

    /// Copies a key out of `bytes`, which must be exactly 32 bytes long.
    #[cfg(feature = "tpm")]
    pub(crate) fn from_slice(bytes: &[u8]) -> Option<DataKey> {
        let mut key = Zeroizing::new([0u8; 32]);
        if bytes.len() != key.len() {
            return None;
        }
        key.copy_from_slice(bytes);
        Some(DataKey(key))
    }

    /// The raw key, for the backends that store it.
    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Derives an independent 32-byte subkey for a purpose label
    /// (HMAC-SHA256(key, label)), e.g. `b"coffer/recovery-codes/v1"`.
    ///
    /// Different labels give unrelated keys; the same label always gives the same
    /// key for the same data key.
    pub fn subkey(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut mac = match <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(self.0.as_slice()) {
            Ok(mac) => mac,
            // HMAC accepts keys of every length, so this arm cannot be taken.
            Err(_) => unreachable!("HMAC-SHA256 rejected a 32-byte key"),
        };
        mac.update(label);
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&mac.finalize().into_bytes());
        out
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        let key = self.subkey(AEAD_LABEL);
        XChaCha20Poly1305::new((&*key).into())
    }

    /// Encrypts a reversible secret (e.g. a TOTP seed) with XChaCha20-Poly1305
    /// under a random 24-byte nonce.
    ///
    /// `context` is the associated data that binds the ciphertext to its owner:
    /// pass e.g. the account name and the enrolment id, and the same bytes again
    /// to [`DataKey::decrypt`]. A blob copied to another record then fails to
    /// decrypt instead of handing that record someone else's secret.
    ///
    /// Output: 1 version byte, the nonce, then ciphertext and tag.
    pub fn encrypt(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| SealError::Random(e.to_string()))?;
        let sealed = self
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .map_err(|_| SealError::Corrupt("the secret is too large to encrypt".into()))?;
        let mut blob = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        blob.push(BLOB_VERSION);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(blob)
    }

    /// Inverse of [`DataKey::encrypt`].
    ///
    /// Fails with [`SealError::Tampered`] when the context differs, the blob was
    /// altered, truncated or is not a blob at all. Never panics, whatever the input.
    pub fn decrypt(&self, context: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let Some((&version, rest)) = blob.split_first() else {
            return Err(SealError::Tampered);
        };
        if version != BLOB_VERSION || rest.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Tampered);
        }
        let Some((nonce, sealed)) = rest.split_at_checked(NONCE_LEN) else {
            return Err(SealError::Tampered);
        };
        let nonce = XNonce::try_from(nonce).map_err(|_| SealError::Tampered)?;
        self.cipher()
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: context,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Tampered)
    }
}

/// Reads up to 32 bytes from the hardware RNG on a helper thread, waiting at most
/// `timeout`. `None` when the device is absent, fails, or does not answer in time
/// (the helper thread is then left to finish or hang on its own).
fn read_hwrng(path: &Path, timeout: Duration) -> Option<Zeroizing<Vec<u8>>> {
    if std::fs::symlink_metadata(path).is_err() {
        return None;
    }
    let (sender, receiver) = mpsc::sync_channel(1);
    let owned = path.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("hwrng".into())
        .spawn(move || {
            let result = read_up_to_32(&owned);
            // The receiver may have stopped waiting; nothing to do then.
            let _ = sender.send(result);
        });
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "cannot start the hardware RNG reader");
        return None;
    }
    match receiver.recv_timeout(timeout) {
        Ok(Ok(bytes)) if !bytes.is_empty() => Some(bytes),
        Ok(Ok(_)) => None,
        Ok(Err(e)) => {
            tracing::info!(path = %path.display(), error = %e, "hardware RNG unreadable; using the OS random source alone");
            None
        }
        Err(_) => {
            tracing::info!(path = %path.display(), "hardware RNG did not answer in time; using the OS random source alone");
            None
        }
    }
}

fn read_up_to_32(path: &Path) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = Zeroizing::new(vec![0u8; 32]);
    let mut filled = 0;
    while let Some(space) = buf.get_mut(filled..) {
        if space.is_empty() {
            break;
        }
        match file.read(space) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if filled > 0 => {
                tracing::debug!(error = %e, "hardware RNG read stopped early");
                break;
            }
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// Which backend protects the data key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Sealed by the TPM 2.0 (`data-key.tpm`).
    Tpm,
    /// Kept in a 0600 key file (`data-key`).
    KeyFile,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Tpm => "TPM 2.0",
            Backend::KeyFile => {
                "key file (no TPM: the data key is protected only by file permissions)"
            }
        })
    }
}

/// The backend asked for in the configuration or on the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// Use what the data dir already holds; for a new data dir, the TPM when one
    /// is configured or present, else a key file.
    #[default]
    Auto,
    /// Demand the TPM.
    Tpm,
    /// Demand a key file.
    KeyFile,
}

impl FromStr for BackendChoice {
    type Err = SealError;

    /// Parses `auto`, `tpm` or `keyfile` (ASCII case ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(BackendChoice::Auto),
            "tpm" => Ok(BackendChoice::Tpm),
            "keyfile" => Ok(BackendChoice::KeyFile),
            _ => Err(SealError::UnknownBackend(s.to_owned())),
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Tpm => "tpm",
            BackendChoice::KeyFile => "keyfile",
        })
    }
}

/// How [`open`] chooses and drives the backend.
#[derive(Clone, Debug, Default)]
pub struct SealOptions {
    /// Which backend to use; see the table in the module documentation for how
    /// this meets what is already on disk.
    pub choice: BackendChoice,
    /// The TPM's TCTI, e.g. `device:/dev/tpmrm0` or
    /// `swtpm:host=127.0.0.1,port=2321`. `None` means: the environment variable
    /// `COFFER_TCTI`, then `TPM2TOOLS_TCTI`, then `TCTI`, then
    /// `device:/dev/tpmrm0` if that device exists.
    pub tcti: Option<String>,
    /// When a new key is sealed by the TPM, bind it by policy to PCR 7 (the
    /// secure boot state) and no other PCR: after a change of secure boot keys or
    /// mode, the TPM refuses to unseal. Ignored for the key file, and for a data
    /// dir whose key is already sealed (the sealed object keeps its own policy).
    pub bind_pcr7: bool,
}

/// What `status` shows about the data key.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SealStatus {
    /// The backend that protects the key.
    pub backend: Backend,
    /// For the TPM, its TCTI and whether the key is bound to PCR 7, e.g.
    /// `swtpm:host=127.0.0.1,port=2321; PCR 7 bound: no`; for a key file, its path.
    pub detail: String,
    /// Whether the hardware RNG contributed to the key; `Some` only when the key
    /// was created by this call to [`open`].
    pub hwrng_used: Option<bool>,
}

/// What went wrong with the data key. Messages say what happened and what to do,
/// and never contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// A file or directory could not be read or written.
    #[error("cannot access {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A key file (or sealed object) is readable or writable by other users.
    #[error(
        "{} has mode {mode:03o}, so other users may read or change it; the data key must be private to the service: run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    LoosePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key file (or sealed object) is a symbolic link or not a regular file.
    #[error(
        "{} is {kind}, not a regular file; put the file itself there (owned by the service, mode 600)",
        path.display()
    )]
    NotRegularFile {
        /// The path.
        path: PathBuf,
        /// What it is instead, e.g. "a symbolic link".
        kind: &'static str,
    },
    /// The data dir holds no data key and none was to be created.
    #[error(
        "no data key in {}: neither {TPM_BLOB_NAME} nor {KEY_FILE_NAME} exists; start the server once to create one, or restore the file from a backup if secrets were already stored",
        data_dir.display()
    )]
    NotFound {
        /// The data dir.
        data_dir: PathBuf,
    },
    /// The TPM could not be reached or is not supported by this build.
    #[error("the TPM is unavailable: {0}")]
    TpmUnavailable(String),
    /// The sealed key was made by another TPM.
    #[error(
        "the sealed data key does not belong to this TPM (was the data disk moved to another box, or the TPM cleared?)"
    )]
    WrongTpm,
    /// The key is bound to PCR 7 and the secure boot state changed.
    #[error(
        "the TPM refuses to unseal the data key because PCR 7 (the secure boot state) changed since it was sealed; boot with the previous secure boot configuration to unseal it"
    )]
    PolicyMismatch,
    /// A TPM command failed for another reason.
    #[error("the TPM failed to {action}: {message}")]
    Tpm {
        /// What was being done, e.g. "unseal the data key".
        action: String,
        /// What the TPM stack said.
        message: String,
    },
    /// A sealed secret does not authenticate: it was altered, truncated, is
    /// garbage, or belongs to another context.
    #[error(
        "a sealed secret failed authentication: it was altered, truncated, or belongs to another record"
    )]
    Tampered,
    /// A stored key or sealed object is malformed.
    #[error("corrupt data key: {0}")]
    Corrupt(String),
    /// What is on disk contradicts itself or the requested backend.
    #[error("{0}")]
    Conflict(String),
    /// The random source failed.
    #[error("the operating system random source failed: {0}")]
    Random(String),
    /// A backend name that is not `auto`, `tpm` or `keyfile`.
    #[error("unknown seal backend {0:?}: use auto, tpm or keyfile")]
    UnknownBackend(String),
}

/// Opens the data key stored in `data_dir`, creating and sealing a fresh one when
/// none exists and `create` is true.
///
/// What is on disk decides (see the module documentation): a TPM-sealed key is
/// never replaced by a key file, a key file is never used when the TPM was
/// demanded, and a data dir holding both is refused. For a new data dir, `auto`
/// picks the TPM when this build supports it and a TCTI is configured or
/// `/dev/tpmrm0` exists, else a key file; when the TPM was picked but fails, the
/// error is returned rather than falling back.
pub fn open(
    data_dir: &Path,
    options: &SealOptions,
    create: bool,
) -> Result<(DataKey, SealStatus), SealError> {
    open_on(data_dir, options, create, &Platform::actual())
}

/// The `coffer-tpm` helper's `main`: answers one seal or unseal request from
/// standard input on standard output. The `coffer` executable never loads the
/// TPM libraries; see the helper module for why and for the exchange.
#[cfg(feature = "tpm")]
pub fn tpm_helper_main() -> std::process::ExitCode {
    helper::main()
}

/// What [`open`] learns from the machine rather than from its arguments; tests
/// build their own.
struct Platform {
    /// The first TCTI named by the environment variables.
    env_tcti: Option<String>,
    /// Whether `/dev/tpmrm0` exists.
    tpm_device: bool,
}

impl Platform {
    fn actual() -> Platform {
        Platform {
            env_tcti: TCTI_ENV_VARS
                .iter()
                .filter_map(|name| std::env::var(name).ok())
                .map(|value| value.trim().to_owned())
                .find(|value| !value.is_empty()),
            tpm_device: Path::new(DEFAULT_TPM_DEVICE).exists(),
        }
    }

    /// The TCTI to use: the configured one, else the environment's, else the
    /// default device when it exists.
    fn tcti(&self, options: &SealOptions) -> Option<String> {
        options
            .tcti
            .as_deref()
            .map(str::trim)
            .filter(|tcti| !tcti.is_empty())
            .map(str::to_owned)
            .or_else(|| self.env_tcti.clone())
            .or_else(|| {
                self.tpm_device
                    .then(|| format!("device:{DEFAULT_TPM_DEVICE}"))
            })
    }
}

fn open_on(
    data_dir: &Path,
    options: &SealOptions,
    create: bool,
    platform: &Platform,
) -> Result<(DataKey, SealStatus), SealError> {
    let key_path = data_dir.join(KEY_FILE_NAME);
    let tpm_path = data_dir.join(TPM_BLOB_NAME);
    let has_key_file = private_file::exists(&key_path)?;
    let has_tpm_blob = private_file::exists(&tpm_path)?;

    match (has_tpm_blob, has_key_file) {
        (true, true) => Err(SealError::Conflict(format!(
            "{} holds both {TPM_BLOB_NAME} and {KEY_FILE_NAME}; only one may exist: keep the one that matches the store and move the other out of the data dir",
            data_dir.display()
        ))),
        (true, false) => {
            if options.choice == BackendChoice::KeyFile {
                return Err(SealError::Conflict(format!(
                    "this data dir's key is sealed by the TPM ({}), but the key-file backend was requested; set the seal backend to auto or tpm",
                    tpm_path.display()
                )));
            }
            open_tpm(&tpm_path, options, platform)
        }
        (false, true) => {
            if options.choice == BackendChoice::Tpm {
                return Err(SealError::Conflict(format!(
                    "this data dir uses a key file, not a TPM ({}); set the seal backend to auto or keyfile",
                    key_path.display()
                )));
            }
            let key = keyfile::read(&key_path)?;
            Ok((key, key_file_status(&key_path, None)))
        }
        (false, false) => {
            if !create {
                return Err(SealError::NotFound {
                    data_dir: data_dir.to_path_buf(),
                });
            }
            private_file::ensure_dir(data_dir)?;
            match new_backend(options, platform)? {
                NewBackend::KeyFile => {
                    let (key, hwrng_used) = DataKey::generate()?;
                    keyfile::create(data_dir, &key)?;
                    tracing::warn!(
                        path = %key_path.display(),
                        "created the data key in a key file: without a TPM it is protected only by file permissions"
                    );
                    Ok((key, key_file_status(&key_path, Some(hwrng_used))))
                }
                #[cfg(feature = "tpm")]
                NewBackend::Tpm(tcti) => {
                    let (key, hwrng_used) = DataKey::generate()?;
                    let sealed = helper::seal(&tcti, &key, options.bind_pcr7)?;
                    private_file::create_new(data_dir, TPM_BLOB_NAME, &sealed)?;
                    tracing::info!(
                        path = %tpm_path.display(),
                        tcti = %tcti,
                        pcr7 = options.bind_pcr7,
                        "sealed a new data key with the TPM"
                    );
                    let status = tpm_status(&tcti, options.bind_pcr7, Some(hwrng_used));
                    Ok((key, status))
                }
            }
        }
    }
}

fn key_file_status(path: &Path, hwrng_used: Option<bool>) -> SealStatus {
    SealStatus {
        backend: Backend::KeyFile,
        detail: path.display().to_string(),
        hwrng_used,
    }
}

#[cfg(feature = "tpm")]
fn tpm_status(tcti: &str, pcr7: bool, hwrng_used: Option<bool>) -> SealStatus {
    SealStatus {
        backend: Backend::Tpm,
        detail: format!("{tcti}; PCR 7 bound: {}", if pcr7 { "yes" } else { "no" }),
        hwrng_used,
    }
}

/// The backend a new data dir gets.
enum NewBackend {
    KeyFile,
    #[cfg(feature = "tpm")]
    Tpm(String),
}

fn new_backend(options: &SealOptions, platform: &Platform) -> Result<NewBackend, SealError> {
    match options.choice {
        BackendChoice::KeyFile => Ok(NewBackend::KeyFile),
        #[cfg(feature = "tpm")]
        BackendChoice::Auto => Ok(platform
            .tcti(options)
            .map_or(NewBackend::KeyFile, NewBackend::Tpm)),
        #[cfg(not(feature = "tpm"))]
        BackendChoice::Auto => {
            if let Some(tcti) = platform.tcti(options) {
                tracing::warn!(
                    %tcti,
                    "a TPM is configured or present, but this build has no TPM support: the data key goes to a key file"
                );
            }
            Ok(NewBackend::KeyFile)
        }
        #[cfg(feature = "tpm")]
        BackendChoice::Tpm => platform
            .tcti(options)
            .map(NewBackend::Tpm)
            .ok_or_else(no_tcti),
        #[cfg(not(feature = "tpm"))]
        BackendChoice::Tpm => Err(no_tpm_support()),
    }
}

#[cfg(feature = "tpm")]
fn no_tcti() -> SealError {
    SealError::TpmUnavailable(format!(
        "no TPM found: {DEFAULT_TPM_DEVICE} does not exist and no TCTI is configured (set the tcti option or COFFER_TCTI)"
    ))
}

#[cfg(not(feature = "tpm"))]
fn no_tpm_support() -> SealError {
    SealError::TpmUnavailable(
        "this build of coffer has no TPM support (built without the `tpm` feature)".into(),
    )
}

#[cfg(feature = "tpm")]
fn open_tpm(
    path: &Path,
    options: &SealOptions,
    platform: &Platform,
) -> Result<(DataKey, SealStatus), SealError> {
    let bytes = private_file::read(path, tpm::MAX_BLOB_LEN)?;
    let corrupt = |reason| SealError::Corrupt(format!("{}: {reason}", path.display()));
    // The TPM structures inside are checked by the helper, which has the
    // libraries that read them.
    let sealed = tpm::SealedObject::parse_envelope(&bytes).map_err(corrupt)?;
    let tcti = platform.tcti(options).ok_or_else(no_tcti)?;
    if sealed.pcr7() != options.bind_pcr7 {
        tracing::warn!(
            path = %path.display(),
            sealed_pcr7 = sealed.pcr7(),
            requested_pcr7 = options.bind_pcr7,
            "the PCR 7 binding is fixed when the key is sealed; the sealed key keeps its own"
        );
    }
    let key = helper::unseal(&tcti, &bytes).map_err(|e| match e {
        SealError::Corrupt(reason) => corrupt(reason),
        e => e,
    })?;
    let status = tpm_status(&tcti, sealed.pcr7(), None);
    Ok((key, status))
}

#[cfg(not(feature = "tpm"))]
fn open_tpm(
    _path: &Path,
    _options: &SealOptions,
    _platform: &Platform,
) -> Result<(DataKey, SealStatus), SealError> {
    Err(SealError::TpmUnavailable(format!(
        "this data dir's key is sealed by a TPM ({TPM_BLOB_NAME}), but this build of coffer has no TPM support (built without the `tpm` feature)"
    )))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests;
