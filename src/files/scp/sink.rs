//! Receiving (`scp -t`, an upload): `C`, `D`, `E` and `T` records in,
//! files and folders written beneath the home.

use std::io;
use std::os::unix::fs::FileExt as _;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite};
use tokio::sync::mpsc;

use super::super::path::is_plain_name;
use super::super::{Follow, FsError, OpenHow, SetAttrs, VPath};
use super::command::Command;
use super::{CHUNK, Flow, MAX_DEPTH, ScpError, Session, Stop, Times};

pub(super) fn mode_only(mode: u32) -> SetAttrs {
    SetAttrs {
        mode: Some(mode),
        ..SetAttrs::default()
    }
}

/// `T<mtime> <usec> <atime> <usec>` (after the `T`): (mtime, atime).
pub(super) fn parse_times(rest: &[u8]) -> Option<Times> {
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

pub(super) fn parse_digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `<mode> <size> <name>` (after the `C` or `D`): four octal digits, a
/// decimal size, and the rest of the line as the name.
pub(super) fn parse_record(rest: &[u8]) -> Option<(u32, u64, &[u8])> {
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

impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> Session<S> {
    // ---- receiving: scp -t ----

    pub(super) async fn receive(&mut self, cmd: &Command) -> Flow {
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
            let growth = super::super::Growth::default();
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
