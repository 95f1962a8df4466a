//! The console's operations, and the two ways they reach the core: over the
//! control socket when a server runs, or on the store opened directly.
//!
//! Each operation is one call on the core and, when it changes something,
//! one store transaction: a console that dies between two prompts leaves
//! nothing half done, because nothing is sent before the last answer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::audit::{self, Event, Record};
use crate::auth::console::PinCheck;
use crate::auth::{Actor, Auth, Options};
use crate::cli::ServerInfo;
use crate::clock::{SystemClock, Timestamp};
use crate::seal::{self, SealOptions, SealStatus};
use crate::store::{OpenMode, STORE_FILE, Store, StoreError};
use crate::system::factory::{self, Wiped};

/// The account column of an address locked for every account.
pub const ALL_ACCOUNTS: &str = "(all accounts)";
/// The address column of an account whose code entry is locked.
pub const CODE_ENTRY: &str = "code entry, every address";

/// An operation the console asks of the core.
#[derive(Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Request {
    /// What the box's core knows about itself.
    Status,
    /// Accounts with an active lockout.
    LockedAccounts,
    /// Clear an account's lockouts.
    Unlock {
        /// The account.
        name: String,
    },
    /// Clear the lock of a source address (for every account).
    UnlockAddress {
        /// The address as typed (an IPv6 address names its /64).
        address: String,
    },
    /// New owner password; TOTP and recovery codes removed.
    ResetOwner {
        /// The new password.
        password: Zeroizing<String>,
    },
    /// The newest audit events.
    AuditTail {
        /// How many.
        limit: usize,
    },
    /// Whether a technician PIN is set.
    PinIsSet,
    /// Check a technician PIN.
    PinCheck {
        /// The PIN typed.
        pin: Zeroizing<String>,
    },
    /// Record a console action done outside the store (network, reboot).
    Record {
        /// [`Event::NetworkChanged`] or [`Event::ConsoleReboot`].
        event: Event,
        /// What was done.
        detail: String,
    },
    /// Wipe the box back to unclaimed.
    FactoryReset {
        /// Remove the users' files too.
        user_files: bool,
    },
}

/// The core's answer.
#[derive(Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Answer {
    /// [`Request::Status`].
    Status(CoreStatus),
    /// [`Request::LockedAccounts`]: `(account, address, until)`; an
    /// address locked for every account comes as [`ALL_ACCOUNTS`], and an
    /// account's code-entry lock as the address [`CODE_ENTRY`].
    Locked(Vec<(String, String, Timestamp)>),
    /// [`Request::Unlock`].
    Unlocked {
        /// Lock records cleared.
        cleared: usize,
    },
    /// [`Request::ResetOwner`].
    OwnerReset {
        /// The owner's name.
        owner: String,
    },
    /// [`Request::AuditTail`], newest first.
    Audit(Vec<Record>),
    /// [`Request::PinIsSet`].
    PinIsSet(bool),
    /// [`Request::PinCheck`].
    Pin(PinCheck),
    /// [`Request::Record`].
    Recorded,
    /// [`Request::FactoryReset`].
    FactoryReset {
        /// What went.
        wiped: Wiped,
        /// The server stops (a service manager starts it again, unclaimed).
        server_stops: bool,
    },
}

/// The answer, or a one-line error fit for the screen.
pub type Reply = Result<Answer, String>;

/// What the core reports for the status screen.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CoreStatus {
    /// Store file size in bytes; `None`: no store yet.
    pub store_bytes: Option<u64>,
    /// Schema version.
    pub schema: Option<u32>,
    /// The owner, when claimed.
    pub owner: Option<String>,
    /// How the data key is protected, or why it cannot be opened.
    pub sealing: String,
    /// Accounts in the store.
    pub accounts: u64,
    /// The running server, when the answer came from it.
    pub server: Option<ServerInfo>,
    /// SSH host key fingerprints `(algorithm, SHA256:...)`.
    pub host_keys: Vec<(String, String)>,
    /// The claim code of an unclaimed box.
    #[serde(default)]
    pub claim_code: Option<String>,
    /// The HTTPS certificate's SHA-256 fingerprint, once made.
    #[serde(default)]
    pub certificate: Option<String>,
}

/// What an operation runs against.
pub struct Core<'a> {
    /// The core.
    pub auth: &'a Auth,
    /// The data dir.
    pub data_dir: &'a Path,
    /// How the data key is protected.
    pub seal: &'a SealStatus,
    /// The server, when it runs the operation.
    pub server: Option<ServerInfo>,
    /// The certificate the server serves, when it runs the operation.
    pub certs: Option<&'a crate::web::tls::Certificates>,
}

