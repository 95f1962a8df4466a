//! Dispatch: one request turned into a call on the file layer, and the
//! handles it opens.

use std::sync::atomic::AtomicU8;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};

use super::super::{Follow, FsError, Listing, OpenHow, Stat};
use super::data::{
    IO_MEMORY, OpenFile, Partial, io_mode, read_cached, read_rest, write_cached, write_rest,
};
use super::reply::{Pending, QUEUED_OVERHEAD, Share};
use super::wire::{self, Attrs, Request, fx, open_flags};
use super::{Access, Ctx, Handle, Session, SftpError};

pub(super) fn bad_handle(ctx: &Ctx, id: u32) -> BytesMut {
    ctx.failure(id, fx::FAILURE, "invalid handle")
}

/// READDIR: up to 100 entries, `.` and `..` first, with `ls -l` lines.
pub(super) fn readdir(ctx: &Ctx, id: u32, listing: &Mutex<Listing>) -> BytesMut {
    let Ok(mut listing) = listing.lock() else {
        return ctx.failure(id, fx::FAILURE, "handle unusable");
    };
    match listing.next_batch(&ctx.root, true, 100, 128 * 1024) {
        Ok(entries) if entries.is_empty() => wire::status(id, fx::EOF, "End of file"),
        Ok(entries) => {
            let named: Vec<_> = entries
                .into_iter()
                .map(|e| {
                    let long = ctx.root.long_name(&e.name, &e.stat);
                    (e.name, long, Attrs::from_stat(&e.stat))
                })
                .collect();
            wire::names(id, &named)
        }
        Err(e) => ctx.fail(id, &e),
    }
}

