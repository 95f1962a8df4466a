//! Legacy SCP (`scp -O`): the remote end of `scp -t` (upload) and
//! `scp -f` (download), on any byte stream.
//!
//! OpenSSH's clients run `scp [-v] [-r] [-p] [-d] -t|-f [--] PATH...` as an
//! exec request and speak the old rcp protocol on the channel: `C` (file),
//! `D` (enter folder), `E` (leave folder) and `T` (times) records, each
//! acknowledged with a NUL byte or refused with `\x01` (error, go on) or
//! `\x02` (fatal) and a message line the client prints.
//!
//! There is no shell: the command is split into words like a POSIX shell
//! would (quotes and backslashes; `~` and `~/x` are the home), and shell
//! syntax (`;`, `|`, `$`, redirections, ...) is refused. `*` and `?` in the
//! last component of a `-f` source are expanded here, as OpenSSH's server
//! relies on a shell to do. Anything that is not such an `scp` command is
//! refused with [`ScpError::Command`].
//!
//! Confinement and permissions are the [`Root`]'s, as for SFTP. File data
//! is streamed in 256 KiB chunks between the channel and a blocking-pool
//! task (sizes up to `u64::MAX`; nothing is buffered whole).

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader,
    BufWriter, ReadHalf, WriteHalf,
};
use tokio::sync::mpsc;

use super::path::{Glob, glob_match, is_plain_name};
use super::{Counters, Follow, FsError, OpenHow, Root, SetAttrs, Stat, Summary, VPath};

/// Why an SCP session failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScpError {
    /// Reading from or writing to the client failed.
    #[error("connection failed: {0}")]
    Io(#[from] io::Error),
    /// The exec command is not an `scp -t`/`scp -f` this server runs.
    #[error("{0}")]
    Command(String),
    /// The client broke the protocol (the client was told).
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// Chunk size of file data.
const CHUNK: usize = 256 * 1024;
/// Longest control record accepted.
const MAX_LINE: usize = 8 * 1024;
/// Deepest folder nesting in either direction.
const MAX_DEPTH: usize = 64;

/// A parsed `scp` command.
#[derive(Debug, PartialEq, Eq)]
struct Command {
    /// `-t` (true: receive into the home) or `-f` (false: send).
    to: bool,
    recursive: bool,
    preserve: bool,
    target_is_dir: bool,
    paths: Vec<Word>,
}

/// A word of the command, with which bytes were quoted (quoted `*` and
/// `?` are not wildcards).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Word {
    bytes: Vec<u8>,
    quoted: Vec<bool>,
}

impl Word {
    fn push(&mut self, b: u8, quoted: bool) {
        self.bytes.push(b);
        self.quoted.push(quoted);
    }
}

/// Splits a command line like a POSIX shell, without expanding anything
/// but a leading `~`.
fn split_words(command: &str, account: &str) -> Result<Vec<Word>, ScpError> {
    let refuse = |what: &str| Err(ScpError::Command(format!("{what} is not supported")));
    let mut words = Vec::new();
    let mut word: Option<Word> = None;
    let mut bytes = command.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b' ' | b'\t' | b'\n' => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            b'\'' => {
                let w = word.get_or_insert_with(Word::default);
                loop {
                    match bytes.next() {
                        Some(b'\'') => break,
                        Some(c) => w.push(c, true),
                        None => return refuse("an unterminated quote"),
                    }
                }
            }
            b'"' => {
                let w = word.get_or_insert_with(Word::default);
                loop {
                    match bytes.next() {
                        Some(b'"') => break,
                        Some(b'\\') => match bytes.next() {
                            Some(c @ (b'"' | b'\\' | b'$' | b'`')) => w.push(c, true),
                            Some(b'\n') => {}
                            Some(c) => {
                                w.push(b'\\', true);
                                w.push(c, true);
                            }
                            None => return refuse("an unterminated quote"),
                        },
                        Some(b'$' | b'`') => return refuse("shell expansion"),
                        Some(c) => w.push(c, true),
                        None => return refuse("an unterminated quote"),
                    }
                }
            }
            b'\\' => match bytes.next() {
                Some(b'\n') => {}
                Some(c) => word.get_or_insert_with(Word::default).push(c, true),
                None => return refuse("a trailing backslash"),
            },
            b';' | b'&' | b'|' | b'<' | b'>' | b'(' | b')' | b'$' | b'`' => {
                return refuse("shell syntax");
            }
            c => word.get_or_insert_with(Word::default).push(c, false),
        }
    }
    if let Some(w) = word.take() {
        words.push(w);
    }
    for w in &mut words {
        expand_tilde(w, account)?;
    }
    Ok(words)
}

