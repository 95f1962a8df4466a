//! The store: one redb file with typed tables, a schema version and migrations.
//!
//! Records are JSON documents under string keys, read and written through typed
//! [`Table`] handles, so a table can only hold the type it was declared with.
//! Every change runs inside [`Store::write`]: one redb write transaction that
//! commits durably (fsync) when the closure returns `Ok`, and leaves nothing
//! behind when it returns `Err`. A second process that opens the same data dir
//! waits briefly, then fails with an error that names the holder.

mod lock;

use std::marker::PhantomData;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use lock::{WriterLock, set_holder_name};

/// A store's schema: the steps of its history, registered by the module
/// that owns the tables (the core's [`crate::auth::SCHEMA`]), so that the
/// store names no table of its users. Opening a store migrates it to the
/// last step's version.
#[derive(Debug)]
pub struct Schema {
    /// The steps, oldest first.
    pub steps: &'static [Migration],
}

impl Schema {
    /// The version this schema brings a store to (0 with no steps).
    pub const fn version(&self) -> u32 {
        match self.steps.last() {
            Some(step) => step.to,
            None => 0,
        }
    }
}

/// File name of the store inside the data dir.
pub const STORE_FILE: &str = "coffer.redb";
/// File name of the writer lock inside the data dir.
pub const LOCK_FILE: &str = "coffer.lock";

/// A table of JSON records of type `V` under string keys.
pub struct Table<V> {
    name: &'static str,
    def: TableDefinition<'static, &'static str, &'static [u8]>,
    _record: PhantomData<fn() -> V>,
}

impl<V> Clone for Table<V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<V> Copy for Table<V> {}

impl<V> Table<V> {
    /// Declares a table by name.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            def: TableDefinition::new(name),
            _record: PhantomData,
        }
    }

    /// The table's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// The audit log: a sequence number to a JSON event.
pub(crate) const AUDIT: TableDefinition<'static, u64, &'static [u8]> =
    TableDefinition::new("audit");

/// The bytes the audit log's records take (key `bytes`), kept in the
/// transaction that changes the log so its byte budget is cheap to check.
pub(crate) const AUDIT_BYTES: TableDefinition<'static, &'static str, u64> =
    TableDefinition::new("audit_bytes");

/// Store metadata (`schema_version`, claim state).
pub(crate) const META: Table<serde_json::Value> = Table::new("meta");

/// What can go wrong with the store. Messages name the file and the remedy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Another process holds the store.
    #[error("the store in {} is in use by {holder}; stop it or wait for it to finish", path.parent().unwrap_or(path).display())]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, e.g. `process 4242 (coffer serve)`.
        holder: String,
    },
    /// The data dir has no store yet.
    #[error("no Coffer store in {}: run `coffer setup` (or `coffer serve`) first", dir.display())]
    NotInitialized {
        /// The data dir.
        dir: PathBuf,
    },
    /// The store was written by a newer Coffer.
    #[error(
        "the store has schema version {found}, but this coffer knows only up to {known}: install a newer coffer"
    )]
    NewerSchema {
        /// Version found in the store.
        found: u32,
        /// Newest version this binary knows.
        known: u32,
    },
    /// A record could not be decoded.
    #[error("corrupt record {key:?} in table {table}: {detail}")]
    Corrupt {
        /// Table name.
        table: &'static str,
        /// Record key.
        key: String,
        /// What the decoder said.
        detail: String,
    },
    /// The database engine failed.
    #[error("store: {0}")]
    Database(String),
}

macro_rules! database_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Database(e.to_string())
            }
        }
    )*};
}
database_errors!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Whether [`Store::open`] may create a new store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// The store must exist.
    Existing,
    /// Create the data dir (mode 0700) and the store when missing.
    Create,
}

/// Bytes of redb's own page cache (read cache and write buffer together).
/// redb's default is 1 GiB, and its cache keeps every page it reads or
/// writes, so a large store (many accounts, a long audit log read through
/// the web UI) would stay in the server's memory as well as in the kernel's
/// page cache. A small store fits whole; past the bound redb reads pages
/// again from the file, and a larger transaction writes its excess out
/// before the commit.
const CACHE_BYTES: usize = 4 * 1024 * 1024;