/// Runs an operation on an open core. [`Request::FactoryReset`] is not run
/// here: it needs the store closed (see `server_executor` and [`Link`]).
pub fn execute(core: &Core<'_>, request: Request) -> Reply {
    let me = Actor::console();
    let auth = core.auth;
    let text = |e: crate::auth::AuthError| e.to_string();
    match request {
        Request::Status => {
            let counts = auth.counts(&me).map_err(text)?;
            Ok(Answer::Status(CoreStatus {
                store_bytes: std::fs::metadata(core.data_dir.join(STORE_FILE))
                    .ok()
                    .map(|m| m.len()),
                schema: auth.store().schema_version().ok(),
                owner: auth.owner(&me).map_err(text)?,
                sealing: sealing_line(core.seal),
                accounts: counts.get("accounts").copied().unwrap_or(0),
                server: core.server.clone(),
                host_keys: host_fingerprints(core.data_dir),
                claim_code: auth.claim_code(&me).map_err(text)?.map(|c| c.to_string()),
                certificate: crate::web::tls::in_use(core.certs, core.data_dir)
                    .map(|c| c.fingerprint),
            }))
        }
        Request::LockedAccounts => {
            let mut locked = Vec::new();
            for view in auth.accounts(&me).map_err(text)? {
                for (address, until) in view.locked {
                    locked.push((view.account.name.clone(), address, until));
                }
            }
            let wider = auth.locks(&me).map_err(text)?;
            for (name, until) in wider.code_entry {
                locked.push((name, CODE_ENTRY.to_string(), until));
            }
            for (address, until) in wider.addresses {
                locked.push((ALL_ACCOUNTS.to_string(), address, until));
            }
            Ok(Answer::Locked(locked))
        }
        Request::UnlockAddress { address } => crate::address::parse(&address)
            .map_err(|e| e.to_string())
            .and_then(|a| auth.unlock_address(&me, a).map_err(text))
            .map(|cleared| Answer::Unlocked { cleared }),
        Request::Unlock { name } => auth
            .unlock(&me, &name)
            .map(|cleared| Answer::Unlocked { cleared })
            .map_err(text),
        Request::ResetOwner { password } => auth
            .console_reset_owner(&me, &password)
            .map(|owner| Answer::OwnerReset { owner })
            .map_err(text),
        Request::AuditTail { limit } => auth
            .audit_log(
                &me,
                &audit::Filter {
                    limit: limit.clamp(1, 500),
                    ..Default::default()
                },
            )
            .map(Answer::Audit)
            .map_err(text),
        Request::PinIsSet => auth
            .console_pin_is_set(&me)
            .map(Answer::PinIsSet)
            .map_err(text),
        Request::PinCheck { pin } => auth.console_pin_check(&pin).map(Answer::Pin).map_err(text),
        Request::Record { event, detail } => auth
            .console_record(&me, event, &detail)
            .map(|()| Answer::Recorded)
            .map_err(text),
        Request::FactoryReset { .. } => Err("a factory reset cannot run on an open store".into()),
    }
}