/// `~` and `~/x` (and `~account`) name the home, `/`.
fn expand_tilde(w: &mut Word, account: &str) -> Result<(), ScpError> {
    if w.bytes.first() != Some(&b'~') || w.quoted.first() != Some(&false) {
        return Ok(());
    }
    let end = w
        .bytes
        .iter()
        .position(|b| *b == b'/')
        .unwrap_or(w.bytes.len());
    let user = w.bytes.get(1..end).unwrap_or_default();
    if !user.is_empty() && user != account.as_bytes() {
        return Err(ScpError::Command(
            "other users' home folders are not reachable".into(),
        ));
    }
    let mut out = Word::default();
    if end == w.bytes.len() {
        out.push(b'/', true);
    }
    for (b, q) in w.bytes.iter().zip(w.quoted.iter()).skip(end) {
        out.push(*b, *q);
    }
    *w = out;
    Ok(())
}

/// Parses `scp [-v] [-r] [-p] [-d] -t|-f [--] PATH...`.
fn parse_command(command: &str, account: &str) -> Result<Command, ScpError> {
    let words = split_words(command, account)?;
    let mut words = words.into_iter();
    let program = words.next().unwrap_or_default();
    if program.bytes != b"scp" && !program.bytes.ends_with(b"/scp") {
        return Err(ScpError::Command(format!(
            "only scp and sftp are served here, not {:?}",
            String::from_utf8_lossy(&program.bytes)
        )));
    }
    let (mut to, mut from) = (false, false);
    let mut cmd = Command {
        to: false,
        recursive: false,
        preserve: false,
        target_is_dir: false,
        paths: Vec::new(),
    };
    let mut options = true;
    for w in words {
        if options && w.bytes == b"--" {
            options = false;
            continue;
        }
        if options && w.bytes.first() == Some(&b'-') && w.bytes.len() > 1 {
            for flag in w.bytes.iter().skip(1) {
                match flag {
                    b't' => to = true,
                    b'f' => from = true,
                    b'r' => cmd.recursive = true,
                    b'p' => cmd.preserve = true,
                    b'd' => cmd.target_is_dir = true,
                    b'v' => {}
                    other => {
                        return Err(ScpError::Command(format!(
                            "scp: unsupported option -{}",
                            char::from(*other)
                        )));
                    }
                }
            }
            continue;
        }
        options = false;
        if w.bytes.is_empty() {
            return Err(ScpError::Command("scp: empty path".into()));
        }
        cmd.paths.push(w);
    }
    if to == from {
        return Err(ScpError::Command(
            "scp: exactly one of -t and -f is required".into(),
        ));
    }
    cmd.to = to;
    if cmd.paths.is_empty() {
        return Err(ScpError::Command("scp: no path given".into()));
    }
    Ok(cmd)
}

/// Serves one legacy SCP exec `command` on `stream`, confined to `root`.
///
/// Returns when the transfer is over; files that failed are counted in
/// [`Summary::failures`] (the client was told about each one, and should
/// see exit status 1). An unsupported command is refused before anything
/// is written to the stream.
pub async fn serve_scp<S>(command: &str, stream: S, root: Arc<Root>) -> Result<Summary, ScpError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let cmd = parse_command(command, root.account())?;
    let (r, w) = tokio::io::split(stream);
    let mut session = Session {
        r: BufReader::with_capacity(64 * 1024, r),
        w: BufWriter::with_capacity(16 * 1024, w),
        root,
        counters: Arc::new(Counters::default()),
        recursive: cmd.recursive,
        preserve: cmd.preserve,
        sent_dirs: HashSet::new(),
    };
    let outcome = if cmd.to {
        session.receive(&cmd).await
    } else {
        session.send_all(&cmd).await
    };
    let flushed = session.w.flush().await;
    match outcome {
        Ok(()) | Err(Stop::Fatal) => {}
        Err(Stop::Error(e)) => return Err(e),
    }
    flushed?;
    Ok(session.counters.summary())
}