impl Session {
    /// Handles one request; false when the client is gone.
    pub(super) async fn handle(&mut self, id: u32, request: Request) -> Result<bool, SftpError> {
        let ctx = self.ctx.clone();
        let sent = match request {
            Request::Init => {
                return Err(SftpError::Protocol("INIT sent twice".into()));
            }
            Request::Read {
                handle,
                offset,
                len,
            } => match self.lookup(&handle) {
                Some((h, Handle::File(f))) => {
                    let len = len.min(ctx.limits.max_read);
                    let access = Access::Read {
                        offset,
                        len: u64::from(len),
                    };
                    self.order(h, access).await;
                    let budget = self.reserve(len).await;
                    let len = len as usize;
                    match read_cached(&ctx, id, &f, offset, len) {
                        Partial::Done(reply) => self.enqueue(Pending::Ready(reply), budget).await,
                        Partial::Pending(buf, _) => {
                            self.spawn_io(id, h, access, budget, move |ctx| {
                                read_rest(ctx, id, &f, offset, buf, len)
                            })
                            .await
                        }
                    }
                }
                _ => self.send(bad_handle(&ctx, id)).await,
            },
            Request::Write {
                handle,
                offset,
                data,
            } => match self.lookup(&handle) {
                Some((h, Handle::File(f))) => {
                    let access = Access::Write {
                        offset,
                        len: data.len() as u64,
                    };
                    if f.append {
                        // Appends land in arrival order.
                        self.barrier().await;
                    } else {
                        self.order(h, access).await;
                    }
                    let work = self.work_share(data.len() + QUEUED_OVERHEAD).await;
                    match write_cached(&ctx, id, &f, offset, &data) {
                        Partial::Done(reply) => self.send(reply).await,
                        Partial::Pending(_, n) => {
                            let share = Share {
                                _session: None,
                                _work: work,
                            };
                            self.spawn_io(id, h, access, Some(share), move |ctx| {
                                write_rest(ctx, id, &f, offset, &data, n)
                            })
                            .await
                        }
                    }
                }
                _ => self.send(bad_handle(&ctx, id)).await,
            },
            Request::Fstat { handle } => match self.lookup(&handle) {
                Some((h, Handle::File(f))) => {
                    self.order(h, Access::Stat).await;
                    // The inode of an open file is in memory: fstat does
                    // not wait for a disk.
                    let reply = match f.file.metadata() {
                        Ok(m) => wire::attrs(id, &Stat::from_std(&m)),
                        Err(e) => ctx.fail(id, &e.into()),
                    };
                    self.send(reply).await
                }
                Some((_, Handle::Dir(d))) => {
                    self.reply_alone(id, move |ctx| {
                        let meta = d
                            .lock()
                            .map_err(|_| FsError::Invalid("handle unusable"))
                            .and_then(|l| Ok(l.dir().dir_metadata()?));
                        match meta {
                            Ok(m) => wire::attrs(id, &Stat::from_cap(&m)),
                            Err(e) => ctx.fail(id, &e),
                        }
                    })
                    .await
                }
                None => self.send(bad_handle(&ctx, id)).await,
            },
            Request::Open {
                path,
                pflags,
                attrs,
            } => self.open(id, path, pflags, attrs).await,
            Request::Close { handle } => {
                self.barrier().await;
                let removed = <[u8; 4]>::try_from(handle.as_ref())
                    .ok()
                    .and_then(|raw| self.handles.remove(&u32::from_be_bytes(raw)));
                let reply = match removed {
                    Some(Handle::File(f)) => {
                        // The last reference: closing happens here, on the
                        // blocking pool when close can wait on a slow disk.
                        if f.close_now {
                            drop(f);
                        } else {
                            let _ = tokio::task::spawn_blocking(move || drop(f)).await;
                        }
                        if !self.handles.values().any(|h| matches!(h, Handle::File(_))) {
                            self.ctx.buffers.release();
                        }
                        wire::status(id, fx::OK, "Success")
                    }
                    Some(Handle::Dir(_)) => wire::status(id, fx::OK, "Success"),
                    None => bad_handle(&ctx, id),
                };
                self.send(reply).await
            }
            Request::Opendir { path } => {
                if self.handles.len() >= ctx.limits.max_handles {
                    let reply = ctx.failure(id, fx::FAILURE, "too many open handles");
                    return Ok(self.send(reply).await);
                }
                let opened = self
                    .alone(move |ctx| ctx.path(&path).and_then(|p| ctx.root.open_dir(&p)))
                    .await;
                let reply = match opened {
                    Some(Ok(listing)) => {
                        match self.new_handle(Handle::Dir(Arc::new(Mutex::new(listing)))) {
                            Some(h) => wire::handle(id, h),
                            None => ctx.failure(id, fx::FAILURE, "too many open handles"),
                        }
                    }
                    Some(Err(e)) => ctx.fail(id, &e),
                    None => ctx.failure(id, fx::FAILURE, "internal error"),
                };
                self.send(reply).await
            }
            Request::Readdir { handle } => match self.lookup(&handle) {
                Some((_, Handle::Dir(d))) => {
                    self.reply_alone(id, move |ctx| readdir(ctx, id, &d)).await
                }
                _ => self.send(bad_handle(&ctx, id)).await,
            },
            Request::Fsetstat { handle, attrs } => match self.lookup(&handle) {
                Some((_, Handle::File(f))) => {
                    self.reply_alone(id, move |ctx| {
                        ctx.done(id, ctx.root.set_fd_attrs(&f.file, &attrs.to_set()))
                    })
                    .await
                }
                Some((_, Handle::Dir(d))) => {
                    self.reply_alone(id, move |ctx| {
                        let result = d
                            .lock()
                            .map_err(|_| FsError::Invalid("handle unusable"))
                            .and_then(|l| ctx.root.set_fd_attrs(l.dir(), &attrs.to_set()));
                        ctx.done(id, result)
                    })
                    .await
                }
                None => self.send(bad_handle(&ctx, id)).await,
            },
            Request::Lstat { path } => self.stat(id, path, Follow::No).await,
            Request::Stat { path } => self.stat(id, path, Follow::Yes).await,
            Request::Setstat { path, attrs } => self.setstat(id, path, attrs, Follow::Yes).await,
            Request::Remove { path } => {
                self.reply_alone(id, move |ctx| {
                    ctx.done(id, ctx.path(&path).and_then(|p| ctx.root.remove(&p)))
                })
                .await
            }
            Request::Mkdir { path, attrs } => {
                self.reply_alone(id, move |ctx| {
                    ctx.done(
                        id,
                        ctx.path(&path)
                            .and_then(|p| ctx.root.mkdir(&p, attrs.permissions)),
                    )
                })
                .await
            }
            Request::Rmdir { path } => {
                self.reply_alone(id, move |ctx| {
                    ctx.done(id, ctx.path(&path).and_then(|p| ctx.root.rmdir(&p)))
                })
                .await
            }
            Request::Realpath { path } => {
                self.reply_alone(id, move |ctx| {
                    match ctx.path(&path).and_then(|p| ctx.root.real_path(&p)) {
                        Ok(p) => wire::one_name(id, p.as_bytes()),
                        Err(e) => ctx.fail(id, &e),
                    }
                })
                .await
            }
            Request::Rename { from, to } => self.rename(id, from, to, false).await,
            Request::Readlink { path } => {
                self.reply_alone(id, move |ctx| {
                    match ctx.path(&path).and_then(|p| ctx.root.read_link(&p)) {
                        Ok(target) => wire::one_name(id, &target),
                        Err(e) => ctx.fail(id, &e),
                    }
                })
                .await
            }
            Request::Symlink { target, link } => {
                self.reply_alone(id, move |ctx| {
                    ctx.done(
                        id,
                        ctx.path(&link).and_then(|l| ctx.root.symlink(&target, &l)),
                    )
                })
                .await
            }
            Request::Extended(ext) => self.extended(id, ext).await,
            Request::Unknown(_) => {
                let reply = ctx.failure(id, fx::OP_UNSUPPORTED, "unsupported request");
                self.send(reply).await
            }
        };
        Ok(sent)
    }

