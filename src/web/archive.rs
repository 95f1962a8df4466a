//! "Download as zip": the chosen files and folders of one folder, streamed
//! as a stored ZIP archive ([`super::zip`]).
//!
//! The selection is listed first, inside the home and without following
//! symbolic links (a link is left out), within [`MAX_FILES`] entries,
//! [`MAX_NAME_BYTES`] of names and a folder depth of [`MAX_DEPTH`]; what is
//! too much is refused before the first byte is sent. Then one blocking
//! task reads the files in 64 KiB pieces into a channel of
//! [`QUEUED`] pieces: memory stays bounded whatever the archive's size,
//! and a client that stops reading stops the task. At most
//! [`MAX_AT_ONCE`] archives are made at once.

use std::io::{self, Write};
use std::sync::{Arc, OnceLock};

use axum::body::{Body, Bytes};
use tokio::sync::{Semaphore, mpsc};

use super::zip::Zip;
use crate::files::{Follow, FsError, OpenHow, Root, VPath};

/// Most entries (files and folders) in one archive.
pub const MAX_FILES: usize = 10_000;
/// Most bytes of entry names in one archive (the central directory is
/// held until the end).
pub const MAX_NAME_BYTES: usize = 4 * 1024 * 1024;
/// Deepest folder walked.
pub const MAX_DEPTH: usize = 64;
/// Pieces of 64 KiB waiting for the client.
pub const QUEUED: usize = 4;
/// Archives made at once, process-wide.
pub const MAX_AT_ONCE: usize = 4;

/// One entry to archive.
#[derive(Debug)]
pub struct Item {
    /// Where it is.
    path: VPath,
    /// Its name in the archive (folders end with `/`).
    name: String,
    /// Size when listed (files).
    size: u64,
    mtime: i64,
    dir: bool,
}

/// A slot for one archive, if one is free.
pub fn slot() -> Option<tokio::sync::OwnedSemaphorePermit> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    SLOTS
        .get_or_init(|| Arc::new(Semaphore::new(MAX_AT_ONCE)))
        .clone()
        .try_acquire_owned()
        .ok()
}

/// Lists `names` in `dir` and everything in the folders among them
/// (blocking).
pub fn plan(root: &Root, dir: &VPath, names: &[String]) -> Result<Vec<Item>, FsError> {
    let mut items = Vec::new();
    let mut name_bytes = 0usize;
    for n in names {
        let path = dir.child(n.as_bytes())?;
        add(root, &path, n.clone(), 0, &mut items, &mut name_bytes)?;
    }
    Ok(items)
}

fn add(
    root: &Root,
    path: &VPath,
    name: String,
    depth: usize,
    items: &mut Vec<Item>,
    name_bytes: &mut usize,
) -> Result<(), FsError> {
    let st = root.stat(path, Follow::No)?;
    if !st.is_dir() && !st.is_file() {
        return Ok(()); // links and devices stay out
    }
    if items.len() >= MAX_FILES {
        return Err(FsError::Refused(
            "the selection has more than 10000 files and folders; choose fewer",
        ));
    }
    *name_bytes = name_bytes.saturating_add(name.len() + 1);
    if *name_bytes > MAX_NAME_BYTES {
        return Err(FsError::Refused(
            "the selection's names are too long for one archive",
        ));
    }
    if !st.is_dir() {
        items.push(Item {
            path: path.clone(),
            name,
            size: st.size,
            mtime: st.mtime,
            dir: false,
        });
        return Ok(());
    }
    if depth >= MAX_DEPTH {
        return Err(FsError::Refused(
            "the folder tree is too deep for one archive",
        ));
    }
    let folder = format!("{name}/");
    items.push(Item {
        path: path.clone(),
        name: folder.clone(),
        size: 0,
        mtime: st.mtime,
        dir: true,
    });
    super::transfer::each_child(root, path, |child, name| {
        let child_name = format!("{folder}{}", String::from_utf8_lossy(name));
        add(root, &child, child_name, depth + 1, items, name_bytes)
    })
}

/// Sends what is written in pieces of 64 KiB; fails once the client is gone.
struct Pipe {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

const PIECE: usize = 64 * 1024;

impl Write for Pipe {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = PIECE - self.buf.len().min(PIECE);
        let n = data.len().min(room);
        self.buf
            .extend_from_slice(data.get(..n).unwrap_or_default());
        if self.buf.len() >= PIECE {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
        self.tx
            .blocking_send(Ok(piece))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
}

/// The archive of `items` as a response body; `slot` is held until it ends.
pub fn stream(root: Arc<Root>, items: Vec<Item>, slot: tokio::sync::OwnedSemaphorePermit) -> Body {
    let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(QUEUED);
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let pipe = Pipe {
            tx: tx.clone(),
            buf: Vec::with_capacity(PIECE),
        };
        if let Err(e) = write_all(&root, &items, pipe) {
            tracing::debug!(error = %e, "zip download ended early");
            // The client sees a broken transfer, not a short archive.
            let _ = tx.blocking_send(Err(e));
        }
    });
    Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

fn write_all(root: &Root, items: &[Item], pipe: Pipe) -> io::Result<()> {
    let mut zip = Zip::new(pipe);
    for item in items {
        if item.dir {
            zip.add_dir(&item.name, item.mtime)?;
            continue;
        }
        let how = OpenHow {
            read: true,
            ..OpenHow::default()
        };
        // A file deleted since the listing is left out.
        let Ok(mut file) = root.open_file(&item.path, &how) else {
            continue;
        };
        zip.add_file(&item.name, item.mtime, item.size, &mut file)?;
    }
    zip.finish()?.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::Access;

    #[test]
    fn a_selection_is_listed_without_links_and_within_its_limits() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("docs/deep")).unwrap();
        std::fs::write(t.path().join("docs/a.txt"), b"aaa").unwrap();
        std::fs::write(t.path().join("docs/deep/b.txt"), b"bb").unwrap();
        std::fs::write(t.path().join("top.txt"), b"t").unwrap();
        std::os::unix::fs::symlink("/etc", t.path().join("docs/out")).unwrap();
        let root = Root::open(
            t.path(),
            "ann",
            Access {
                write: true,
                delete: true,
            },
        )
        .unwrap();
        let mut names: Vec<(String, u64)> = plan(
            &root,
            &VPath::root(),
            &["docs".to_string(), "top.txt".to_string()],
        )
        .unwrap()
        .into_iter()
        .map(|i| (i.name, i.size))
        .collect();
        names.sort();
        assert_eq!(
            names,
            [
                ("docs/".to_string(), 0),
                ("docs/a.txt".to_string(), 3),
                ("docs/deep/".to_string(), 0),
                ("docs/deep/b.txt".to_string(), 2),
                ("top.txt".to_string(), 1),
            ]
        );
        assert!(plan(&root, &VPath::root(), &["../x".to_string()]).is_err());
        assert!(plan(&root, &VPath::root(), &["missing".to_string()]).is_err());
    }
}
