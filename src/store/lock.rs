//! The writer lock: one process at a time may open a data dir's store.
//!
//! The lock is an advisory `flock` on `coffer.lock` beside the store, held for
//! as long as the [`WriterLock`] lives (the kernel drops it when the process
//! dies, even by `kill -9`). The file carries the holder's process id and
//! command line so that the second opener can say who is in the way.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::StoreError;

/// An exclusive lock on a data dir's store.
#[derive(Debug)]
pub struct WriterLock {
    _lock: Flock<File>,
}

impl WriterLock {
    /// Takes the lock, retrying for up to `attempts` × 50 ms while another
    /// process holds it.
    pub fn acquire(path: &Path, attempts: u32) -> Result<Self, StoreError> {
        let mut tries = 0;
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|source| StoreError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(mut lock) => {
                    let me = format!("{} {}\n", std::process::id(), own_command());
                    lock.set_len(0)
                        .and_then(|()| lock.seek(SeekFrom::Start(0)).map(|_| ()))
                        .and_then(|()| lock.write_all(me.as_bytes()))
                        .map_err(|source| StoreError::Io {
                            path: path.to_path_buf(),
                            source,
                        })?;
                    return Ok(Self { _lock: lock });
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) if tries < attempts => {
                    tries += 1;
                    wait_a_little();
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    return Err(StoreError::Locked {
                        path: PathBuf::from(path),
                        holder: holder(path),
                    });
                }
                Err((_, errno)) => {
                    return Err(StoreError::Io {
                        path: path.to_path_buf(),
                        source: errno.into(),
                    });
                }
            }
        }
    }
}

#[allow(clippy::disallowed_methods)] // a bounded wait for another process, not a rule about time
fn wait_a_little() {
    std::thread::sleep(std::time::Duration::from_millis(50));
}

static HOLDER_NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Names this process in the lock file (e.g. `coffer serve`), for the error a
/// second opener sees. Set once, before the store is opened.
pub fn set_holder_name(name: &str) {
    let _ = HOLDER_NAME.set(name.chars().filter(|c| !c.is_control()).take(80).collect());
}

fn own_command() -> String {
    HOLDER_NAME.get().cloned().unwrap_or_else(|| {
        std::env::args()
            .next()
            .map(|a| {
                a.rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(64)
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Describes the process named in the lock file, e.g. `process 4242 (coffer serve)`.
fn holder(path: &Path) -> String {
    let mut text = String::new();
    let read = File::open(path).and_then(|f| f.take(512).read_to_string(&mut text));
    if read.is_err() {
        return "another process".into();
    }
    let line = text.lines().next().unwrap_or("").trim();
    match line.split_once(' ') {
        Some((pid, cmd)) if pid.parse::<u32>().is_ok() => format!("process {pid} ({cmd})"),
        _ if line.parse::<u32>().is_ok() => format!("process {line}"),
        _ => "another process".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coffer.lock");
        let _first = WriterLock::acquire(&path, 0).unwrap();
        let err = WriterLock::acquire(&path, 1).unwrap_err().to_string();
        assert!(
            err.contains(&format!("process {}", std::process::id())),
            "{err}"
        );
    }

    #[test]
    fn lock_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coffer.lock");
        drop(WriterLock::acquire(&path, 0).unwrap());
        WriterLock::acquire(&path, 0).unwrap();
    }
}