/// An open store, exclusively held by this process.
pub struct Store {
    db: redb::Database,
    dir: PathBuf,
    _lock: WriterLock,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`, takes the writer lock and
    /// migrates it to `schema`'s version.
    pub fn open(dir: &Path, mode: OpenMode, schema: &'static Schema) -> Result<Self, StoreError> {
        let path = dir.join(STORE_FILE);
        let io = |source, p: &Path| StoreError::Io {
            path: p.to_path_buf(),
            source,
        };
        if mode == OpenMode::Create {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| io(e, dir))?;
        } else if !path.exists() {
            return Err(StoreError::NotInitialized {
                dir: dir.to_path_buf(),
            });
        }
        let lock = WriterLock::acquire(&dir.join(LOCK_FILE), 60)?;
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io(e, &path))?;
        let store = Self {
            db,
            dir: dir.to_path_buf(),
            _lock: lock,
        };
        store.migrate(schema)?;
        Ok(store)
    }

    /// The data dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `f` in one write transaction: committed durably when it returns
    /// `Ok`, rolled back when it returns `Err`.
    pub fn write<R, E>(&self, f: impl FnOnce(&mut WriteTx) -> Result<R, E>) -> Result<R, E>
    where
        E: From<StoreError>,
    {
        let txn = self.db.begin_write().map_err(StoreError::from)?;
        let mut tx = WriteTx { txn };
        let out = f(&mut tx)?;
        tx.txn.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Runs `f` on a consistent snapshot.
    pub fn read<R, E>(&self, f: impl FnOnce(&ReadTx) -> Result<R, E>) -> Result<R, E>
    where
        E: From<StoreError>,
    {
        let txn = self.db.begin_read().map_err(StoreError::from)?;
        f(&ReadTx { txn })
    }

    /// A health probe for the watchdog: reads the schema version in a read
    /// transaction, then begins a write transaction and aborts it (nothing
    /// is written, nothing is synced). It blocks while another write
    /// transaction is open, so a writer that is stuck shows here.
    pub fn probe(&self) -> Result<(), StoreError> {
        self.schema_version()?;
        let txn = self.db.begin_write()?;
        txn.abort()?;
        Ok(())
    }

    /// The schema version recorded in the store.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.read(|r| Ok(schema_version_of(r)?.unwrap_or(0)))
    }

    fn migrate(&self, schema: &Schema) -> Result<(), StoreError> {
        let latest = schema.version();
        // Read-only commands should not cost a write (and an fsync).
        if self.schema_version()? == latest {
            return Ok(());
        }
        self.write(|tx| {
            let found = schema_version_of(tx)?.unwrap_or(0);
            if found > latest {
                return Err(StoreError::NewerSchema {
                    found,
                    known: latest,
                });
            }
            for step in schema.steps.iter().filter(|m| m.to > found) {
                (step.run)(tx)?;
                tx.put(META, "schema_version", &serde_json::json!(step.to))?;
            }
            Ok(())
        })
    }
}

fn schema_version_of(r: &impl Read) -> Result<Option<u32>, StoreError> {
    Ok(r.get(META, "schema_version")?
        .and_then(|v| v.as_u64())
        .and_then(|v| u32::try_from(v).ok()))
}

/// One step of a schema's history. All pending steps run in one
/// transaction, so a crash mid-upgrade leaves the old version intact.
#[derive(Debug)]
pub struct Migration {
    /// The version the step brings the store to.
    pub to: u32,
    /// What the step does.
    pub run: fn(&mut WriteTx) -> Result<(), StoreError>,
}

/// Reading records; implemented by both transaction kinds.
pub trait Read {
    /// The record under `key`, if any.
    fn get<V: DeserializeOwned>(&self, table: Table<V>, key: &str)
    -> Result<Option<V>, StoreError>;
    /// Every record of the table, in key order.
    fn all<V: DeserializeOwned>(&self, table: Table<V>) -> Result<Vec<(String, V)>, StoreError>;
    /// Number of records in the table.
    fn count<V>(&self, table: Table<V>) -> Result<u64, StoreError>;
}

fn decode<V: DeserializeOwned>(
    table: &'static str,
    key: &str,
    bytes: &[u8],
) -> Result<V, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table,
        key: key.to_string(),
        detail: e.to_string(),
    })
}

fn get_from<T, V>(t: &T, table: Table<V>, key: &str) -> Result<Option<V>, StoreError>
where
    T: ReadableTable<&'static str, &'static [u8]>,
    V: DeserializeOwned,
{
    match t.get(key)? {
        Some(g) => decode(table.name(), key, g.value()).map(Some),
        None => Ok(None),
    }
}

fn all_from<T, V>(t: &T, table: Table<V>) -> Result<Vec<(String, V)>, StoreError>
where
    T: ReadableTable<&'static str, &'static [u8]>,
    V: DeserializeOwned,
{
    let mut out = Vec::new();
    for row in t.iter()? {
        let (k, v) = row?;
        let key = k.value().to_string();
        let value = decode(table.name(), &key, v.value())?;
        out.push((key, value));
    }
    Ok(out)
}

/// A read-only snapshot.
pub struct ReadTx {
    txn: redb::ReadTransaction,
}

impl ReadTx {
    /// The underlying transaction, for tables that are not JSON records.
    pub(crate) fn raw(&self) -> &redb::ReadTransaction {
        &self.txn
    }
}

impl Read for ReadTx {
    fn get<V: DeserializeOwned>(
        &self,
        table: Table<V>,
        key: &str,
    ) -> Result<Option<V>, StoreError> {
        match self.txn.open_table(table.def) {
            Ok(t) => get_from(&t, table, key),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn all<V: DeserializeOwned>(&self, table: Table<V>) -> Result<Vec<(String, V)>, StoreError> {
        match self.txn.open_table(table.def) {
            Ok(t) => all_from(&t, table),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    fn count<V>(&self, table: Table<V>) -> Result<u64, StoreError> {
        match self.txn.open_table(table.def) {
            Ok(t) => Ok(t.len()?),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }
}

/// A write transaction; see [`Store::write`].
pub struct WriteTx {
    txn: redb::WriteTransaction,
}

impl WriteTx {
    /// Stores `value` under `key`, replacing any earlier record.
    pub fn put<V: Serialize>(
        &mut self,
        table: Table<V>,
        key: &str,
        value: &V,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Database(e.to_string()))?;
        self.txn
            .open_table(table.def)?
            .insert(key, bytes.as_slice())?;
        Ok(())
    }

    /// Removes the record under `key`; says whether there was one.
    pub fn remove<V>(&mut self, table: Table<V>, key: &str) -> Result<bool, StoreError> {
        Ok(self.txn.open_table(table.def)?.remove(key)?.is_some())
    }

    /// Removes every record whose key and value `keep` rejects; returns how many.
    pub fn retain<V: DeserializeOwned>(
        &mut self,
        table: Table<V>,
        mut keep: impl FnMut(&str, &V) -> bool,
    ) -> Result<usize, StoreError> {
        let doomed: Vec<String> = self
            .all(table)?
            .into_iter()
            .filter(|(k, v)| !keep(k, v))
            .map(|(k, _)| k)
            .collect();
        let mut t = self.txn.open_table(table.def)?;
        for key in &doomed {
            t.remove(key.as_str())?;
        }
        Ok(doomed.len())
    }

    /// Creates the table if it does not exist yet.
    pub fn create_table<V>(&mut self, table: Table<V>) -> Result<(), StoreError> {
        self.txn.open_table(table.def)?;
        Ok(())
    }

    /// The underlying transaction, for tables that are not JSON records.
    pub(crate) fn raw(&mut self) -> &mut redb::WriteTransaction {
        &mut self.txn
    }
}

impl Read for WriteTx {
    fn get<V: DeserializeOwned>(
        &self,
        table: Table<V>,
        key: &str,
    ) -> Result<Option<V>, StoreError> {
        get_from(&self.txn.open_table(table.def)?, table, key)
    }

    fn all<V: DeserializeOwned>(&self, table: Table<V>) -> Result<Vec<(String, V)>, StoreError> {
        all_from(&self.txn.open_table(table.def)?, table)
    }

    fn count<V>(&self, table: Table<V>) -> Result<u64, StoreError> {
        Ok(self.txn.open_table(table.def)?.len()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THINGS: Table<Vec<u32>> = Table::new("things");

    /// The store's own tests' schema: one step that makes `things`.
    static TEST: Schema = Schema {
        steps: &[Migration {
            to: 1,
            run: |tx| {
                tx.raw().open_table(THINGS.def)?;
                Ok(())
            },
        }],
    };
    const SCHEMA_VERSION: u32 = TEST.version();

    #[test]
    fn write_commits_on_ok_and_rolls_back_on_err() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), OpenMode::Create, &TEST).unwrap();
        store.write(|tx| tx.put(THINGS, "a", &vec![1, 2])).unwrap();
        let failed: Result<(), StoreError> = store.write(|tx| {
            tx.put(THINGS, "b", &vec![3])?;
            Err(StoreError::Database("boom".into()))
        });
        assert!(failed.is_err());
        let all = store.read(|r| r.all(THINGS)).unwrap();
        assert_eq!(all, vec![("a".to_string(), vec![1, 2])]);
    }

    #[test]
    fn a_store_larger_than_its_cache_keeps_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let record = |i: u32| {
            (0..1024)
                .map(|j| i.wrapping_mul(7919) ^ j)
                .collect::<Vec<_>>()
        };
        let key = |i: u32| format!("k{i:05}");
        {
            let store = Store::open(dir.path(), OpenMode::Create, &TEST).unwrap();
            // One transaction whose pages exceed the whole cache (about
            // 10 KiB of JSON per record), then many small ones.
            store
                .write(|tx| (0..800).try_for_each(|i| tx.put(THINGS, &key(i), &record(i))))
                .unwrap();
            for i in 800..1000 {
                store
                    .write(|tx| tx.put(THINGS, &key(i), &record(i)))
                    .unwrap();
            }
            let size = std::fs::metadata(dir.path().join(STORE_FILE))
                .unwrap()
                .len();
            assert!(size > 2 * CACHE_BYTES as u64, "the store is {size} bytes");
            let all = store.read(|r| r.all(THINGS)).unwrap();
            assert_eq!(all.len(), 1000);
        }
        let store = Store::open(dir.path(), OpenMode::Existing, &TEST).unwrap();
        let all = store.read(|r| r.all(THINGS)).unwrap();
        assert_eq!(all.len(), 1000);
        for (i, (k, v)) in (0..).zip(all) {
            assert_eq!((k, v), (key(i), record(i)));
        }
    }

    #[test]
    fn existing_mode_requires_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let err = Store::open(dir.path(), OpenMode::Existing, &TEST).unwrap_err();
        assert!(err.to_string().contains("coffer setup"), "{err}");
    }

    #[test]
    fn second_opener_is_told_who_holds_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let _held = Store::open(dir.path(), OpenMode::Create, &TEST).unwrap();
        let lock = WriterLock::acquire(&dir.path().join(LOCK_FILE), 0);
        let err = lock.unwrap_err().to_string();
        assert!(err.contains("in use by process"), "{err}");
    }

    #[test]
    fn new_store_is_at_current_schema_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("data");
        let store = Store::open(&sub, OpenMode::Create, &TEST).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&sub), 0o700);
        assert_eq!(mode(&sub.join(STORE_FILE)), 0o600);
    }

    #[test]
    fn newer_schema_is_refused_and_older_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), OpenMode::Create, &TEST).unwrap();
            store
                .write(|tx| {
                    tx.put(
                        META,
                        "schema_version",
                        &serde_json::json!(SCHEMA_VERSION + 1),
                    )
                })
                .unwrap();
        }
        let err = Store::open(dir.path(), OpenMode::Existing, &TEST).unwrap_err();
        assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
        {
            // A store from before versioning (schema 0) is brought up to date.
            let db = redb::Database::create(dir.path().join(STORE_FILE)).unwrap();
            let w = db.begin_write().unwrap();
            w.open_table(META.def)
                .unwrap()
                .remove("schema_version")
                .unwrap();
            w.commit().unwrap();
        }
        let store = Store::open(dir.path(), OpenMode::Existing, &TEST).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn corrupt_record_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), OpenMode::Create, &TEST).unwrap();
        store
            .write(|tx| {
                tx.raw()
                    .open_table(THINGS.def)?
                    .insert("x", b"{not json".as_slice())?;
                Ok::<_, StoreError>(())
            })
            .unwrap();
        let err = store.read(|r| r.get(THINGS, "x")).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }));
    }
}
