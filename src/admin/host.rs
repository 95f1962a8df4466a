//! The server's side of administration: it hosts the executor behind the
//! control socket ([`super::wire`]), with its own core, the certificate it
//! serves and its status, and runs a factory reset once the reply is sent.

use std::path::PathBuf;
use std::sync::Arc;

use crate::auth::Auth;
use crate::seal::SealStatus;
use crate::system::factory;

use super::wire::{Executor, Outcome};
use super::{Answer, Core, Request, ServerInfo, execute};

/// What the server hands the executor.
pub struct Host {
    /// The core.
    pub auth: Arc<Auth>,
    /// The data dir.
    pub data_dir: PathBuf,
    /// The files root.
    pub files_root: PathBuf,
    /// How the data key is protected.
    pub seal: SealStatus,
    /// The server, for the status.
    pub info: ServerInfo,
    /// Asks the server to stop (after a factory reset).
    pub stop: Arc<tokio::sync::watch::Sender<bool>>,
    /// The certificate being served.
    pub certs: Arc<crate::web::tls::Certificates>,
}

/// The control socket's executor for a running server.
pub fn executor(host: Host) -> Executor {
    Arc::new(move |caller, request| match request {
        Request::FactoryReset { user_files } => {
            match factory::reset(&host.data_dir, &host.files_root, user_files) {
                Ok(wiped) => {
                    tracing::warn!("factory reset done: the server stops and comes back unclaimed");
                    let stop = host.stop.clone();
                    Outcome {
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
                Err(e) => Outcome {
                    reply: Err(e.into()),
                    after: None,
                },
            }
        }
        other => Outcome {
            reply: execute(&core(&host), caller, other),
            after: None,
        },
    })
}

fn core(host: &Host) -> Core<'_> {
    Core {
        auth: &host.auth,
        data_dir: &host.data_dir,
        seal: &host.seal,
        server: Some(host.info.clone()),
        certs: Some(&host.certs),
    }
}
