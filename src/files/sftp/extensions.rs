//! Extended requests (`SSH_FXP_EXTENDED`): the OpenSSH extensions,
//! `copy-data`, `check-file` and the others announced in VERSION.

use std::os::unix::fs::FileExt as _;

use super::super::{Follow, FsError, Root, VPath};
use super::data::OpenFile;
use super::dispatch::bad_handle;
use super::wire::{self, Extended, fx};
use super::{Ctx, Handle, Session};

/// `expand-path@openssh.com`: `~` and `~/x` are the home, `~name` only
/// for the account's own name; everything else as any path.
pub(super) fn expand_path(root: &Root, raw: &[u8]) -> Result<VPath, FsError> {
    let Some(rest) = raw.strip_prefix(b"~") else {
        return VPath::parse(raw);
    };
    let cut = rest.iter().position(|b| *b == b'/').unwrap_or(rest.len());
    let (user, tail) = rest.split_at_checked(cut).unwrap_or((rest, b""));
    if !user.is_empty() && user != root.account().as_bytes() {
        return Err(FsError::Refused(
            "other users' home folders are not reachable",
        ));
    }
    VPath::parse(tail)
}

/// `copy-data`: copies between two open files on the server.
///
/// One request copies a bounded number of bytes, known before the first
/// byte moves: `read_len`, or with 0 ("to the end") what the source holds
/// past `read_offset` when the request starts, so copying a file onto its
/// own end stops where the file ended. The bytes it adds to the
/// destination must fit in the free space above the file system's reserve
/// ([`Root::require_room`]); otherwise nothing is written.
pub(super) fn copy_data(
    ctx: &Ctx,
    src: &OpenFile,
    mut read_offset: u64,
    read_len: u64,
    dst: &OpenFile,
    mut write_offset: u64,
) -> Result<(), FsError> {
    ctx.root.require_write()?;
    if !src.readable || !dst.writable {
        return Err(FsError::Invalid("handles not open for reading and writing"));
    }
    let until_eof = read_len == 0;
    let mut left = if until_eof {
        src.file.metadata()?.len().saturating_sub(read_offset)
    } else {
        read_len
    };
    let dst_size = dst.file.metadata()?.len();
    let growth = if dst.append {
        left
    } else {
        write_offset.saturating_add(left).saturating_sub(dst_size)
    };
    ctx.root.require_room(&dst.file, growth)?;
    let mut buf = vec![0u8; 256 * 1024];
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let chunk = buf.get_mut(..want).unwrap_or_default();
        let n = src.file.read_at(chunk, read_offset)?;
        if n == 0 {
            return if until_eof {
                Ok(())
            } else {
                Err(FsError::Invalid("end of file before the requested length"))
            };
        }
        let data = chunk.get(..n).unwrap_or_default();
        dst.file.write_all_at(data, write_offset)?;
        read_offset = read_offset.saturating_add(n as u64);
        write_offset = write_offset.saturating_add(n as u64);
        left = left.saturating_sub(n as u64);
    }
    Ok(())
}

impl Session {
    pub(super) async fn extended(&mut self, id: u32, ext: Extended) -> bool {
        let ctx = self.ctx.clone();
        match ext {
            Extended::PosixRename { from, to } => self.rename(id, from, to, true).await,
            Extended::Lsetstat { path, attrs } => self.setstat(id, path, attrs, Follow::No).await,
            Extended::Hardlink { from, to } => {
                self.reply_alone(id, move |ctx| {
                    let result = ctx
                        .path(&from)
                        .and_then(|f| Ok((f, ctx.path(&to)?)))
                        .and_then(|(f, t)| ctx.root.hard_link(&f, &t));
                    ctx.done(id, result)
                })
                .await
            }
            Extended::Statvfs { path } => {
                self.reply_alone(id, move |ctx| {
                    match ctx.path(&path).and_then(|p| ctx.root.statvfs(&p)) {
                        Ok(st) => wire::statvfs(id, &st),
                        Err(e) => ctx.fail(id, &e),
                    }
                })
                .await
            }
            Extended::Fstatvfs { handle } => match self.lookup(&handle) {
                Some((_, Handle::File(f))) => {
                    self.reply_alone(id, move |ctx| match ctx.root.fstatvfs(&f.file) {
                        Ok(st) => wire::statvfs(id, &st),
                        Err(e) => ctx.fail(id, &e),
                    })
                    .await
                }
                Some((_, Handle::Dir(d))) => {
                    self.reply_alone(id, move |ctx| {
                        let result = d
                            .lock()
                            .map_err(|_| FsError::Invalid("handle unusable"))
                            .and_then(|l| ctx.root.fstatvfs(l.dir()));
                        match result {
                            Ok(st) => wire::statvfs(id, &st),
                            Err(e) => ctx.fail(id, &e),
                        }
                    })
                    .await
                }
                None => self.send(bad_handle(&ctx, id)).await,
            },
            Extended::Fsync { handle } => match self.lookup(&handle) {
                Some((_, Handle::File(f))) => {
                    self.reply_alone(id, move |ctx| {
                        let result = ctx
                            .root
                            .require_write()
                            .and_then(|()| Ok(f.file.sync_all()?));
                        ctx.done(id, result)
                    })
                    .await
                }
                Some((_, Handle::Dir(_))) => {
                    let reply = ctx.failure(id, fx::OP_UNSUPPORTED, "not a file handle");
                    self.send(reply).await
                }
                None => self.send(bad_handle(&ctx, id)).await,
            },
            Extended::Limits => {
                let l = ctx.limits;
                let reply = wire::extended_reply(
                    id,
                    &[
                        u64::from(l.max_packet),
                        u64::from(l.max_read),
                        u64::from(l.max_packet - 1024),
                        l.max_handles as u64,
                    ],
                );
                self.send(reply).await
            }
            Extended::ExpandPath { path } => {
                self.reply_alone(id, move |ctx| {
                    match expand_path(&ctx.root, &path).and_then(|p| ctx.root.real_path(&p)) {
                        Ok(p) => wire::one_name(id, p.as_bytes()),
                        Err(e) => ctx.fail(id, &e),
                    }
                })
                .await
            }
            Extended::HomeDirectory { user } => {
                let reply = if user.is_empty() || user.as_ref() == ctx.root.account().as_bytes() {
                    wire::one_name(id, b"/")
                } else {
                    ctx.failure(id, fx::FAILURE, "no such user")
                };
                self.send(reply).await
            }
            Extended::CopyData {
                read_handle,
                read_offset,
                read_len,
                write_handle,
                write_offset,
            } => {
                let from = self.lookup(&read_handle);
                let to = self.lookup(&write_handle);
                match (from, to) {
                    (Some((a, Handle::File(src))), Some((b, Handle::File(dst)))) if a != b => {
                        self.reply_alone(id, move |ctx| {
                            let result =
                                copy_data(ctx, &src, read_offset, read_len, &dst, write_offset);
                            ctx.done(id, result)
                        })
                        .await
                    }
                    _ => self.send(bad_handle(&ctx, id)).await,
                }
            }
            Extended::Unknown(_) => {
                let reply = ctx.failure(id, fx::OP_UNSUPPORTED, "unsupported extension");
                self.send(reply).await
            }
        }
    }
}