    /// Waits for the requests in flight on `handle` that `access` must
    /// not overtake.
    async fn order(&mut self, handle: u32, access: Access) {
        self.reap();
        if self
            .in_flight
            .iter()
            .any(|t| t.handle == handle && t.access.conflicts(access))
        {
            self.barrier().await;
        }
    }

    fn new_handle(&mut self, handle: Handle) -> Option<u32> {
        if self.handles.len() >= self.ctx.limits.max_handles {
            return None;
        }
        let id = self.next_handle;
        self.next_handle = self.next_handle.checked_add(1)?;
        self.handles.insert(id, handle);
        Some(id)
    }

    async fn open(&mut self, id: u32, path: Bytes, pflags: u32, attrs: Attrs) -> bool {
        let ctx = self.ctx.clone();
        if self.handles.len() >= ctx.limits.max_handles {
            let reply = ctx.failure(id, fx::FAILURE, "too many open handles");
            return self.send(reply).await;
        }
        let how = OpenHow {
            read: pflags & open_flags::READ != 0,
            write: pflags & open_flags::WRITE != 0,
            append: pflags & open_flags::APPEND != 0,
            create: pflags & open_flags::CREAT != 0,
            truncate: pflags & open_flags::TRUNC != 0,
            exclusive: pflags & open_flags::EXCL != 0,
            mode: attrs.permissions,
        };
        // A file that can be opened without waiting on a device is opened
        // here; any other goes to the blocking pool.
        self.barrier().await;
        let now = ctx
            .path(&path)
            .ok()
            .and_then(|p| ctx.root.open_file_now(&p, &how));
        let opened_now = now.is_some();
        let opened = match now {
            Some(file) => Some(Ok(file)),
            None => {
                self.on_pool(move |ctx| ctx.path(&path).and_then(|p| ctx.root.open_file(&p, &how)))
                    .await
            }
        };
        let reply = match opened {
            Some(Ok(file)) => {
                let mode = io_mode(&file);
                let open = OpenFile {
                    reads: AtomicU8::new(mode),
                    writes: AtomicU8::new(mode),
                    growth: super::super::Growth::default(),
                    file,
                    readable: how.read || !how.modifies(),
                    writable: how.modifies(),
                    append: how.append,
                    close_now: mode == IO_MEMORY || (opened_now && !how.modifies()),
                };
                match self.new_handle(Handle::File(Arc::new(open))) {
                    Some(h) => {
                        ctx.counters.opened();
                        wire::handle(id, h)
                    }
                    None => ctx.failure(id, fx::FAILURE, "too many open handles"),
                }
            }
            Some(Err(e)) => ctx.fail(id, &e),
            None => ctx.failure(id, fx::FAILURE, "internal error"),
        };
        self.send(reply).await
    }

    async fn stat(&mut self, id: u32, path: Bytes, follow: Follow) -> bool {
        self.reply_alone(id, move |ctx| {
            match ctx.path(&path).and_then(|p| ctx.root.stat(&p, follow)) {
                Ok(st) => wire::attrs(id, &st),
                Err(e) => ctx.fail(id, &e),
            }
        })
        .await
    }

    pub(super) async fn setstat(
        &mut self,
        id: u32,
        path: Bytes,
        attrs: Attrs,
        follow: Follow,
    ) -> bool {
        self.reply_alone(id, move |ctx| {
            ctx.done(
                id,
                ctx.path(&path)
                    .and_then(|p| ctx.root.set_attrs(&p, follow, &attrs.to_set())),
            )
        })
        .await
    }

    pub(super) async fn rename(&mut self, id: u32, from: Bytes, to: Bytes, replace: bool) -> bool {
        self.reply_alone(id, move |ctx| {
            let result = ctx
                .path(&from)
                .and_then(|f| Ok((f, ctx.path(&to)?)))
                .and_then(|(f, t)| ctx.root.rename(&f, &t, replace));
            ctx.done(id, result)
        })
        .await
    }
}