/// Why the protocol loop stopped early.
enum Stop {
    /// The client sent a fatal error (`\x02`): it has given up.
    Fatal,
    /// Our error.
    Error(ScpError),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop::Error(ScpError::Io(e))
    }
}

type Flow<T = ()> = Result<T, Stop>;

/// Times from a `T` record: (modified, accessed).
type Times = (i64, i64);

struct Session<S> {
    r: BufReader<ReadHalf<S>>,
    w: BufWriter<WriteHalf<S>>,
    root: Arc<Root>,
    counters: Arc<Counters>,
    recursive: bool,
    preserve: bool,
    /// Folders already sent by this command (device, inode): `scp -r`
    /// sends each folder once, however many symbolic links lead to it, so
    /// a lattice of links cannot make the walk exponential.
    sent_dirs: HashSet<(u64, u64)>,
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> Session<S> {
    /// Runs a file-system call on the blocking pool.
    async fn fs<T, F>(&self, f: F) -> Result<T, FsError>
    where
        T: Send + 'static,
        F: FnOnce(&Root) -> Result<T, FsError> + Send + 'static,
    {
        let root = self.root.clone();
        match tokio::task::spawn_blocking(move || f(&root)).await {
            Ok(result) => result,
            Err(_) => Err(FsError::Invalid("internal error")),
        }
    }

    async fn ack(&mut self) -> Flow {
        self.w.write_all(&[0]).await?;
        self.w.flush().await?;
        Ok(())
    }

    /// Tells the client about a failure it should print (`\x01`), and
    /// counts it.
    async fn complain(&mut self, message: &str) -> Flow {
        self.counters.failed();
        let line = format!("\x01scp: {}\n", message.replace('\n', " "));
        self.w.write_all(line.as_bytes()).await?;
        self.w.flush().await?;
        Ok(())
    }

    /// Tells the client about a protocol violation and ends.
    async fn protocol_error(&mut self, why: &str) -> Stop {
        let _ = self.complain(&format!("protocol error: {why}")).await;
        Stop::Error(ScpError::Protocol(why.to_string()))
    }

    /// Reads one line (without the newline); `None` at the end of the
    /// stream before any byte.
    async fn line(&mut self) -> Flow<Option<Vec<u8>>> {
        let mut line = Vec::new();
        let n = (&mut self.r)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(None);
        }
        if line.last() != Some(&b'\n') {
            if line.len() > MAX_LINE {
                return Err(self.protocol_error("record too long").await);
            }
            return Err(Stop::Error(ScpError::Protocol("lost connection".into())));
        }
        line.pop();
        Ok(Some(line))
    }

