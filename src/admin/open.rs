//! [`open`]: the one way to open the core on a data dir (the store, then
//! the data key, then [`Auth`]), for the server, the command line and the
//! console alike.

use std::path::Path;
use std::sync::Arc;

use crate::auth::{Auth, Options};
use crate::clock::SystemClock;
use crate::seal::{self, SealError, SealOptions, SealStatus};
use crate::store::{OpenMode, Store, StoreError};

/// Whether the store and the data key may be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Open {
    /// Both must exist.
    Existing,
    /// Created when missing (the server's first start, `coffer setup`).
    Create,
}

/// Why the core could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The store could not be opened (or there is none, see
    /// [`StoreError::NotInitialized`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store opened but the data key did not; the store is handed back
    /// for what can be done without the key.
    #[error("{error}")]
    Key {
        /// The open store.
        store: Box<Store>,
        /// Why the key did not open.
        error: SealError,
    },
}

impl From<OpenError> for super::AdminError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Store(e) => e.into(),
            OpenError::Key { error, .. } => error.into(),
        }
    }
}

/// Opens the core on `data_dir` with the system clock and `options`.
pub fn open(
    data_dir: &Path,
    seal: &SealOptions,
    mode: Open,
    options: Options,
) -> Result<(Auth, SealStatus), OpenError> {
    let store_mode = match mode {
        Open::Existing => OpenMode::Existing,
        Open::Create => OpenMode::Create,
    };
    let store = Store::open(data_dir, store_mode, &crate::auth::SCHEMA)?;
    let (key, status) = match seal::open(data_dir, seal, mode == Open::Create) {
        Ok(k) => k,
        Err(error) => {
            return Err(OpenError::Key {
                store: Box::new(store),
                error,
            });
        }
    };
    Ok((
        Auth::new(store, key, Arc::new(SystemClock), options),
        status,
    ))
}
