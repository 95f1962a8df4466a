//! Sending (`scp -f`, a download): sources expanded, then files and
//! folders sent as `C`, `D`, `E` and `T` records.

use std::io;
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;

use super::super::path::{Glob, glob_match};
use super::super::{Follow, FsError, OpenHow, Stat, VPath};
use super::command::{Command, Word};
use super::{CHUNK, Flow, MAX_DEPTH, Session};

/// The name a record carries: the last component (the account's name for
/// the home itself, which has none).
pub(super) fn name_of(path: &VPath, account: &str) -> Vec<u8> {
    path.file_name()
        .map_or_else(|| account.as_bytes().to_vec(), <[u8]>::to_vec)
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> Session<S> {
    // ---- sending: scp -f ----

    pub(super) async fn send_all(&mut self, cmd: &Command) -> Flow {
        // The client speaks first: a NUL when it is ready.
        if !self.response().await? {
            return Ok(());
        }
        for word in &cmd.paths {
            let display = String::from_utf8_lossy(&word.bytes).into_owned();
            match self.expand(word).await {
                Ok(paths) if paths.is_empty() => {
                    self.complain(&format!("{display}: No such file or directory"))
                        .await?;
                }
                Ok(paths) => {
                    for p in paths {
                        self.send_path(p, &mut Vec::new()).await?;
                    }
                }
                Err(e) => self.complain(&format!("{display}: {e}")).await?,
            }
        }
        Ok(())
    }

    /// A source word as paths: wildcards in its last component expanded
    /// (sorted, like a shell), else the path itself.
    async fn expand(&self, word: &Word) -> Result<Vec<VPath>, FsError> {
        let cut = word
            .bytes
            .iter()
            .rposition(|b| *b == b'/')
            .map_or(0, |i| i + 1);
        let pattern: Vec<Glob> = word
            .bytes
            .iter()
            .zip(word.quoted.iter())
            .skip(cut)
            .map(|(b, quoted)| match (b, quoted) {
                (b'*', false) => Glob::AnyRun,
                (b'?', false) => Glob::AnyOne,
                (b, _) => Glob::Byte(*b),
            })
            .collect();
        if pattern.iter().all(|g| matches!(g, Glob::Byte(_))) {
            return Ok(vec![VPath::parse(&word.bytes)?]);
        }
        let dir = VPath::parse(word.bytes.get(..cut).unwrap_or_default())?;
        self.fs(move |root| {
            let mut listing = root.open_dir(&dir)?;
            let mut names = Vec::new();
            loop {
                let batch = listing.next_batch(root, false, 1000, usize::MAX)?;
                if batch.is_empty() {
                    break;
                }
                names.extend(
                    batch
                        .into_iter()
                        .map(|e| e.name)
                        .filter(|n| glob_match(&pattern, n)),
                );
            }
            names.sort();
            names.into_iter().map(|n| dir.child(&n)).collect()
        })
        .await
    }

    /// Sends a file, or a folder with `-r`. `open` holds the folders being
    /// sent around this one (device, inode): a symbolic link back to one
    /// of them is skipped, not followed round and round; a folder this
    /// command has sent already (reached again through a link) is skipped
    /// too, and nesting deeper than [`MAX_DEPTH`] is refused.
    async fn send_path(&mut self, path: VPath, open: &mut Vec<(u64, u64)>) -> Flow {
        let p = path.clone();
        let st = match self.fs(move |root| root.stat(&p, Follow::Yes)).await {
            Ok(st) => st,
            Err(e) => return self.complain(&format!("{path}: {e}")).await,
        };
        if st.is_dir() {
            if !self.recursive {
                return self.complain(&format!("{path}: not a regular file")).await;
            }
            if open.len() >= MAX_DEPTH {
                return self
                    .complain(&format!("{path}: folders nested too deep"))
                    .await;
            }
            if open.contains(&(st.dev, st.ino)) {
                return self
                    .complain(&format!("{path}: symbolic link loop, skipped"))
                    .await;
            }
            if !self.sent_dirs.insert((st.dev, st.ino)) {
                return self
                    .complain(&format!(
                        "{path}: folder already sent (symbolic link), skipped"
                    ))
                    .await;
            }
            open.push((st.dev, st.ino));
            let sent = Box::pin(self.send_dir(path, st, open)).await;
            open.pop();
            return sent;
        }
        let p = path.clone();
        let opened = self
            .fs(move |root| {
                let file = root.open_file(
                    &p,
                    &OpenHow {
                        read: true,
                        ..OpenHow::default()
                    },
                )?;
                let st = Stat::from_std(&file.metadata()?);
                Ok((file, st))
            })
            .await;
        let (file, st) = match opened {
            Ok(x) => x,
            Err(e) => return self.complain(&format!("{path}: {e}")).await,
        };
        self.counters.opened();
        if self.preserve && !self.send_times(&st).await? {
            return Ok(());
        }
        let name = name_of(&path, self.root.account());
        let mut record = format!("C{:04o} {} ", st.mode & 0o777, st.size).into_bytes();
        record.extend_from_slice(&name);
        record.push(b'\n');
        self.w.write_all(&record).await?;
        if !self.response().await? {
            return Ok(());
        }

        // A blocking reader streams chunks; exactly `size` bytes go out,
        // zero-padded if the file shrank meanwhile (then an error follows).
        let size = st.size;
        let (tx, mut rx) = mpsc::channel::<Result<Bytes, io::Error>>(4);
        let reader = tokio::task::spawn_blocking(move || {
            let mut offset = 0u64;
            while offset < size {
                let want = usize::try_from((size - offset).min(CHUNK as u64)).unwrap_or(CHUNK);
                let mut chunk = BytesMut::zeroed(want);
                let mut n = 0;
                let result = loop {
                    if n == want {
                        break Ok(());
                    }
                    let Some(dst) = chunk.get_mut(n..) else {
                        break Ok(());
                    };
                    match file.read_at(dst, offset + n as u64) {
                        Ok(0) => break Err(io::Error::other("file shrank while being sent")),
                        Ok(k) => n += k,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                offset += want as u64;
                let failed = result.is_err();
                if tx.blocking_send(Ok(chunk.freeze())).is_err() {
                    return;
                }
                if let Err(e) = result {
                    let _ = tx.blocking_send(Err(e));
                }
                if failed {
                    // The rest goes out as zeros to keep the stream in step.
                    while offset < size {
                        let want =
                            usize::try_from((size - offset).min(CHUNK as u64)).unwrap_or(CHUNK);
                        if tx
                            .blocking_send(Ok(BytesMut::zeroed(want).freeze()))
                            .is_err()
                        {
                            return;
                        }
                        offset += want as u64;
                    }
                    return;
                }
            }
        });
        let mut error: Option<io::Error> = None;
        while let Some(item) = rx.recv().await {
            match item {
                Ok(chunk) => {
                    if error.is_none() {
                        self.counters.read(chunk.len() as u64);
                    }
                    self.w.write_all(&chunk).await?;
                }
                Err(e) => error = Some(e),
            }
        }
        let _ = reader.await;
        match error {
            None => {
                self.w.write_all(&[0]).await?;
            }
            Some(e) => {
                let text = match e.raw_os_error() {
                    Some(_) => FsError::Io(e).to_string(),
                    None => e.to_string(),
                };
                self.complain(&format!("{path}: {text}")).await?;
            }
        }
        self.response().await?;
        Ok(())
    }

    async fn send_times(&mut self, st: &Stat) -> Flow<bool> {
        let record = format!("T{} 0 {} 0\n", st.mtime.max(0), st.atime.max(0));
        self.w.write_all(record.as_bytes()).await?;
        self.response().await
    }

    async fn send_dir(&mut self, path: VPath, st: Stat, open: &mut Vec<(u64, u64)>) -> Flow {
        let p = path.clone();
        let listing = match self.fs(move |root| root.open_dir(&p)).await {
            Ok(l) => l,
            Err(e) => return self.complain(&format!("{path}: {e}")).await,
        };
        if self.preserve && !self.send_times(&st).await? {
            return Ok(());
        }
        let name = name_of(&path, self.root.account());
        let mut record = format!("D{:04o} 0 ", st.mode & 0o777).into_bytes();
        record.extend_from_slice(&name);
        record.push(b'\n');
        self.w.write_all(&record).await?;
        if !self.response().await? {
            return Ok(());
        }
        let listing = Arc::new(std::sync::Mutex::new(listing));
        loop {
            let l = listing.clone();
            let batch = self
                .fs(move |root| {
                    l.lock()
                        .map_err(|_| FsError::Invalid("listing unusable"))?
                        .next_batch(root, false, 100, usize::MAX)
                })
                .await;
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    self.complain(&format!("{path}: {e}")).await?;
                    break;
                }
            };
            if batch.is_empty() {
                break;
            }
            for entry in batch {
                match path.child(&entry.name) {
                    Ok(child) => self.send_path(child, open).await?,
                    Err(e) => self.complain(&format!("{path}: {e}")).await?,
                }
            }
        }
        self.w.write_all(b"E\n").await?;
        self.response().await?;
        Ok(())
    }
}
