//! Administration of the box from the machine itself: one vocabulary of
//! typed requests and answers for every administrative operation, one
//! [`execute`], and one function that opens the core ([`open`]).
//!
//! The local front ends sit on top: the command line only parses arguments
//! into a [`Request`] and prints the [`Answer`]; the technician console only
//! asks and prints; the control socket ([`wire`]) only carries requests and
//! answers (serde, versioned) to the server, which hosts the executor
//! ([`host`]). Without a server, [`Link`] opens the store itself. Every
//! operation is one call on the core ([`crate::auth`]) with the caller, so
//! who may do what is decided there, in one place for every front end; an
//! operation that changes something is one store transaction.
//!
//! ```text
//!  coffer user …   coffer console        REST / web UI
//!        │               │                     │
//!        └──► Link ◄─────┘                     │
//!              │ socket? ──► wire ──► host     │
//!              ▼                       │       │
//!           execute(core, caller, request)     │
//!              │                               │
//!              └──────────► auth (the core) ◄──┘
//! ```

mod error;
mod execute;
pub mod host;
mod link;
mod open;
mod status;
pub mod vocabulary;
pub mod wire;

pub use error::AdminError;
pub use execute::{Core, execute};
pub use link::Link;
pub use open::{Open, OpenError, open};
pub use status::{Sealing, ServerInfo, StatusReport, StoreInfo, host_fingerprints};
pub use vocabulary::{Answer, Caller, Expiry, LockRow, Request};