    /// Reads the client's answer to what was sent: true for OK, false for
    /// an error it reported (and printed itself).
    async fn response(&mut self) -> Flow<bool> {
        self.w.flush().await?;
        let mut first = [0u8; 1];
        if self.r.read(&mut first).await? == 0 {
            return Err(Stop::Error(ScpError::Protocol("lost connection".into())));
        }
        match first {
            [0] => Ok(true),
            [code] => {
                let mut rest = Vec::new();
                (&mut self.r)
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut rest)
                    .await?;
                self.counters.failed();
                if code == 2 {
                    Err(Stop::Fatal)
                } else {
                    Ok(false)
                }
            }
        }
    }

    // ---- receiving: scp -t ----

    async fn receive(&mut self, cmd: &Command) -> Flow {
        let [target] = cmd.paths.as_slice() else {
            self.complain("ambiguous target").await?;
            return Ok(());
        };
        if let Err(e) = self.root.require_write() {
            self.complain(&e.to_string()).await?;
            return Ok(());
        }
        let target = match VPath::parse(&target.bytes) {
            Ok(t) => t,
            Err(e) => {
                self.complain(&e.to_string()).await?;
                return Ok(());
            }
        };
        let t = target.clone();
        let is_dir = self
            .fs(move |root| root.stat(&t, Follow::Yes))
            .await
            .is_ok_and(|st| st.is_dir());
        if cmd.target_is_dir && !is_dir {
            self.complain(&format!("{target}: Not a directory")).await?;
            return Ok(());
        }
        self.sink(target, is_dir, 0).await
    }

    /// Receives records into `target` until `E` or the end of the stream.
    async fn sink(&mut self, target: VPath, target_is_dir: bool, depth: usize) -> Flow {
        self.ack().await?;
        let mut times: Option<Times> = None;
        loop {
            let Some(line) = self.line().await? else {
                return Ok(());
            };
            match line.first() {
                Some(1) => {
                    self.counters.failed();
                    continue;
                }
                Some(2) => {
                    self.counters.failed();
                    return Err(Stop::Fatal);
                }
                Some(b'E') => {
                    self.ack().await?;
                    return Ok(());
                }
                Some(b'T') => match parse_times(line.get(1..).unwrap_or_default()) {
                    Some(t) => {
                        times = Some(t);
                        self.ack().await?;
                    }
                    None => return Err(self.protocol_error("bad times record").await),
                },
                Some(kind @ (b'C' | b'D')) => {
                    let kind = *kind;
                    let Some((mode, size, name)) = parse_record(line.get(1..).unwrap_or_default())
                    else {
                        return Err(self.protocol_error("bad file record").await);
                    };
                    if !is_plain_name(name) || name.contains(&0) {
                        let why = format!("unexpected filename: {}", String::from_utf8_lossy(name));
                        return Err(self.protocol_error(&why).await);
                    }
                    let path = if target_is_dir {
                        match target.child(name) {
                            Ok(p) => p,
                            Err(e) => {
                                self.complain(&e.to_string()).await?;
                                continue;
                            }
                        }
                    } else {
                        target.clone()
                    };
                    let t = times.take();
                    if kind == b'D' {
                        if !self.recursive {
                            return Err(self.protocol_error("received directory without -r").await);
                        }
                        if depth >= MAX_DEPTH {
                            return Err(self.protocol_error("folders nested too deep").await);
                        }
                        self.receive_dir(path, mode, t, depth).await?;
                    } else {
                        self.receive_file(path, mode, size, t).await?;
                    }
                }
                _ => return Err(self.protocol_error("expected control record").await),
            }
        }
    }

    async fn receive_dir(
        &mut self,
        path: VPath,
        mode: u32,
        times: Option<Times>,
        depth: usize,
    ) -> Flow {
        let p = path.clone();
        let preserve = self.preserve;
        let made = self
            .fs(move |root| match root.stat(&p, Follow::Yes) {
                Ok(st) if st.is_dir() => {
                    if preserve {
                        root.set_attrs(&p, Follow::Yes, &mode_only(mode))?;
                    }
                    Ok(preserve)
                }
                Ok(_) => Err(FsError::Io(rustix::io::Errno::NOTDIR.into())),
                Err(_) => {
                    // Writable for us while its contents arrive; the asked
                    // mode is set afterwards.
                    root.mkdir(&p, Some(mode | 0o700))?;
                    Ok(true)
                }
            })
            .await;
        let set_mode = match made {
            Ok(set_mode) => set_mode,
            Err(e) => {
                self.complain(&format!("{path}: {e}")).await?;
                return Ok(());
            }
        };
        Box::pin(self.sink(path.clone(), true, depth + 1)).await?;
        let attrs = SetAttrs {
            mode: set_mode.then_some(mode),
            times: times.map(|(m, a)| (a, m)),
            ..SetAttrs::default()
        };
        if attrs.mode.is_some() || attrs.times.is_some() {
            // Like OpenSSH, failing to set a folder's mode or times is not
            // reported.
            let _ = self
                .fs(move |root| root.set_attrs(&path, Follow::Yes, &attrs))
                .await;
        }
        Ok(())
    }

    async fn receive_file(
        &mut self,
        path: VPath,
        mode: u32,
        size: u64,
        times: Option<Times>,
    ) -> Flow {
        let p = path.clone();
        let opened = self
            .fs(move |root| {
                let existed = root.stat(&p, Follow::Yes).is_ok();
                let file = root.open_file(
                    &p,
                    &OpenHow {
                        write: true,
                        create: true,
                        mode: Some(mode | 0o200),
                        ..OpenHow::default()
                    },
                )?;
                Ok((file, existed))
            })
            .await;
        let (file, existed) = match opened {
            Ok(x) => x,
            Err(e) => {
                // The client skips the data of a refused file.
                self.complain(&format!("{path}: {e}")).await?;
                return Ok(());
            }
        };
        self.counters.opened();
        self.ack().await?;

        // Stream the data to a blocking writer; keep reading after a write
        // error so the stream stays in step.
        let (tx, mut rx) = mpsc::channel::<Bytes>(4);
        let root = self.root.clone();
        let writer = tokio::task::spawn_blocking(move || {
            let mut offset = 0u64;
            let mut error: Option<io::Error> = None;
            // Uploads stop short of the file system's reserve.
            let growth = super::Growth::default();
            while let Some(chunk) = rx.blocking_recv() {
                if error.is_none()
                    && let Err(e) = root
                        .room_for_write(&growth, &file, chunk.len() as u64)
                        .map_err(|e| match e {
                            FsError::Io(e) => e,
                            e => io::Error::other(e.to_string()),
                        })
                        .and_then(|()| file.write_all_at(&chunk, offset))
                {
                    error = Some(e);
                }
                offset = offset.saturating_add(chunk.len() as u64);
            }
            (file, error)
        });
        let mut left = size;
        while left > 0 {
            let want = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
            let mut chunk = BytesMut::with_capacity(want);
            while chunk.len() < want {
                let n = (&mut self.r)
                    .take((want - chunk.len()) as u64)
                    .read_buf(&mut chunk)
                    .await?;
                if n == 0 {
                    drop(tx);
                    let _ = writer.await;
                    return Err(Stop::Error(ScpError::Protocol("lost connection".into())));
                }
            }
            left -= chunk.len() as u64;
            self.counters.written(chunk.len() as u64);
            if tx.send(chunk.freeze()).await.is_err() {
                break;
            }
        }
        drop(tx);
        let (file, mut error) = match writer.await {
            Ok((file, error)) => (Some(file), error),
            Err(_) => (None, Some(io::Error::other("writer failed"))),
        };
        let preserve = self.preserve;
        let root = self.root.clone();
        let finish = tokio::task::spawn_blocking(move || -> Result<(), FsError> {
            let Some(file) = file else { return Ok(()) };
            file.set_len(size)?;
            let attrs = SetAttrs {
                // -p: the sender's mode; else a new file whose mode lacked
                // u+w gets it as asked (minus group/other write).
                mode: if preserve {
                    Some(mode)
                } else if !existed && mode & 0o200 == 0 {
                    Some(mode & !0o022)
                } else {
                    None
                },
                ..SetAttrs::default()
            };
            root.set_fd_attrs(&file, &attrs)?;
            Ok(())
        });
        let finished = match finish.await {
            Ok(result) => result,
            Err(_) => Err(FsError::Invalid("internal error")),
        };
        if error.is_none()
            && let Err(e) = finished
        {
            error = Some(io::Error::other(e.to_string()));
        }
        // The client's word on its side of the transfer.
        self.response().await?;
        if error.is_none()
            && let Some((mtime, atime)) = times
        {
            let p = path.clone();
            let attrs = SetAttrs {
                times: Some((atime, mtime)),
                ..SetAttrs::default()
            };
            if let Err(e) = self
                .fs(move |root| root.set_attrs(&p, Follow::Yes, &attrs))
                .await
            {
                error = Some(io::Error::other(format!("set times: {e}")));
            }
        }
        match error {
            None => self.ack().await,
            Some(e) => {
                let text = match e.raw_os_error() {
                    Some(_) => FsError::Io(e).to_string(),
                    None => e.to_string(),
                };
                self.complain(&format!("{path}: {text}")).await
            }
        }
    }

    // ---- sending: scp -f ----

    async fn send_all(&mut self, cmd: &Command) -> Flow {
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

/// The name a record carries: the last component (the account's name for
/// the home itself, which has none).
fn name_of(path: &VPath, account: &str) -> Vec<u8> {
    path.file_name()
        .map_or_else(|| account.as_bytes().to_vec(), <[u8]>::to_vec)
}

fn mode_only(mode: u32) -> SetAttrs {
    SetAttrs {
        mode: Some(mode),
        ..SetAttrs::default()
    }
}

/// `T<mtime> <usec> <atime> <usec>` (after the `T`): (mtime, atime).
fn parse_times(rest: &[u8]) -> Option<Times> {
    let text = std::str::from_utf8(rest).ok()?;
    let mut parts = text.split(' ');
    let mtime: i64 = parse_digits(parts.next()?)?;
    let mtime_usec: i64 = parse_digits(parts.next()?)?;
    let atime: i64 = parse_digits(parts.next()?)?;
    let atime_usec: i64 = parse_digits(parts.next()?)?;
    if parts.next().is_some() || mtime_usec > 999_999 || atime_usec > 999_999 {
        return None;
    }
    Some((mtime, atime))
}

fn parse_digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `<mode> <size> <name>` (after the `C` or `D`): four octal digits, a
/// decimal size, and the rest of the line as the name.
fn parse_record(rest: &[u8]) -> Option<(u32, u64, &[u8])> {
    let (mode, rest) = rest.split_at_checked(4)?;
    if !mode.iter().all(|b| (b'0'..=b'7').contains(b)) {
        return None;
    }
    let mode = u32::from_str_radix(std::str::from_utf8(mode).ok()?, 8).ok()?;
    let rest = rest.strip_prefix(b" ")?;
    let space = rest.iter().position(|b| *b == b' ')?;
    let (size, name) = rest.split_at_checked(space)?;
    let size: u64 = parse_digits(std::str::from_utf8(size).ok()?)?;
    let name = name.strip_prefix(b" ")?;
    Some((mode & 0o777, size, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(cmd: &str) -> Vec<String> {
        split_words(cmd, "alice")
            .unwrap()
            .into_iter()
            .map(|w| String::from_utf8(w.bytes).unwrap())
            .collect()
    }

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(words("scp -t -- /dir"), ["scp", "-t", "--", "/dir"]);
        assert_eq!(
            words("scp -f 'a b' \"c d\" e\\ f"),
            ["scp", "-f", "a b", "c d", "e f"]
        );
        assert_eq!(
            words("scp -f ~ ~/x ~alice/y"),
            ["scp", "-f", "/", "/x", "/y"]
        );
        assert_eq!(words("scp -f '~'"), ["scp", "-f", "~"]);
        assert!(split_words("scp -f ~bob/x", "alice").is_err());
        for bad in [
            "scp -t x; rm -rf /",
            "scp -f $(id)",
            "scp -f `id`",
            "scp -f a|b",
            "scp -t 'x",
        ] {
            assert!(split_words(bad, "alice").is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_commands() {
        let c = parse_command("scp -r -p -d -t -- /dir", "a").unwrap();
        assert!(c.to && c.recursive && c.preserve && c.target_is_dir);
        let c = parse_command("scp -pf file", "a").unwrap();
        assert!(!c.to && c.preserve && !c.recursive);
        assert_eq!(c.paths[0].bytes, b"file");
        let c = parse_command("/usr/bin/scp -v -t -- -odd", "a").unwrap();
        assert_eq!(c.paths[0].bytes, b"-odd");
        for bad in [
            "",
            "ls -l",
            "scp",
            "scp -t",
            "scp -x -t a",
            "scp -t -f a",
            "scp a",
            "sh -c 'scp -t a'",
        ] {
            assert!(parse_command(bad, "a").is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_records() {
        assert_eq!(parse_record(b"0644 12 a b"), Some((0o644, 12, &b"a b"[..])));
        assert_eq!(
            parse_record(b"4755 18446744073709551615 x"),
            Some((0o755, u64::MAX, &b"x"[..]))
        );
        for bad in [
            &b"644 1 a"[..],
            b"0648 1 a",
            b"0644 -1 a",
            b"0644 1",
            b"0644  1 a",
            b"",
        ] {
            assert_eq!(parse_record(bad), None, "{bad:?}");
        }
        assert_eq!(
            parse_times(b"1700000000 0 1700000001 0"),
            Some((1_700_000_000, 1_700_000_001))
        );
        assert_eq!(parse_times(b"1 0 2"), None);
        assert_eq!(parse_times(b"1 1000000 2 0"), None);
    }
}