/// How the data key is protected, in one line for the status screen.
fn sealing_line(seal: &SealStatus) -> String {
    match seal.backend {
        seal::Backend::Tpm => "TPM 2.0 seals the data key".into(),
        seal::Backend::KeyFile => "key file, NO TPM: secrets rest on file permissions".into(),
    }
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

/// What the server needs to answer the console.
pub struct ServerSide {
    /// The core.
    pub auth: Arc<Auth>,
    /// The data dir.
    pub data_dir: PathBuf,
    /// The files root.
    pub files_root: PathBuf,
    /// How the data key is protected.
    pub seal: SealStatus,
    /// The server, for the status screen.
    pub info: ServerInfo,
    /// Asks the server to stop (after a factory reset).
    pub stop: Arc<tokio::sync::watch::Sender<bool>>,
    /// The certificate being served, for the status screen.
    pub certs: Arc<crate::web::tls::Certificates>,
}

/// The control socket's handler for console operations.
pub(crate) fn server_executor(side: ServerSide) -> crate::control::ConsoleExecutor {
    use crate::control::ConsoleOutcome;
    Arc::new(move |request| match request {
        Request::FactoryReset { user_files } => {
            match factory::reset(&side.data_dir, &side.files_root, user_files) {
                Ok(wiped) => {
                    tracing::warn!("factory reset done: the server stops and comes back unclaimed");
                    let stop = side.stop.clone();
                    ConsoleOutcome {
                        reply: Ok(Answer::FactoryReset {
                            wiped,
                            server_stops: true,
                        }),
                        // Stop once the console has its answer.
                        after: Some(Box::new(move || {
                            let _ = stop.send(true);
                        })),
                    }
                }
                Err(e) => ConsoleOutcome {
                    reply: Err(format!("{e:#}")),
                    after: None,
                },
            }
        }
        other => ConsoleOutcome {
            reply: execute(
                &Core {
                    auth: &side.auth,
                    data_dir: &side.data_dir,
                    seal: &side.seal,
                    server: Some(side.info.clone()),
                    certs: Some(&side.certs),
                },
                other,
            ),
            after: None,
        },
    })
}

/// How the console reaches the core: the running server, or the store.
#[derive(Clone, Debug)]
pub struct Link {
    /// The data dir.
    pub data_dir: PathBuf,
    /// The files root.
    pub files_root: PathBuf,
    /// How to open the data key when no server runs.
    pub seal: SealOptions,
}

impl Link {
    /// Whether a server answers on the control socket.
    pub fn server_running(&self) -> bool {
        std::os::unix::net::UnixStream::connect(self.data_dir.join(crate::control::SOCKET_FILE))
            .is_ok()
    }

    /// Runs an operation: through the server when one runs, else directly.
    pub fn call(&self, request: Request) -> Reply {
        match crate::control::request_console(&self.data_dir, &request) {
            Ok(Some(reply)) => return reply,
            Ok(None) => {}
            Err(e) => return Err(format!("{e:#}")),
        }
        self.direct(request)
    }

    fn direct(&self, request: Request) -> Reply {
        let dir = &self.data_dir;
        if let Request::FactoryReset { user_files } = request {
            if !dir.exists() {
                return Err(format!("there is no data dir at {}", dir.display()));
            }
            let _lock = crate::store::WriterLock::acquire(&dir.join(crate::store::LOCK_FILE), 40)
                .map_err(|e| e.to_string())?;
            let wiped =
                factory::reset(dir, &self.files_root, user_files).map_err(|e| format!("{e:#}"))?;
            return Ok(Answer::FactoryReset {
                wiped,
                server_stops: false,
            });
        }
        let store = match Store::open(dir, OpenMode::Existing, &crate::auth::SCHEMA) {
            Ok(s) => s,
            Err(StoreError::NotInitialized { .. }) => return no_store(dir, request),
            Err(e) => return Err(e.to_string()),
        };
        let (key, seal) = match seal::open(dir, &self.seal, false) {
            Ok(k) => k,
            Err(e) => return without_key(store, dir, request, &e),
        };
        let auth = Auth::new(
            store,
            key,
            Arc::new(SystemClock),
            Options::for_data_dir(dir),
        );
        execute(
            &Core {
                auth: &auth,
                data_dir: dir,
                seal: &seal,
                server: None,
                certs: None,
            },
            request,
        )
    }
}

/// Answers when the data key cannot be opened (its data disk in another box,
/// a cleared TPM): the status shows why, and the technician PIN, an argon2
/// hash in the store that needs no data key, is still asked and recorded
/// before the factory reset that is then the way out. A throwaway key stands
/// in for the sealed one: these requests read and write nothing sealed.
/// Anything else fails with the reason.
fn without_key(store: Store, dir: &Path, request: Request, error: &seal::SealError) -> Reply {
    fn keyless(store: Store, dir: &Path) -> Result<Auth, String> {
        let (throwaway, _) = seal::DataKey::generate().map_err(|e| e.to_string())?;
        Ok(Auth::new(
            store,
            throwaway,
            Arc::new(SystemClock),
            Options::for_data_dir(dir),
        ))
    }
    let text = |e: crate::auth::AuthError| e.to_string();
    match request {
        Request::Status => {
            let owner = crate::auth::owner_of(&store).ok().flatten();
            Ok(Answer::Status(CoreStatus {
                store_bytes: std::fs::metadata(dir.join(STORE_FILE))
                    .ok()
                    .map(|m| m.len()),
                schema: store.schema_version().ok(),
                owner,
                sealing: format!("ERROR: {error}"),
                host_keys: host_fingerprints(dir),
                certificate: crate::web::tls::describe_file(dir).map(|c| c.fingerprint),
                ..Default::default()
            }))
        }
        Request::PinIsSet => keyless(store, dir)?
            .console_pin_is_set(&Actor::console())
            .map(Answer::PinIsSet)
            .map_err(text),
        Request::PinCheck { pin } => keyless(store, dir)?
            .console_pin_check(&pin)
            .map(Answer::Pin)
            .map_err(text),
        Request::Record { event, detail } => keyless(store, dir)?
            .console_record(&Actor::console(), event, &detail)
            .map(|()| Answer::Recorded)
            .map_err(text),
        _ => Err(error.to_string()),
    }
}

/// Answers for a data dir without a store (never set up, or reset).
fn no_store(dir: &Path, request: Request) -> Reply {
    match request {
        Request::Status => Ok(Answer::Status(CoreStatus {
            sealing: "no data key yet".into(),
            host_keys: host_fingerprints(dir),
            ..Default::default()
        })),
        Request::PinIsSet => Ok(Answer::PinIsSet(false)),
        Request::PinCheck { .. } => Ok(Answer::Pin(PinCheck::NotSet)),
        Request::Record { event, detail } => {
            tracing::info!(event_id = event.id(), event = event.slug(), %detail, "audit (no store to record it in)");
            Ok(Answer::Recorded)
        }
        _ => Err(format!(
            "there is no store in {}: the box has not been set up (or was reset)",
            dir.display()
        )),
    }
}
