//! [`Link`]: how a local front end reaches the core. Through the running
//! server when one answers on the control socket (it holds the store's
//! writer lock), else on the store opened for this one request and closed
//! again, so a server that a service manager restarts meanwhile is not
//! locked out.

use std::path::{Path, PathBuf};

use crate::auth::accounts::check_new_owner;
use crate::auth::console::PinCheck;
use crate::auth::password::HashCost;
use crate::auth::{Actor, Auth, Options};
use crate::seal::{self, DataKey, SealOptions};
use crate::store::{LOCK_FILE, STORE_FILE, Store, StoreError, WriterLock};
use crate::system::factory;

use super::status::{no_store, without_key};
use super::{AdminError, Answer, Caller, Core, Open, OpenError, Request, execute, open, wire};

/// How a front end reaches the core.
#[derive(Clone, Debug)]
pub struct Link {
    /// The data dir.
    pub data_dir: PathBuf,
    /// The files root (a factory reset may clear it).
    pub files_root: PathBuf,
    /// How to open the data key when no server runs.
    pub seal: SealOptions,
    /// Who asks.
    pub caller: Caller,
}

impl Link {
    /// Whether a server answers on the control socket.
    pub fn server_running(&self) -> bool {
        wire::server_listens(&self.data_dir)
    }

    /// Runs a request: through the server when one runs, else directly.
    pub fn call(&self, request: Request) -> Result<Answer, AdminError> {
        match wire::request(&self.data_dir, self.caller, &request)? {
            Some(reply) => reply,
            None => self.direct(request),
        }
    }

    /// Runs a request on the store opened for it.
    fn direct(&self, request: Request) -> Result<Answer, AdminError> {
        let dir = &self.data_dir;
        match request {
            Request::Claim { .. } => return self.claim(request),
            Request::FactoryReset { user_files } => {
                if !dir.exists() {
                    return Err(AdminError::Unavailable(format!(
                        "there is no data dir at {}",
                        dir.display()
                    )));
                }
                let _lock = WriterLock::acquire(&dir.join(LOCK_FILE), 40)?;
                let wiped = factory::reset(dir, &self.files_root, user_files)?;
                return Ok(Answer::FactoryReset {
                    wiped,
                    server_stops: false,
                });
            }
            _ => {}
        }
        match open(dir, &self.seal, Open::Existing, Options::for_data_dir(dir)) {
            Ok((auth, seal)) => execute(
                &Core {
                    auth: &auth,
                    data_dir: dir,
                    seal: &seal,
                    server: None,
                    certs: None,
                },
                self.caller,
                request,
            ),
            Err(OpenError::Store(StoreError::NotInitialized { .. }))
                if matches!(
                    request,
                    Request::Status
                        | Request::PinIsSet
                        | Request::CheckPin { .. }
                        | Request::Record { .. }
                ) =>
            {
                without_store(dir, request)
            }
            Err(OpenError::Key { store, error }) => self.without_key(*store, request, &error),
            Err(e) => Err(e.into()),
        }
    }

    /// Claims the box with no server running: creates the data dir, the
    /// store and the data key, then the owner. Every input is checked
    /// before anything is created, and when a fresh setup fails, what it
    /// created is removed again, so a retry starts from nothing.
    fn claim(&self, request: Request) -> Result<Answer, AdminError> {
        let Request::Claim {
            admin,
            password,
            hash_cost,
        } = &request
        else {
            unreachable!("only a claim is passed here");
        };
        if let Some(c) = hash_cost {
            c.parse::<HashCost>()
                .map_err(|e| AdminError::invalid(format!("hash cost: {e}")))?;
        }
        check_new_owner(admin, password)?;
        let dir = &self.data_dir;
        let dir_existed = dir.exists();
        let store_existed = dir.join(STORE_FILE).exists();
        let keys = [seal::KEY_FILE_NAME, seal::TPM_BLOB_NAME];
        let keys_existed = keys.map(|f| dir.join(f).exists());
        let result = (|| {
            let (auth, seal) = open(dir, &self.seal, Open::Create, Options::for_data_dir(dir))?;
            if crate::auth::owner_of(auth.store())?.is_some() {
                return Err(AdminError::Exists(format!(
                    "this box is already claimed (data dir {})",
                    dir.display()
                )));
            }
            let core = Core {
                auth: &auth,
                data_dir: dir,
                seal: &seal,
                server: None,
                certs: None,
            };
            execute(&core, self.caller, request)
        })();
        if result.is_err() && !store_existed {
            let mut created = vec![dir.join(STORE_FILE), dir.join(LOCK_FILE)];
            for (name, existed) in keys.iter().zip(keys_existed) {
                if !existed {
                    created.push(dir.join(name));
                }
            }
            for path in created {
                let _ = std::fs::remove_file(path);
            }
            if !dir_existed {
                let _ = std::fs::remove_dir(dir);
            }
        }
        result
    }

    /// Answers when the data key cannot be opened (its data disk in
    /// another box, a cleared TPM): the status shows why, and the
    /// technician PIN, an argon2 hash in the store that needs no data key,
    /// is still asked and recorded before the factory reset that is then
    /// the way out. A throwaway key stands in for the sealed one: these
    /// requests read and write nothing sealed. Anything else fails with the
    /// reason.
    fn without_key(
        &self,
        store: Store,
        request: Request,
        error: &seal::SealError,
    ) -> Result<Answer, AdminError> {
        let dir = &self.data_dir;
        match request {
            Request::Status => Ok(Answer::Status(Box::new(without_key(
                &store,
                dir,
                error.to_string(),
            )?))),
            Request::PinIsSet | Request::CheckPin { .. } | Request::Record { .. } => {
                let (throwaway, _) = DataKey::generate()?;
                let auth = Auth::new(
                    store,
                    throwaway,
                    std::sync::Arc::new(crate::clock::SystemClock),
                    Options::for_data_dir(dir),
                );
                let me: Actor = self.caller.actor();
                Ok(match request {
                    Request::PinIsSet => Answer::PinIsSet(auth.console_pin_is_set(&me)?),
                    Request::CheckPin { pin } => Answer::Pin(auth.console_pin_check(&pin)?),
                    Request::Record { event, detail } => {
                        auth.console_record(&me, event, &detail)?;
                        Answer::Done
                    }
                    _ => unreachable!("matched above"),
                })
            }
            _ => Err(AdminError::Unavailable(super::error::chain(error))),
        }
    }
}

/// Answers for a data dir without a store (never set up, or reset).
fn without_store(dir: &Path, request: Request) -> Result<Answer, AdminError> {
    match request {
        Request::Status => Ok(Answer::Status(Box::new(no_store(dir)))),
        Request::PinIsSet => Ok(Answer::PinIsSet(false)),
        Request::CheckPin { .. } => Ok(Answer::Pin(PinCheck::NotSet)),
        Request::Record { event, detail } => {
            tracing::info!(event_id = event.id(), event = event.slug(), %detail, "audit (no store to record it in)");
            Ok(Answer::Done)
        }
        _ => Err(AdminError::Unavailable(format!(
            "there is no store in {}: the box has not been set up (or was reset)",
            dir.display()
        ))),
    }
}
